"""The wav2vec 2.0 family in Flax NNX: wav2vec2 (Baevski et al., 2020),
HuBERT (Hsu et al., 2021), WavLM (Chen et al., 2022) and data2vec-audio
(Baevski et al., 2022), as transformers computes them.

Raw 16 kHz audio (zero mean and unit variance per clip where the
checkpoint's preprocessor says `do_normalize`), a convolutional feature
encoder (7 layers, 20 ms frames; group norm on the first layer's channels
in the 'group' variants, layer norm on every layer in the 'layer' ones), a
feature projection, convolutional positions (one weight-normalised grouped
convolution; data2vec-audio: a stack of plain ones, each with a layer norm),
then transformer layers, post-norm (base models) or pre-norm ('stable layer
norm', large models). WavLM adds a relative position bias (bucketed, from
its first layer) that each layer gates by its input.

The states returned are transformers' `hidden_states`: the transformer's
input, then every layer's output (in the pre-norm variants the last is
before the encoder's final layer norm, as transformers 5 returns it).

A batch of clips of different lengths is zero-padded and masked so that
every clip's states equal those of its own unpadded run: the group norm's
statistics and the positional convolutions read only the clip's frames.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fser_jax.cpu import xla as xla_cpu
from fser_jax.encoders import compiled, pooling
from fser_jax.encoders.attention import attend, gelu

SAMPLE_RATE = 16000
FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")


@dataclasses.dataclass(frozen=True)
class Config:
  family: str = "wav2vec2"
  conv_dim: tuple = (512,) * 7
  conv_kernel: tuple = (10, 3, 3, 3, 3, 2, 2)
  conv_stride: tuple = (5, 2, 2, 2, 2, 2, 2)
  conv_bias: bool = False
  feat_extract_norm: str = "group"  # 'group' | 'layer'
  d_model: int = 768
  layers: int = 12
  heads: int = 12
  ffn: int = 3072
  stable_layer_norm: bool = False  # pre-norm layers (large models)
  pos_kernel: int = 128
  pos_groups: int = 16
  pos_layers: int = 0  # data2vec-audio's stack of positional convolutions
  feat_proj_layer_norm: bool = True
  num_buckets: int = 320  # WavLM
  max_distance: int = 800  # WavLM
  eps: float = 1e-5
  do_normalize: bool = False


def frames_of(samples, cfg: Config, first: int = 0, last: int | None = None):
  """Frames the feature encoder (its layers first..last-1) makes of
  `samples` (int or array)."""
  for k, s in list(zip(cfg.conv_kernel, cfg.conv_stride))[first:last]:
    samples = (samples - k) // s + 1
  return samples



class ChannelNorm(nnx.Module):
  """The parameters of the first layer's GroupNorm with one group per
  channel over [B, T, C] (statistics over each clip's valid frames only);
  `first_layer_group` applies it, folded into the convolution."""

  def __init__(self, c: int):
    self.scale = nnx.Param(jnp.ones((c,)))
    self.bias = nnx.Param(jnp.zeros((c,)))


def first_layer_group(conv: nnx.Conv, norm: ChannelNorm, wav, valid):
  """GELU(GroupNorm(conv(wav))) for the single-channel first layer, in one
  pass over its output: the convolution is linear in each frame's k
  samples F_t, so a channel's mean over the valid frames is mean(F) . w_c
  and its variance w_c^T Cov(F) w_c (k x k statistics of the frames, the
  conv's bias cancelling), and the normalisation folds into the kernel and
  a bias. The output ([B, T, 512] at 3.2 kHz, the encoder's largest
  tensor) is then written once instead of three times."""
  w = conv.kernel.value[:, 0, :]  # [k, C]
  k, s = w.shape[0], conv.strides[0]
  b, t = valid.shape
  q = -(-k // s)  # frames span q rows of s samples
  rows = wav[:, :s * (t + q - 1)]
  rows = jnp.pad(rows, ((0, 0), (0, s * (t + q - 1) - rows.shape[1])))
  rows = rows.reshape(b, t + q - 1, s)
  w = jnp.pad(w, ((0, q * s - k), (0, 0)))
  frames = jnp.concatenate([rows[:, i:i + t] for i in range(q)], -1)
  m = valid[..., None].astype(wav.dtype)
  n = jnp.maximum(m.sum(1), 1.0)  # [B, 1]
  mf = (frames * m).sum(1) / n  # [B, q s]
  centred = (frames - mf[:, None]) * m
  cov = jnp.einsum("btk,btl->bkl", centred, centred) / n[..., None]
  var = (w[None] * jnp.einsum("bkl,lc->bkc", cov, w)).sum(1)  # [B, C]
  scale = jax.lax.rsqrt(var + 1e-5) * norm.scale.value
  shift = norm.bias.value - (mf @ w) * scale
  kernel = w[None] * scale[:, None]  # [B, q s, C]
  y = shift[:, None]
  for i in range(q):  # elementwise, so XLA fuses it with the GELU
    for j in range(s):
      y = y + rows[:, i:i + t, j, None] * kernel[:, None, i * s + j]
  return gelu(y)


def relative_buckets(t: int, num_buckets: int, max_distance: int
                     ) -> np.ndarray:
  """[T, T] WavLM's bucket of each (query, key) offset, in float32 as
  transformers computes it (a bucket boundary must not move)."""
  rel = np.arange(t)[None, :] - np.arange(t)[:, None]
  nb = num_buckets // 2
  out = (rel > 0).astype(np.int64) * nb
  rel = np.abs(rel)
  max_exact = nb // 2
  with np.errstate(divide="ignore"):
    large = np.log(rel.astype(np.float32) / np.float32(max_exact))
  large = large / np.float32(np.log(max_distance / max_exact))
  large = large * np.float32(nb - max_exact)
  large = np.where(rel < max_exact, 0, (np.float32(max_exact) + large))
  large = np.minimum(large.astype(np.int64), nb - 1)
  return out + np.where(rel < max_exact, rel, large)


class Attention(nnx.Module):
  def __init__(self, cfg: Config, first: bool, rngs: nnx.Rngs):
    d, self.heads = cfg.d_model, cfg.heads
    self.q = nnx.Linear(d, d, rngs=rngs)
    self.k = nnx.Linear(d, d, rngs=rngs)
    self.v = nnx.Linear(d, d, rngs=rngs)
    self.o = nnx.Linear(d, d, rngs=rngs)
    self.wavlm = cfg.family == "wavlm"
    if self.wavlm:
      dh = d // cfg.heads
      self.gate_const = nnx.Param(jnp.ones((cfg.heads,)))
      self.gate_linear = nnx.Linear(dh, 8, rngs=rngs)
      if first:
        self.rel_embed = nnx.Param(jnp.zeros((cfg.num_buckets, cfg.heads)))

  def __call__(self, x, valid, bias=None):
    b, t, d = x.shape
    h = self.heads
    split = lambda y: y.reshape(b, t, h, d // h)
    q = split(self.q(x)) * (d // h) ** -0.5
    gate = None
    if self.wavlm:  # gate [B, H, T] from the layer's input, per head
      g = self.gate_linear(jnp.swapaxes(split(x), 1, 2))
      g = jax.nn.sigmoid(g.reshape(b, h, t, 2, 4).sum(-1))
      gate = (g[..., 0] * (g[..., 1] * self.gate_const.value[None, :, None]
                           - 1.0) + 2.0)
    out = attend(q, split(self.k(x)), split(self.v(x)), valid, bias, gate)
    return self.o(out.reshape(b, t, d))


class Layer(nnx.Module):
  def __init__(self, cfg: Config, first: bool, rngs: nnx.Rngs):
    self.pre_norm = cfg.stable_layer_norm
    self.attn = Attention(cfg, first, rngs)
    self.attn_norm = nnx.LayerNorm(cfg.d_model, epsilon=cfg.eps, rngs=rngs)
    self.fc1 = nnx.Linear(cfg.d_model, cfg.ffn, rngs=rngs)
    self.fc2 = nnx.Linear(cfg.ffn, cfg.d_model, rngs=rngs)
    self.ffn_norm = nnx.LayerNorm(cfg.d_model, epsilon=cfg.eps, rngs=rngs)

  def __call__(self, x, valid, bias=None):
    ffn = lambda y: self.fc2(gelu(self.fc1(y)))
    if self.pre_norm:
      x = x + self.attn(self.attn_norm(x), valid, bias)
      return x + ffn(self.ffn_norm(x))
    x = self.attn_norm(x + self.attn(x, valid, bias))
    return self.ffn_norm(x + ffn(x))


class Encoder(nnx.Module):
  """Input [B, samples] 16 kHz audio (normalised as the checkpoint wants);
  output [layers + 1, B, frames, d]."""

  def __init__(self, cfg: Config, rngs: nnx.Rngs):
    self.cfg = cfg
    convs, norms = [], []
    c_in = 1
    for i, (c, k, s) in enumerate(zip(cfg.conv_dim, cfg.conv_kernel,
                                      cfg.conv_stride)):
      convs.append(nnx.Conv(c_in, c, (k,), strides=(s,), padding="VALID",
                            use_bias=cfg.conv_bias, rngs=rngs))
      if cfg.feat_extract_norm == "layer":
        norms.append(nnx.LayerNorm(c, epsilon=1e-5, rngs=rngs))
      elif i == 0:
        norms.append(ChannelNorm(c))
      c_in = c
    self.convs, self.conv_norms = nnx.List(convs), nnx.List(norms)
    self.proj_norm = (nnx.LayerNorm(c_in, epsilon=cfg.eps, rngs=rngs)
                      if cfg.feat_proj_layer_norm else None)
    self.proj = nnx.Linear(c_in, cfg.d_model, rngs=rngs)
    n_pos = max(cfg.pos_layers, 1)
    self.pos_convs = nnx.List([
        nnx.Conv(cfg.d_model, cfg.d_model, (cfg.pos_kernel,),
                 padding=((cfg.pos_kernel // 2,) * 2,),
                 feature_group_count=cfg.pos_groups, rngs=rngs)
        for _ in range(n_pos)])
    self.pos_norms = nnx.List([
        nnx.LayerNorm(cfg.d_model, epsilon=1e-5, use_scale=False,
                      use_bias=False, rngs=rngs)
        for _ in range(cfg.pos_layers)])
    self.norm = nnx.LayerNorm(cfg.d_model, epsilon=cfg.eps, rngs=rngs)
    self.layers = nnx.List([Layer(cfg, i == 0, rngs)
                            for i in range(cfg.layers)])

  def __call__(self, wav, samples=None):
    """`samples` [B] (optional): each clip's valid samples when a batch is
    zero-padded to one length."""
    cfg = self.cfg
    b, n = wav.shape
    lengths = (jnp.full((b,), n) if samples is None
               else jnp.asarray(samples))
    x = wav[..., None]
    for i, conv in enumerate(self.convs):
      lengths = (lengths - cfg.conv_kernel[i]) // cfg.conv_stride[i] + 1
      valid = (jnp.arange(frames_of(x.shape[1], cfg, i, i + 1))[None, :]
               < lengths[:, None])
      if cfg.feat_extract_norm == "group" and i == 0:
        x = first_layer_group(conv, self.conv_norms[0], wav, valid)
        continue
      x = conv(x)
      if cfg.feat_extract_norm == "layer":
        x = self.conv_norms[i](x)
      x = gelu(x)
    if self.proj_norm is not None:
      x = self.proj_norm(x)
    x = self.proj(x)
    t = x.shape[1]
    keep = valid[..., None].astype(x.dtype)  # padded frames read as zeros
    x = x * keep
    pos = x
    for i, conv in enumerate(self.pos_convs):
      pos = conv(pos)[:, :t]
      if cfg.pos_layers:
        pos = gelu(self.pos_norms[i](pos)) * keep
      else:
        pos = gelu(pos)
    x = x + pos
    if not cfg.stable_layer_norm:
      x = self.norm(x)
    bias = None
    if cfg.family == "wavlm":
      idx = jnp.asarray(relative_buckets(t, cfg.num_buckets, cfg.max_distance))
      bias = jnp.transpose(self.layers[0].attn.rel_embed.value[idx], (2, 0, 1))
    states = [x]
    for layer in self.layers:
      x = layer(x, valid, bias)
      states.append(x)
    return jnp.stack(states)


def build(cfg: Config, params: dict) -> Encoder:
  """An Encoder holding `params`, in transformers' names without the
  model's prefix ('feature_extractor.conv_layers.0.conv.weight' [out, in,
  k], 'encoder.layers.0.attention.q_proj.weight' [out, in], ...; float32
  numpy). The positional convolution's weight norm (weight_g / weight_v,
  or parametrizations.weight.original0 / original1) is folded in."""
  enc = Encoder(cfg, nnx.Rngs(0))

  def get(name):
    if name not in params:
      raise KeyError(name)
    return jnp.asarray(params[name], jnp.float32)

  def linear(mod, name):
    mod.kernel.value = get(f"{name}.weight").T
    mod.bias.value = get(f"{name}.bias")

  def norm(mod, name):
    mod.scale.value = get(f"{name}.weight")
    mod.bias.value = get(f"{name}.bias")

  def conv(mod, weight, bias=None):
    mod.kernel.value = jnp.transpose(jnp.asarray(weight, jnp.float32),
                                     (2, 1, 0))
    if bias is not None:
      mod.bias.value = get(bias)

  for i, c in enumerate(enc.convs):
    p = f"feature_extractor.conv_layers.{i}"
    conv(c, get(f"{p}.conv.weight"), f"{p}.conv.bias" if cfg.conv_bias
         else None)
    if cfg.feat_extract_norm == "layer" or i == 0:
      norm(enc.conv_norms[i], f"{p}.layer_norm")
  if cfg.feat_proj_layer_norm:
    norm(enc.proj_norm, "feature_projection.layer_norm")
  linear(enc.proj, "feature_projection.projection")
  if cfg.pos_layers:
    for i, c in enumerate(enc.pos_convs):
      p = f"encoder.pos_conv_embed.layers.{i}.conv"
      conv(c, get(f"{p}.weight"), f"{p}.bias")
  else:
    p = "encoder.pos_conv_embed.conv"
    if f"{p}.weight_g" in params:
      g, v = get(f"{p}.weight_g"), get(f"{p}.weight_v")
    else:
      g = get(f"{p}.parametrizations.weight.original0")
      v = get(f"{p}.parametrizations.weight.original1")
    # torch's weight_norm(dim=2): one norm per kernel position.
    w = g * v / jnp.sqrt((v ** 2).sum(axis=(0, 1), keepdims=True))
    conv(enc.pos_convs[0], w, f"{p}.bias")
  norm(enc.norm, "encoder.layer_norm")
  for i, layer in enumerate(enc.layers):
    p = f"encoder.layers.{i}"
    for mod, name in ((layer.attn.q, "q_proj"), (layer.attn.k, "k_proj"),
                      (layer.attn.v, "v_proj"), (layer.attn.o, "out_proj")):
      linear(mod, f"{p}.attention.{name}")
    norm(layer.attn_norm, f"{p}.layer_norm")
    linear(layer.fc1, f"{p}.feed_forward.intermediate_dense")
    linear(layer.fc2, f"{p}.feed_forward.output_dense")
    norm(layer.ffn_norm, f"{p}.final_layer_norm")
    if cfg.family == "wavlm":
      layer.attn.gate_const.value = get(
          f"{p}.attention.gru_rel_pos_const").reshape(-1)
      linear(layer.attn.gate_linear, f"{p}.attention.gru_rel_pos_linear")
      if i == 0:
        layer.attn.rel_embed.value = get(f"{p}.attention.rel_attn_embed.weight")
  return enc


def config_from_hf(cfg: dict, do_normalize: bool | None) -> Config:
  """A Config from a Hugging Face config.json's fields."""
  family = cfg["model_type"]
  for key in ("hidden_act", "feat_extract_activation"):
    if cfg.get(key, "gelu") != "gelu":
      raise ValueError(f"{key} {cfg[key]!r} (only 'gelu' is implemented)")
  if cfg.get("conv_pos_batch_norm"):
    raise ValueError("conv_pos_batch_norm (HuBERT's batch-normalised "
                     "positions) is not implemented")
  if cfg.get("add_adapter") or cfg.get("adapter_attn_dim"):
    raise ValueError("adapters are not implemented")
  d2v = family == "data2vec-audio"
  norm = cfg.get("feat_extract_norm", "layer" if d2v else "group")
  stable = bool(cfg.get("do_stable_layer_norm", False)) and not d2v
  return Config(
      family=family, conv_dim=tuple(cfg["conv_dim"]),
      conv_kernel=tuple(cfg["conv_kernel"]),
      conv_stride=tuple(cfg["conv_stride"]),
      conv_bias=bool(cfg.get("conv_bias", False)), feat_extract_norm=norm,
      d_model=int(cfg["hidden_size"]), layers=int(cfg["num_hidden_layers"]),
      heads=int(cfg["num_attention_heads"]),
      ffn=int(cfg["intermediate_size"]), stable_layer_norm=stable,
      pos_kernel=int(cfg["conv_pos_kernel_size"] if d2v
                     else cfg["num_conv_pos_embeddings"]),
      pos_groups=int(cfg["num_conv_pos_embedding_groups"]),
      pos_layers=int(cfg["num_conv_pos_embeddings"]) if d2v else 0,
      feat_proj_layer_norm=bool(cfg.get("feat_proj_layer_norm", True)),
      num_buckets=int(cfg.get("num_buckets", 320)),
      max_distance=int(cfg.get("max_bucket_distance", 800)),
      eps=float(cfg.get("layer_norm_eps", 1e-5)),
      do_normalize=(norm == "layer" if do_normalize is None
                    else bool(do_normalize)))


