"""The training loop: `fit` drives the jitted steps of fser_jax/train/step.py.

The whole training set lives on the device (or is streamed, train/inputs.py).
Each dispatch runs up to `train.steps_per_dispatch` steps (`step.make_train_chunk`);
between dispatches the loop checks the loss is finite, logs, validates,
checkpoints and honours SIGTERM. Every random number comes from keys derived
from the seed and the global step, and each epoch's order from the seed and
the epoch, so a resumed run replays exactly what an uninterrupted one would.

Data parallelism: a 1-D `jax.sharding.Mesh` ('data' axis). The parameters and
the dataset are replicated; each step's batch is split along 'data', and XLA
inserts the gradient all-reduce. Where arrays live across processes is
`distributed.Placement`'s business, not the loop's.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from typing import Any, Callable

import jax
import numpy as np
import optax
from absl import logging

from fser_jax.frontend import augment as augment_lib
from fser_jax.train import checkpoints as ckpt_lib
from fser_jax.train import distributed
from fser_jax.model import forward
from fser_jax.train import rundir
from fser_jax.train import runlog
from fser_jax.train import mesh as mesh_lib
from fser_jax.train import optimizer as state_lib
from fser_jax.train import step as step_lib
from fser_jax.train import inputs as train_inputs
from fser_jax.cpu import xla as xla_cpu
from fser_jax.config import ConfigError
from fser_jax.errors import Interrupted, UserError



class TrainingDiverged(UserError, FloatingPointError):
  pass


# --- the loop -------------------------------------------------------------------
def plan(tcfg, n: int, n_devices: int = 1) -> tuple[int, int, int]:
  """(steps per epoch, total steps, epochs) for `n` training examples, or a
  ConfigError naming the batch size that cannot work."""
  if tcfg.batch_size % n_devices:
    raise ConfigError(f"config train.batch_size={tcfg.batch_size} must be "
                      f"divisible by the {n_devices} data-parallel devices")
  if tcfg.batch_size > n:
    raise ConfigError(f"config train.batch_size={tcfg.batch_size} is larger "
                      f"than the {n} training examples; lower it")
  steps_per_epoch = n // tcfg.batch_size
  n_steps = state_lib.total_steps(tcfg, steps_per_epoch)
  return steps_per_epoch, n_steps, -(-n_steps // steps_per_epoch)


def dispatches(start: int, n_steps: int, steps_per_epoch: int,
               per_dispatch: int):
  """(epoch, offset in the epoch, steps) of each dispatch from `start`: up
  to `per_dispatch` steps, never across an epoch's end. The boundaries do
  not depend on `start`'s history, so a resumed run compiles and runs the
  same programs on the same batches as an uninterrupted one."""
  step = start
  while step < n_steps:
    epoch, offset = divmod(step, steps_per_epoch)
    k = min(per_dispatch, steps_per_epoch - offset, n_steps - step)
    yield epoch, offset, k
    step += k


def check_finite(m, step: int, epoch: int, last_checkpoint, workdir: str):
  """Raises TrainingDiverged naming the first non-finite step of a dispatch
  that started after `step`, and the checkpoint to go back to."""
  loss = np.asarray(m["loss"])
  if np.all(np.isfinite(loss)):
    return
  bad = step + int(np.argmin(np.isfinite(loss))) + 1
  raise TrainingDiverged(
      f"loss is {loss[~np.isfinite(loss)][0]} at step {bad} "
      f"(epoch {epoch + 1}); stopped. "
      + (f"The last good checkpoint is step {last_checkpoint} in "
         f"{workdir}/checkpoints. " if last_checkpoint is not None
         else "No checkpoint was saved before it. ")
      + "Lower train.learning_rate or check the data.")


def validation_metrics(eval_fn, params, x_val, y_val) -> dict | None:
  """Validation loss and accuracy, or None without a validation split."""
  if y_val.size == 0:
    return None
  logits = forward.predict_logits(eval_fn, params, x_val)
  return {"val_loss": float(optax.softmax_cross_entropy_with_integer_labels(
              logits, y_val).mean()),
          "val_accuracy": float(np.mean(logits.argmax(-1) == y_val))}


@dataclasses.dataclass
class FitResult:
  """What `fit` returns."""
  graphdef: Any  # the model's nnx graphdef (forward.logits_fn merges it)
  state: state_lib.State  # best by validation accuracy (else the final one)
  final_state: state_lib.State
  best_step: int
  history: list[dict]  # every line of metrics.jsonl
  eval_fn: Callable  # jitted (params, images) -> logits


def fit(config, data, workdir: str, init_params=None) -> FitResult:
  """Trains on `data` (input_pipeline.Data) in `workdir`, resuming from its
  latest checkpoint. `init_params` (train.init_from) replace the random
  initial parameters of a fresh run."""
  tcfg = config.train
  if tcfg.precision == "bfloat16" and jax.default_backend() == "cpu":
    note = xla_cpu.bfloat16_note()
    if note:
      logging.warning("%s", note)
  note = augment_lib.time_reversal_note(config.features.kind, config.augment)
  if note:
    logging.warning("%s", note)
  mesh = mesh_lib.make_mesh(config.mesh)
  n_dev = mesh.devices.size
  place = distributed.Placement(mesh)
  key = jax.random.key(config.seed)
  k_init, k_data, k_steps, k_offline = jax.random.split(key, 4)

  inputs = train_inputs.training_inputs(config, data, k_offline)
  x_val, y_val = data.subset("validation")
  steps_per_epoch, n_steps, n_epochs = plan(tcfg, inputs.n, n_dev)
  graphdef, state, tx = state_lib.create(config, len(data.classes),
                               data.channels, steps_per_epoch,
                               params=init_params)
  ckpts = ckpt_lib.Checkpoints(workdir, tcfg.max_checkpoints)
  state, start, history = ckpt_lib.resume(
      ckpts, place.put(state), rundir.path(workdir, rundir.METRICS),
      write=place.lead)
  if start:
    logging.info("Resuming from the checkpoint at step %d (epoch %d).", start,
                 start // steps_per_epoch)
  best_val = max([h["val_accuracy"] for h in history if "val_accuracy" in h],
                 default=-1.0)
  x_dev, y_dev, extras = place.put(
      (inputs.x, None if inputs.batches else np.asarray(inputs.y),
       inputs.extras))
  train_chunk = step_lib.make_train_chunk(graphdef, tx, inputs.aug_fn,
                                          place.batch)
  eval_fn = forward.make_eval_fn(graphdef)
  log = runlog.RunLog(workdir, history, write=place.lead)
  k_steps = place.key(k_steps)
  speed = runlog.Throughput(tcfg.batch_size)

  logging.info("Training %d steps (%d epochs x %d steps of %d) on %d %s "
               "device(s), from step %d.", n_steps, n_epochs,
               steps_per_epoch, tcfg.batch_size, n_dev, jax.default_backend(),
               start)
  step = start
  feed = train_inputs.feeder(
      inputs, k_data, steps_per_epoch, tcfg.batch_size,
      dispatches(start, n_steps, steps_per_epoch, tcfg.steps_per_dispatch),
      place)
  try:
    with ckpt_lib.StopFlag() as stop:
      for (epoch, offset, k), idx in feed:
        t0 = time.perf_counter()
        state, m = train_chunk(state, x_dev, y_dev, idx, k_steps, extras)
        m = place.host(m)
        check_finite(m, step, epoch, ckpts.latest_step(), workdir)
        step += k
        rate = speed.update(k, time.perf_counter() - t0)
        log({"step": step, "epoch": step / steps_per_epoch,
             "train_loss": float(m["loss"].mean()),
             "train_accuracy": float(m["accuracy"].mean()),
             "grad_norm": float(m["grad_norm"].max()),
             "examples_per_sec": rate})
        epoch_done = step % steps_per_epoch == 0
        ep = step // steps_per_epoch
        val = None
        if epoch_done and (ep % tcfg.eval_every_epochs == 0
                           or step == n_steps):
          val = validation_metrics(eval_fn, place.readable(state["params"]), x_val,
                         y_val)
          if val is not None:
            log({"step": step, "epoch": ep, **val})
            if val["val_accuracy"] > best_val:
              best_val = val["val_accuracy"]
              ckpts.save_best(step, state, best_val)
        if (epoch_done and ep % tcfg.checkpoint_every_epochs == 0) \
            or step == n_steps or stop.signum:
          ckpts.save_latest(step, state)
        if epoch_done or step == n_steps:
          logging.info(
              "epoch %d/%d step %d/%d | loss %.4f acc %.3f%s | %.0f ex/s | "
              "ETA %s", ep, n_epochs, step, n_steps,
              float(m["loss"].mean()), float(m["accuracy"].mean()),
              "" if val is None else f" | val acc {val['val_accuracy']:.3f}",
              rate, speed.eta(n_steps - step))
        if stop.signum:
          ckpts.wait()
          raise Interrupted(
              f"stopped by {signal.Signals(stop.signum).name} at step {step}; "
              "checkpoint saved. Run the same command to resume.",
              int(stop.signum))
  finally:
    feed.close()  # stops a streamed feed's reading threads
    ckpts.wait()
    log.close()

  best_step = ckpts.best_step()
  if best_step is None:  # no validation split: the final state is the model
    best_state, best_step = state, step
  else:
    best_state = ckpts.restore(ckpt_lib.abstract_like(state), best=True)
  ckpts.close()
  return FitResult(graphdef=graphdef, state=best_state, final_state=state,
                   best_step=int(best_step), history=log.history,
                   eval_fn=eval_fn)
