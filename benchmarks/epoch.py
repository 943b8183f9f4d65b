"""Whole-epoch time with the input pipeline, against steps x step time, and a
batch-size sweep.

  python benchmarks/epoch.py --json OUT.json
  python benchmarks/epoch.py --sweep 32,64,128,256,512,1024 --json OUT.json

The epoch runs the library's loop as training does: the dataset's images on the
device, an on-device permutation per epoch, dispatches of `steps_per_dispatch`
fused steps with augmentation inside. The step time is measured on the same
compiled chunk with a resident batch; the ratio shows what the pipeline costs.
"""

from __future__ import annotations

import argparse
import time

import common


def _setup(batch_size, n, steps_per_dispatch):
  import jax
  import jax.numpy as jnp
  import numpy as np
  from fser_jax.frontend import augment
  from fser_jax import config as config_lib
  from fser_jax.train import step as step_lib
  from fser_jax.train import inputs as train_inputs
  from fser_jax.train import optimizer as state_lib
  c = config_lib.base()
  graphdef, state, tx = state_lib.create(c, 8, 3, steps_per_epoch=n // batch_size)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.random((n, 64, 64, 3), np.float32))
  labels = jnp.asarray(rng.integers(0, 8, n).astype(np.int32))
  chunk = step_lib.make_train_chunk(graphdef, tx, augment.from_config(c.augment))
  return jax, train_inputs, state, images, labels, chunk


def epoch_vs_steps(batch_size=64, n=2048, steps_per_dispatch=8, repeats=3):
  jax, train_inputs, state, images, labels, chunk = _setup(
      batch_size, n, steps_per_dispatch)
  steps = n // batch_size
  data_key, key = jax.random.key(1), jax.random.key(2)
  box = {"state": state}

  def one_epoch(epoch):
    idx_all = train_inputs.epoch_indices(data_key, epoch, n, batch_size, steps)
    for s in range(0, steps, steps_per_dispatch):
      box["state"], m = chunk(box["state"], images, labels,
                              idx_all[s:s + steps_per_dispatch], key)
    m["loss"].block_until_ready()

  one_epoch(0)  # compile
  epoch_times = []
  for e in range(repeats):
    t0 = time.perf_counter()
    one_epoch(e + 1)
    epoch_times.append(time.perf_counter() - t0)
  idx = train_inputs.epoch_indices(data_key, 0, n, batch_size,
                                   steps)[:steps_per_dispatch]

  def call():
    box["state"], m = chunk(box["state"], images, labels, idx, key)
    m["loss"].block_until_ready()

  wins = common.windows(call, repeats=repeats)
  step_time = min(dt / (calls * steps_per_dispatch) for dt, calls in wins)
  epoch = min(epoch_times)
  return {"examples": n, "batch_size": batch_size, "steps": steps,
          "epoch_seconds": epoch, "steps_x_step_seconds": steps * step_time,
          "overhead": epoch / (steps * step_time) - 1.0}


def sweep(sizes, steps_per_dispatch=4, repeats=3):
  out = {}
  for b in sizes:
    jax, _, state, images, labels, chunk = _setup(b, b * steps_per_dispatch,
                                                  steps_per_dispatch)
    idx = jax.numpy.arange(b * steps_per_dispatch).reshape(steps_per_dispatch, b)
    key = jax.random.key(0)
    box = {"state": state}

    def call():
      box["state"], m = chunk(box["state"], images, labels, idx, key)
      m["loss"].block_until_ready()

    out[str(b)] = common.rate_stats(common.windows(call, warmup=1,
                                                   repeats=repeats),
                                    b * steps_per_dispatch)
  return out


def main(argv=None) -> dict:
  p = argparse.ArgumentParser()
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--examples", type=int, default=2048)
  p.add_argument("--sweep", default="")
  p.add_argument("--json", default=None)
  a = p.parse_args(argv)
  result = {"device": common.device_name()}
  if a.sweep:
    result["batch_sweep_examples_per_sec"] = sweep(
        [int(s) for s in a.sweep.split(",")])
  else:
    result["epoch"] = epoch_vs_steps(a.batch_size, a.examples)
  common.write_json(a.json, result)
  return result


if __name__ == "__main__":
  main()
