"""Stage 6: checkpoints with orbax's CheckpointManager.

Two managers in the workdir:
  checkpoints/  the latest `max_checkpoints` states, for resuming;
  best/         the single best state by validation accuracy, for reports and
                predictions.
Orbax writes each checkpoint to a temporary folder and renames it when
complete, so a run killed mid-write restores from the last complete one.
"""

from __future__ import annotations

import json
import os
import signal

import jax
import orbax.checkpoint as ocp
from absl import logging

from fser_jax.train import distributed
from fser_jax.train import runlog


class Checkpoints:

  def __init__(self, workdir: str, max_to_keep: int = 2):
    workdir = os.path.abspath(workdir)
    # Each manager its own barrier names: in a multi-process run both may
    # commit the same step at once, and orbax names barriers by step.
    self.latest = ocp.CheckpointManager(
        os.path.join(workdir, "checkpoints"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                barrier_sync_key_prefix="latest")))
    self.best = ocp.CheckpointManager(
        os.path.join(workdir, "best"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, create=True, best_fn=lambda m: m["val_accuracy"],
            best_mode="max", keep_checkpoints_without_metrics=False,
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                barrier_sync_key_prefix="best")))

  def save_latest(self, step: int, state) -> None:
    self.latest.save(step, args=ocp.args.StandardSave(state))

  def save_best(self, step: int, state, val_accuracy: float) -> None:
    """Saves `state` as the best so far (a step already there is kept)."""
    if step not in self.best.all_steps():
      self.best.save(step, args=ocp.args.StandardSave(state),
                     metrics={"val_accuracy": float(val_accuracy)})

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def best_step(self) -> int | None:
    return self.best.best_step()

  def restore(self, abstract_state, *, best: bool = False, step=None):
    """Restores onto the shardings of `abstract_state` (so a GPU run restores
    on a CPU machine, or 8 devices onto 1)."""
    mngr = self.best if best else self.latest
    step = step if step is not None else (
        mngr.best_step() if best else mngr.latest_step())
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {mngr.directory}")
    return mngr.restore(step, args=ocp.args.StandardRestore(abstract_state))

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()


def abstract_like(state, sharding=None):
  """ShapeDtypeStructs of `state`, on `sharding` (default: the arrays' own)."""
  def leaf(x):
    return jax.ShapeDtypeStruct(x.shape, x.dtype,
                                sharding=sharding or getattr(x, "sharding", None))
  return jax.tree.map(leaf, state)


def resume(ckpts, state, metrics_path: str, write: bool = True
           ) -> tuple[dict, int, list[dict]]:
  """(state, start step, history) from the workdir's latest complete
  checkpoint, or the fresh `state` at step 0. Log lines written after that
  checkpoint (work lost with the interruption, redone now) are dropped from
  metrics.jsonl, so no step is logged twice."""
  start = ckpts.latest_step()
  if start is not None:
    state = ckpts.restore(abstract_like(state))
    start = int(distributed.host(state["step"]))
  else:
    start = 0
  history = [h for h in runlog.read_jsonl(metrics_path) if h["step"] <= start]
  if write:  # one process of a multi-process run writes
    with open(metrics_path, "w") as f:
      f.writelines(json.dumps(h) + "\n" for h in history)
  return state, start, history


class StopFlag:
  """SIGTERM/SIGINT set a flag; the loop saves and stops after the dispatch."""

  def __init__(self):
    self.signum = None
    self._old = {}

  def __enter__(self):
    for s in (signal.SIGTERM, signal.SIGINT):
      try:
        self._old[s] = signal.signal(s, self._handle)
      except ValueError:  # not the main thread
        pass
    return self

  def _handle(self, signum, frame):
    if self.signum is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # second Ctrl-C: stop now
    self.signum = signum
    logging.warning("Received %s: saving a checkpoint after this dispatch.",
                    signal.Signals(signum).name)

  def __exit__(self, *exc):
    for s, h in self._old.items():
      signal.signal(s, h)
