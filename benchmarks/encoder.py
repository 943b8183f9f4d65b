"""Encoder extraction speed: fser_jax against transformers (PyTorch) on the
same CPU, same weights, same run.

  python benchmarks/encoder.py [--size base] [--batch 4] [--rounds 3] [--out F.json]
  python benchmarks/encoder.py --family wavlm [--seconds 5] [--batch 4]

The wav2vec2 family (--family wav2vec2 | hubert | wavlm | data2vec-audio):
the base size (transformers' default config), random weights, `--seconds`
of audio per clip, float32 and bfloat16, clips/s and real-time factor:
every hidden state (the forward pass), and extraction as the library runs
it (every layer's mean and std per clip; the reference: its hidden states
pooled the same way in torch).

Random weights of the named size (no download; speed does not depend on the
values), written once as a Hugging Face folder and read by both. Timed:
the reference form, 30 s padded inputs (what transformers accepts), float32,
and bfloat16 (ours: parameters and inputs cast; PyTorch: the module cast);
then ours on the clip's own length (3 s clips, positions sliced), which is
how the learning curve runs it. Reports clips/s, the real-time factor
(seconds of compute per second of audio) and the process's peak RSS.
"""

import argparse
import json
import os
import resource
import tempfile
import time

import numpy as np

import common

SIZES = {"tiny": (384, 4, 6, 1536), "base": (512, 6, 8, 2048),
         "small": (768, 12, 12, 3072)}


def timed(fn, rounds):
  fn()  # compile / warm
  out = []
  for _ in range(rounds):
    t = time.perf_counter()
    fn()
    out.append(time.perf_counter() - t)
  return float(np.median(out))


W2V = {"wav2vec2": "Wav2Vec2", "hubert": "Hubert", "wavlm": "WavLM",
       "data2vec-audio": "Data2VecAudio"}


def _cast16(model):
  import jax
  import jax.numpy as jnp
  from flax import nnx
  m = nnx.clone(model)
  nnx.update(m, jax.tree.map(lambda v: v.astype(jnp.bfloat16), nnx.state(m)))
  return m


