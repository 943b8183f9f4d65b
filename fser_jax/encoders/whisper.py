"""OpenAI Whisper's audio encoder (Radford et al., 2022) in Flax NNX.

Front-end as Whisper computes it (transformers' WhisperFeatureExtractor):
16 kHz audio, 25 ms Hann windows (periodic) every 10 ms with the signal
reflected at its ends, power spectrum, Slaney mel filters, log10 floored at
1e-10, the last frame dropped, floored at the clip's maximum minus 8, then
(x + 4) / 4. Encoder: two 1-D convolutions (kernel 3; the second of stride
2) with GELU, sinusoidal positions, pre-norm transformer layers (query and
value projections with bias, key without), a final layer norm.

Whisper was trained on 30 s windows (3000 frames, 1500 positions). Shorter
clips run unpadded here with the positions sliced to their length
(`pad_to_30s=False`), which costs ~clip-length instead of 30 s of compute;
`pad_to_30s=True` gives the padded form the reference implementations
compute (docs/encoders.md compares the two).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fser_jax.encoders import pooling
from fser_jax.encoders.attention import LONG, attend, gelu  # noqa: F401

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
CHUNK_SAMPLES = 30 * SAMPLE_RATE


@dataclasses.dataclass(frozen=True)
class Config:
  n_mels: int = 80
  d_model: int = 512
  layers: int = 6
  heads: int = 8
  ffn: int = 2048
  max_positions: int = 1500


def mel_filters(n_mels: int) -> np.ndarray:
  import librosa
  return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels,
                             fmin=0.0, fmax=SAMPLE_RATE / 2, htk=False,
                             norm="slaney").astype(np.float64)


def log_mel(wav: np.ndarray, n_mels: int, pad_to: int | None = None
            ) -> np.ndarray:
  """[n_mels, frames] Whisper's log-mel of 16 kHz audio (frames: samples //
  160, or pad_to // 160 after zero-padding or cutting to `pad_to`)."""
  x = np.asarray(wav, np.float64)
  if pad_to is not None:
    x = np.pad(x[:pad_to], (0, max(0, pad_to - x.size)))
  x = np.pad(x, (N_FFT // 2, N_FFT // 2), mode="reflect")
  n = 1 + (x.size - N_FFT) // HOP
  idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
  window = np.hanning(N_FFT + 1)[:-1]
  power = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2
  mel = mel_filters(n_mels) @ power.T
  log = np.log10(np.maximum(mel, 1e-10))[:, :-1]
  log = np.maximum(log, log.max() - 8.0)
  return ((log + 4.0) / 4.0).astype(np.float32)


def sinusoids(length: int, channels: int) -> np.ndarray:
  """Whisper's fixed positional table (max timescale 10000)."""
  inc = np.log(10000) / (channels // 2 - 1)
  inv = np.exp(-inc * np.arange(channels // 2))
  t = np.arange(length)[:, None] * inv[None, :]
  return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)



class Attention(nnx.Module):
  def __init__(self, d: int, heads: int, rngs: nnx.Rngs):
    self.heads = heads
    self.q = nnx.Linear(d, d, rngs=rngs)
    self.k = nnx.Linear(d, d, use_bias=False, rngs=rngs)
    self.v = nnx.Linear(d, d, rngs=rngs)
    self.o = nnx.Linear(d, d, rngs=rngs)

  def __call__(self, x, valid=None):
    b, t, d = x.shape
    h = self.heads
    split = lambda y: y.reshape(b, t, h, d // h)
    q = split(self.q(x)) * (d // h) ** -0.5
    out = attend(q, split(self.k(x)), split(self.v(x)), valid)
    return self.o(out.reshape(b, t, d))


class Layer(nnx.Module):
  def __init__(self, cfg: Config, rngs: nnx.Rngs):
    self.attn_norm = nnx.LayerNorm(cfg.d_model, epsilon=1e-5, rngs=rngs)
    self.attn = Attention(cfg.d_model, cfg.heads, rngs)
    self.ffn_norm = nnx.LayerNorm(cfg.d_model, epsilon=1e-5, rngs=rngs)
    self.fc1 = nnx.Linear(cfg.d_model, cfg.ffn, rngs=rngs)
    self.fc2 = nnx.Linear(cfg.ffn, cfg.d_model, rngs=rngs)

  def __call__(self, x, valid=None):
    x = x + self.attn(self.attn_norm(x), valid)
    return x + self.fc2(gelu(self.fc1(self.ffn_norm(x))))


class Encoder(nnx.Module):
  """Input [B, n_mels, frames] log-mel; output [layers + 1, B, T, d]: the
  embeddings (convolutions + positions) and every layer's output, the last
  after the final layer norm (transformers' `hidden_states` order)."""

  def __init__(self, cfg: Config, rngs: nnx.Rngs):
    self.cfg = cfg
    self.conv1 = nnx.Conv(cfg.n_mels, cfg.d_model, (3,), padding=((1, 1),),
                          rngs=rngs)
    self.conv2 = nnx.Conv(cfg.d_model, cfg.d_model, (3,), strides=(2,),
                          padding=((1, 1),), rngs=rngs)
    self.positions = nnx.Variable(jnp.asarray(sinusoids(cfg.max_positions,
                                                        cfg.d_model)))
    self.layers = nnx.List([Layer(cfg, rngs) for _ in range(cfg.layers)])
    self.norm = nnx.LayerNorm(cfg.d_model, epsilon=1e-5, rngs=rngs)

  def __call__(self, mel, frames=None):
    """`frames` [B] (optional): each clip's valid mel frames when a batch
    is zero-padded to one length; each clip's states then equal its own
    unpadded run's at its valid positions (ceil(frames / 2))."""
    x = gelu(self.conv1(jnp.swapaxes(mel, 1, 2)))
    valid = None
    if frames is not None:  # what conv2 reads past a clip's end: zeros
      x = x * (jnp.arange(x.shape[1])[None, :] < frames[:, None])[..., None]
    x = gelu(self.conv2(x))
    t = x.shape[1]
    if t > self.cfg.max_positions:
      raise ValueError(f"{t} positions: Whisper's encoder takes at most "
                       f"{self.cfg.max_positions} (30 s); cut the clip")
    if frames is not None:
      valid = jnp.arange(t)[None, :] < (frames[:, None] + 1) // 2
    x = x + self.positions.value[:t]
    states = [x]
    for layer in self.layers:
      x = layer(x, valid)
      states.append(x)
    states[-1] = self.norm(x)
    return jnp.stack(states)


def build(cfg: Config, params: dict) -> Encoder:
  """An Encoder holding `params`, in transformers' WhisperEncoder names
  without prefix ('conv1.weight' [out, in, 3], 'layers.0.fc1.weight'
  [out, in], 'embed_positions.weight', ...; float32 numpy)."""
  enc = Encoder(cfg, nnx.Rngs(0))
  used = set()

  def get(name):
    if name not in params:
      raise KeyError(name)
    used.add(name)
    return jnp.asarray(params[name], jnp.float32)

  def linear(mod, name, bias=True):
    mod.kernel.value = get(f"{name}.weight").T
    if bias:
      mod.bias.value = get(f"{name}.bias")

  def norm(mod, name):
    mod.scale.value = get(f"{name}.weight")
    mod.bias.value = get(f"{name}.bias")

  for i, conv in ((1, enc.conv1), (2, enc.conv2)):
    conv.kernel.value = jnp.transpose(get(f"conv{i}.weight"), (2, 1, 0))
    conv.bias.value = get(f"conv{i}.bias")
  if "embed_positions.weight" in params:
    enc.positions.value = get("embed_positions.weight")
  for i, layer in enumerate(enc.layers):
    p = f"layers.{i}"
    norm(layer.attn_norm, f"{p}.self_attn_layer_norm")
    linear(layer.attn.q, f"{p}.self_attn.q_proj")
    linear(layer.attn.k, f"{p}.self_attn.k_proj", bias=False)
    linear(layer.attn.v, f"{p}.self_attn.v_proj")
    linear(layer.attn.o, f"{p}.self_attn.out_proj")
    norm(layer.ffn_norm, f"{p}.final_layer_norm")
    linear(layer.fc1, f"{p}.fc1")
    linear(layer.fc2, f"{p}.fc2")
  norm(enc.norm, "layer_norm")
  return enc


@nnx.jit
def forward(enc: Encoder, mel, frames=None):
  return enc(mel, frames)


@nnx.jit
def forward_pooled(enc: Encoder, mel, frames):
  """[layers + 1, B, 2 d]: every state's mean and std over each clip's
  positions (`pooling.mean_std`; the stride-2 conv halves the frames)."""
  width = mel.shape[2]
  return pooling.mean_std(enc(mel, frames),
                          (jnp.minimum(frames, width) + 1) // 2)


def pooled(enc: Encoder, mels: list[np.ndarray], bucket: int = 100,
           batch: int = 8) -> np.ndarray:
  """[N, layers + 1, 2 d]: every layer's mean and std over each clip's
  valid positions, clips batched by length (padded to a multiple of
  `bucket` frames, masked: the same numbers as one clip at a time)."""
  n_states = enc.cfg.layers + 1
  out = np.zeros((len(mels), n_states, 2 * enc.cfg.d_model), np.float32)
  order = np.argsort([m.shape[1] for m in mels])
  for s in range(0, len(order), batch):
    idx = order[s:s + batch]
    frames = np.array([mels[i].shape[1] for i in idx])
    width = int(-(-frames.max() // bucket) * bucket)
    width = min(width, 2 * enc.cfg.max_positions)
    x = np.zeros((len(idx), enc.cfg.n_mels, width), np.float32)
    for j, i in enumerate(idx):
      x[j, :, :frames[j]] = mels[i][:, :width]
    out[idx] = np.swapaxes(np.asarray(
        forward_pooled(enc, x, jnp.asarray(frames))), 0, 1)
  return out


def pooled_clips(enc: Encoder, wavs: list[np.ndarray], batch: int = 8
                 ) -> np.ndarray:
  """`pooled` for 16 kHz clips of any length: a clip longer than the
  encoder's window (30 s for Whisper) runs as consecutive windows, and its
  mean and std are those of all its windows' positions together (a last
  window under 1 s is left out)."""
  owners, pieces = pooling.windows(
      wavs, 2 * enc.cfg.max_positions * HOP, SAMPLE_RATE)
  mels = [log_mel(w, enc.cfg.n_mels) for w in pieces]
  counts = [(m.shape[1] + 1) // 2 for m in mels]
  return pooling.combine(pooled(enc, mels, batch=batch), counts, owners,
                         len(wavs))
