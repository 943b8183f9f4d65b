"""Pretrained speech encoders, run in JAX from checkpoint files the user has.

  from fser_jax import encoders
  enc = encoders.load("~/models/wavlm-base-plus")  # a folder
  states = enc.hidden_states(wav16k)               # [layers + 1, frames, d]
  pooled = enc.pooled([wav16k, ...])               # [N, layers + 1, 2 d]

Families: Whisper's encoder (whisper.py); wav2vec2, HuBERT, WavLM and
data2vec-audio (wav2vec2.py). Checkpoints (checkpoints.py): a Hugging Face
folder (config.json + model.safetensors, read with the safetensors
package's numpy API, no torch) or a CTranslate2 folder (model.bin, the
format faster-whisper users have). Many clips, once, on disk: extract.py.
"""

from fser_jax.encoders.checkpoints import load  # noqa: F401


def from_config(encoder_cfg):
  """The encoder `config.encoder` names (path, family)."""
  return load(encoder_cfg.path, encoder_cfg.family)
