"""Mel front-end throughput: the jitted on-device images vs librosa.

  python benchmarks/frontend.py --json OUT.json

Clips of 3.5 s at 16 kHz (the corpora's average). Ours: waveform batch ->
power mel -> dB -> coolwarm RGB -> 64x64, one jitted call per batch. librosa:
melspectrogram + power_to_db per clip on the host (no colouring or resize,
which only flatters it).
"""

from __future__ import annotations

import argparse

import common


def main(argv=None) -> dict:
  p = argparse.ArgumentParser()
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--seconds", type=float, default=3.5)
  p.add_argument("--json", default=None)
  a = p.parse_args(argv)
  import jax.numpy as jnp
  import librosa
  import numpy as np
  from fser_jax import config as config_lib
  from fser_jax.frontend import spectrogram as features
  sr = 16000
  rng = np.random.default_rng(0)
  wav = rng.standard_normal((a.batch_size, int(sr * a.seconds))).astype(np.float32) * 0.1
  lengths = jnp.full((a.batch_size,), wav.shape[1])
  fn = features.image_fn(config_lib.base().features, sr)
  wav_d = jnp.asarray(wav)
  ours = common.rate_stats(common.windows(
      lambda: fn(wav_d, lengths).block_until_ready()), a.batch_size)

  def lib():
    for w in wav[:8]:
      librosa.power_to_db(librosa.feature.melspectrogram(
          y=w, sr=sr, n_fft=512, hop_length=512), ref=np.max)

  ref = common.rate_stats(common.windows(lib, warmup=1), 8)
  result = {"device": common.device_name(), "clip_seconds": a.seconds,
            "jax_clips_per_sec": ours, "librosa_clips_per_sec": ref,
            "speedup_vs_librosa": ours["median"] / ref["median"]}
  common.write_json(a.json, result)
  return result


if __name__ == "__main__":
  main()