def normalise(wav: np.ndarray) -> np.ndarray:
  """Wav2Vec2FeatureExtractor's zero mean, unit variance (per clip)."""
  x = np.asarray(wav, np.float32)
  return (x - x.mean()) / np.sqrt(x.var() + 1e-7)


@compiled.jit(xla_cpu.ynn_off_options)
def forward(enc: Encoder, wav, samples=None):
  return enc(wav, samples)


@compiled.jit(xla_cpu.ynn_off_options)
def forward_pooled(enc: Encoder, wav, samples):
  """[layers + 1, B, 2 d]: every state's mean and std over each clip's
  frames (`pooling.mean_std`)."""
  return pooling.mean_std(enc(wav, samples), frames_of(samples, enc.cfg))


def pooled(enc: Encoder, wavs: list[np.ndarray], bucket: int = SAMPLE_RATE,
           batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
  """([N, layers + 1, 2 d] every layer's mean and std over each clip's
  frames, [N] frames), clips batched by length (zero-padded to a multiple
  of `bucket` samples and masked: the numbers of one clip at a time)."""
  cfg = enc.cfg
  out = np.zeros((len(wavs), cfg.layers + 1, 2 * cfg.d_model), np.float32)
  counts = np.array([frames_of(len(w), cfg) for w in wavs])
  if (counts < 1).any():
    raise ValueError(f"a clip of {min(len(w) for w in wavs)} samples is "
                     "shorter than the feature encoder's receptive field")
  order = np.argsort([len(w) for w in wavs])
  for s in range(0, len(order), batch):
    idx = order[s:s + batch]
    n = np.array([len(wavs[i]) for i in idx])
    width = int(-(-n.max() // bucket) * bucket)
    x = np.zeros((len(idx), width), np.float32)
    for j, i in enumerate(idx):
      w = normalise(wavs[i]) if cfg.do_normalize else wavs[i]
      x[j, :n[j]] = w
    out[idx] = np.swapaxes(np.asarray(
        forward_pooled(enc, x, jnp.asarray(n))), 0, 1)
  return out, counts


WINDOW = 30 * SAMPLE_RATE


def pooled_clips(enc: Encoder, wavs: list[np.ndarray], batch: int = 8
                 ) -> np.ndarray:
  """`pooled` for 16 kHz clips of any length, in consecutive 30 s windows
  (attention's memory grows with the square of the length) pooled together
  (a last window under 1 s is left out)."""
  owners, pieces = pooling.windows(wavs, WINDOW, SAMPLE_RATE)
  per, counts = pooled(enc, pieces, batch=batch)
  return pooling.combine(per, counts, owners, len(wavs))
