"""Whisper-base encoder: fser_jax against CTranslate2's own `encode`, on real
weights (a CTranslate2 folder, e.g. faster-whisper's whisper-base).

  python benchmarks/whisper_parity_ct2.py --model DIR [--out FILE.json]

Same 30 s padded log-mel input to both (ours, compared first with
transformers' WhisperFeatureExtractor when it is installed); float32;
reports max abs difference of the final encoder states, and how far the
unpadded short-clip form (positions sliced) is from the padded one.
"""

import argparse
import json

import numpy as np

import common


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--model", required=True)
  p.add_argument("--out", default="")
  a = p.parse_args()
  import ctranslate2
  from fser_jax import encoders
  from fser_jax.encoders import whisper
  rng = np.random.default_rng(0)
  t = np.arange(3 * 16000) / 16000
  wav = (0.2 * np.sin(2 * np.pi * (140 + 30 * np.sin(3 * t)) * t)
         * (1 + 0.5 * np.sin(5 * t)) + 0.01 * rng.normal(size=t.size)
         ).astype(np.float32)
  res = {"model": a.model, "clip_seconds": 3.0,
         "device": common.device_name(),
         "ctranslate2": ctranslate2.__version__}
  mel = whisper.log_mel(wav, 80, whisper.CHUNK_SAMPLES)
  try:
    from transformers import WhisperFeatureExtractor
    ref = WhisperFeatureExtractor(feature_size=80)(
        wav, sampling_rate=16000, return_tensors="np").input_features[0]
    res["logmel_max_abs_diff_vs_transformers"] = float(np.abs(ref - mel).max())
  except ImportError:
    pass
  enc = encoders.load(a.model)
  ours = np.asarray(whisper.forward(enc.model, mel[None]))[-1, 0]
  m = ctranslate2.models.Whisper(a.model, device="cpu", compute_type="float32")
  theirs = np.asarray(m.encode(ctranslate2.StorageView.from_array(
      mel[None]), to_cpu=True))[0]
  res["encoder_max_abs_diff_vs_ctranslate2"] = float(
      np.abs(ours - theirs).max())
  res["encoder_output_abs_max"] = float(np.abs(theirs).max())
  short = enc.hidden_states(wav)[-1]
  n = short.shape[0]
  res["short_vs_padded_frames"] = int(n)
  res["short_vs_padded_max_abs_diff"] = float(np.abs(short - ours[:n]).max())
  res["short_vs_padded_mean_cosine"] = float(np.mean(
      np.sum(short * ours[:n], 1) / np.linalg.norm(short, axis=1)
      / np.linalg.norm(ours[:n], axis=1)))
  print(json.dumps(res, indent=2))
  if a.out:
    with open(a.out, "w") as f:
      json.dump(res, f, indent=2)


if __name__ == "__main__":
  main()
