"""What waveform augmentation costs per batch, beside the train step.

  python benchmarks/wave_augment.py --json OUT.json [--seconds 4.2]

Side by side in one process, batches of 64 clips of `--seconds` (the embedded
corpus' training buffer: its longest clip, 3.8 s, slowed by 0.9): each step
of the random chain alone (configs/fser_robust.py's settings, every
probability set to 1 so the figure is the worst case), the whole chain, the
front-end, and one train step of the fast recipe on precomputed images (the
path without waveform augmentation).
"""

from __future__ import annotations

import argparse
import dataclasses

import common


def main(argv=None) -> dict:
  p = argparse.ArgumentParser()
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--seconds", type=float, default=4.2)
  p.add_argument("--json", default=None)
  a = p.parse_args(argv)
  import jax
  import jax.numpy as jnp
  import numpy as np
  from fser_jax.frontend import spectrogram as features
  from fser_jax.frontend import wave_augment as wa
  config = common.recipe("fser_robust")
  sr = config.data.sample_rate
  b, n = a.batch_size, int(a.seconds * sr)
  rng = np.random.default_rng(0)
  wav = jnp.asarray(rng.standard_normal((b, n)).astype(np.float32) * 0.1)
  lengths = jnp.full((b,), int(n / 1.12), jnp.int32)
  base = wa.from_config(config.augment.wave, sr)
  off = dict(noise_prob=0.0, phone_prob=0.0, gain_prob=0.0, speed_prob=0.0,
             reverb_prob=0.0)
  variants = {name: dataclasses.replace(base, **{**off, f"{name}_prob": 1.0})
              for name in ("speed", "reverb", "noise", "gain", "phone")}
  variants["chain (all p=1)"] = dataclasses.replace(
      base, **{k: 1.0 for k in off})
  variants["chain (fser_robust.py p)"] = base
  frontend = features.frontend(config.features, sr)
  banks = {k: jnp.asarray(v) for k, v in wa.noise_banks(sr).items()}
  rows = {}
  for name, cfg in variants.items():
    f = jax.jit(lambda k, w, l, cfg=cfg: wa.augment(k, w, l, cfg, banks)[0])
    rows[name] = common.rate_stats(common.windows(
        lambda: f(jax.random.key(0), wav, lengths).block_until_ready(),
        repeats=3), b)
  fe = jax.jit(frontend)
  rows["front-end"] = common.rate_stats(common.windows(
      lambda: fe(wav, lengths).block_until_ready(), repeats=3), b)
  both = jax.jit(lambda k, w, l: frontend(*wa.augment(k, w, l, base, banks)))
  rows["chain + front-end"] = common.rate_stats(common.windows(
      lambda: both(jax.random.key(0), wav, lengths).block_until_ready(),
      repeats=3), b)
  # One train step on images (what every step costs without the chain).
  from fser_jax.frontend import augment as augment_lib
  from fser_jax.train import step as step_lib
  from fser_jax.train import optimizer as state_lib
  graphdef, state, tx = state_lib.create(config, 8, 3, 10)
  chunk = step_lib.make_train_chunk(graphdef, tx,
                                     augment_lib.from_config(config.augment))
  images = jnp.asarray(rng.standard_normal((b, 64, 64, 3)).astype(np.float32))
  labels = jnp.asarray(rng.integers(0, 8, b).astype(np.int32))
  idx = jnp.arange(b)[None]
  box = {"state": state}

  def step():
    box["state"], m = chunk(box["state"], images, labels, idx,
                            jax.random.key(0))
    jax.block_until_ready(m)
  rows["train step (images)"] = common.rate_stats(
      common.windows(step, repeats=3), b)
  result = {"device": common.device_name(), "batch_size": b,
            "clip_seconds": a.seconds, "examples_per_sec": rows}
  common.write_json(a.json, result)
  return result


if __name__ == "__main__":
  main()