def _report(res, a, rows):
  for name, t, secs in rows:
    res[name] = {"seconds_per_batch": t, "clips_per_s": a.batch / t,
                 "real_time_factor": t / secs}
  res["peak_rss_gb"] = resource.getrusage(
      resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
  print(json.dumps(res, indent=2))
  if a.out:
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
      json.dump(res, f, indent=2)


def wav2vec2_family(a):
  import jax
  import jax.numpy as jnp
  import torch
  import transformers
  from fser_jax import encoders
  from fser_jax.encoders import wav2vec2
  torch.manual_seed(0)
  kind = W2V[a.family]
  ref = getattr(transformers, kind + "Model")(
      getattr(transformers, kind + "Config")()).eval()
  with tempfile.TemporaryDirectory() as tmp:
    ref.save_pretrained(tmp, safe_serialization=True)
    enc = encoders.load(tmp)
  wav = (0.1 * np.random.default_rng(0).normal(
      size=(a.batch, int(16000 * a.seconds)))).astype(np.float32)
  res = {"family": a.family, "size": "base (transformers' default config)",
         "batch": a.batch, "seconds_per_clip": a.seconds,
         "device": common.device_name(), "threads": torch.get_num_threads(),
         "jax": jax.__version__, "torch": torch.__version__,
         "transformers": transformers.__version__}
  x = jnp.asarray(wav)
  t_ours = timed(lambda: wav2vec2.forward(enc.model, x).block_until_ready(),
                 a.rounds)
  xt = torch.from_numpy(wav)
  with torch.inference_mode():
    t_ref = timed(lambda: ref(xt, output_hidden_states=True), a.rounds)
  # Extraction as the curve and `--mode embed` run it: every layer's mean
  # and std per clip, from the waveforms (ours: wav2vec2.pooled; the
  # reference: its hidden states, then the same pooling in torch).
  clips = list(wav)
  t_pool = timed(lambda: wav2vec2.pooled(enc.model, clips, batch=a.batch),
                 a.rounds)

  def ref_pooled():
    with torch.inference_mode():
      h = torch.stack(ref(xt, output_hidden_states=True).hidden_states)
      return torch.cat([h.mean(2), h.std(2, unbiased=False)], -1)

  t_ref_pool = timed(ref_pooled, a.rounds)
  m16 = _cast16(enc.model)
  x16 = x.astype(jnp.bfloat16)
  t_ours16 = timed(lambda: wav2vec2.forward(m16, x16).block_until_ready(),
                   a.rounds)
  ref16 = ref.to(torch.bfloat16)
  with torch.inference_mode():
    t_ref16 = timed(lambda: ref16(xt.to(torch.bfloat16),
                                  output_hidden_states=True), a.rounds)
  res["ratio_float32_ours_over_transformers"] = t_ref / t_ours
  res["ratio_bfloat16_ours_over_transformers"] = t_ref16 / t_ours16
  res["ratio_float32_pooled_ours_over_transformers"] = t_ref_pool / t_pool
  audio = a.seconds * a.batch
  _report(res, a, (("ours_float32", t_ours, audio),
                   ("transformers_float32", t_ref, audio),
                   ("ours_bfloat16", t_ours16, audio),
                   ("transformers_bfloat16", t_ref16, audio),
                   ("ours_float32_pooled", t_pool, audio),
                   ("transformers_float32_pooled", t_ref_pool, audio)))


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--family", default="whisper",
                 choices=["whisper"] + sorted(W2V))
  p.add_argument("--size", default="base", choices=sorted(SIZES))
  p.add_argument("--batch", type=int, default=4)
  p.add_argument("--seconds", type=float, default=5.0)
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--out", default="")
  a = p.parse_args()
  if a.family != "whisper":
    wav2vec2_family(a)
    return
  import jax
  import jax.numpy as jnp
  import torch
  import transformers
  from flax import nnx
  from fser_jax import encoders
  from fser_jax.encoders import whisper
  d, layers, heads, ffn = SIZES[a.size]
  torch.manual_seed(0)
  cfg = transformers.WhisperConfig(
      vocab_size=64, num_mel_bins=80, d_model=d, encoder_layers=layers,
      encoder_attention_heads=heads, encoder_ffn_dim=ffn, decoder_layers=1,
      decoder_attention_heads=heads, decoder_ffn_dim=ffn,
      max_target_positions=16, pad_token_id=0, bos_token_id=1,
      eos_token_id=2, decoder_start_token_id=1)
  ref = transformers.WhisperModel(cfg).eval()
  with tempfile.TemporaryDirectory() as tmp:
    ref.save_pretrained(tmp, safe_serialization=True)
    enc = encoders.load(tmp)
  ref = ref.encoder
  mel = np.random.default_rng(0).normal(size=(a.batch, 80, 3000)).astype(
      np.float32)
  res = {"size": a.size, "batch": a.batch, "device": common.device_name(),
         "threads": torch.get_num_threads(), "jax": jax.__version__,
         "torch": torch.__version__, "transformers": transformers.__version__}
  x = jnp.asarray(mel)
  t_ours = timed(lambda: whisper.forward(enc.model, x).block_until_ready(),
                 a.rounds)
  xt = torch.from_numpy(mel)
  with torch.inference_mode():
    t_ref = timed(lambda: ref(xt), a.rounds)
  # bfloat16
  model16 = nnx.clone(enc.model)
  state = nnx.state(model16)
  nnx.update(model16, jax.tree.map(lambda v: v.astype(jnp.bfloat16), state))
  x16 = x.astype(jnp.bfloat16)
  t_ours16 = timed(lambda: whisper.forward(model16, x16).block_until_ready(),
                   a.rounds)
  ref16 = ref.to(torch.bfloat16)
  with torch.inference_mode():
    t_ref16 = timed(lambda: ref16(xt.to(torch.bfloat16)), a.rounds)
  # Ours on 3 s clips (what the curve runs).
  short = jnp.asarray(mel[:, :, :300])
  t_short = timed(lambda: whisper.forward(enc.model, short
                                          ).block_until_ready(), a.rounds)
  audio = 30.0 * a.batch
  res["ratio_float32_ours_over_transformers"] = t_ref / t_ours
  res["ratio_bfloat16_ours_over_transformers"] = t_ref16 / t_ours16
  _report(res, a, (("ours_float32_30s", t_ours, audio),
                   ("transformers_float32_30s", t_ref, audio),
                   ("ours_bfloat16_30s", t_ours16, audio),
                   ("transformers_bfloat16_30s", t_ref16, audio),
                   ("ours_float32_3s_unpadded", t_short, 3.0 * a.batch)))


if __name__ == "__main__":
  main()
