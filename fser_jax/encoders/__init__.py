"""Pretrained speech encoders, run in JAX from checkpoint files the user has.

  from fser_jax import encoders
  enc = encoders.load("~/models/whisper-base")     # a folder
  states = enc.hidden_states(wav16k)               # [layers + 1, frames, d]

Families: Whisper's encoder (fser_jax/encoders/whisper.py). Checkpoints
(fser_jax/encoders/checkpoints.py): a Hugging Face folder (config.json +
model.safetensors, read with the safetensors package's numpy API, no torch)
or a CTranslate2 folder (model.bin, the format faster-whisper users have).
"""

from fser_jax.encoders.checkpoints import load  # noqa: F401
