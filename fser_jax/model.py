"""Stage 4: the FSER CNN (paper, section 4.1 and Figure 5), in Flax NNX.

"Four blocks of convolutional layers with ReLU activation, maximum 2D pooling
layers and Dropouts interposed between them. The output of the four CLs is
flattened and fed into a series of three fully-connected layers, which is
finally fed into a softmax". The paper gives no filter counts, kernel sizes,
dropout rates or widths; ours (config `model`, defaults in fser_jax/config.py):
filters 32/64/128/256, 3x3 kernels with SAME padding, 2x2 max-pooling, dropout
0.25 after each block, dense 512 -> 256 -> classes with dropout 0.5 between.
The model returns logits; the softmax lives in the loss and in predictions.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


def _pool_window(x: jax.Array) -> jax.Array:
  b, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c)


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2/2 max-pooling as reshape + max (odd trailing rows/cols dropped).

  Same values as `nnx.max_pool(x, (2, 2), (2, 2))`. Its gradient routes the
  upstream gradient through a mask of the maxima saved by the forward pass:
  one select, where XLA:CPU's reduce-window gradient, and even the autodiff
  of reshape + max (compare, count, divide), cost several passes over the
  un-pooled activations (issue 5; measured 44 -> 19 ms on a 64x64x32 batch).
  """
  return _pool_window(x).max(axis=(2, 4))


def _pool_fwd(x):
  r = _pool_window(x)
  m = r.max(axis=(2, 4))
  return m, (r == m[:, :, None, :, None, :], x.shape)


def _pool_bwd(res, g):
  mask, shape = res
  dx = jnp.where(mask, g[:, :, None, :, None, :], 0).astype(g.dtype)
  b, h2, _, w2, _, c = mask.shape
  dx = dx.reshape(b, h2 * 2, w2 * 2, c)
  if dx.shape != shape:  # odd sizes: the dropped row/column gets no gradient
    dx = jnp.pad(dx, ((0, 0), (0, shape[1] - dx.shape[1]),
                      (0, shape[2] - dx.shape[2]), (0, 0)))
  return (dx,)


max_pool_2x2.defvjp(_pool_fwd, _pool_bwd)


def _patches(x: jax.Array, kh: int, kw: int) -> jax.Array:
  """[B, H, W, kh*kw*C]: each pixel's SAME-padded neighbourhood (im2col)."""
  h, w = x.shape[1:3]
  xp = jnp.pad(x, ((0, 0), (kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2),
                   (0, 0)))
  return jnp.concatenate([xp[:, i:i + h, j:j + w, :]
                          for i in range(kh) for j in range(kw)], axis=-1)


def im2col_conv(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
  """A stride-1 SAME convolution as one matmul over shifted copies (im2col).

  Same parameters and values as `nnx.Conv`. On XLA:CPU the matmul and its
  transposes run on the fast GEMM path, where the convolution's gradients do
  not (issue 5); on GPUs both are cuDNN/cuBLAS-fast.
  """
  return _patch_matmul(_patches(x, *kernel.shape[:2]), kernel, bias)


def _patch_matmul(p: jax.Array, kernel: jax.Array, bias: jax.Array):
  """im2col patches [..., kh*kw*C] times the kernel, plus the bias."""
  kh, kw, cin, f = kernel.shape
  return p @ kernel.reshape(kh * kw * cin, f).astype(p.dtype) + bias.astype(
      p.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def input_conv(x: jax.Array, kernel: jax.Array, bias: jax.Array,
               chunks: int = 8) -> jax.Array:
  """The first layer's convolution, whose input is data: `im2col_conv`'s
  values, with a VJP that skips the input gradient (nothing upstream needs
  it) and computes the weight gradient as `chunks` independent dots over
  slices of the batch's pixels, then sums them. The plain weight gradient is
  one dot with M = kh*kw*C = 27, N = 32 and K = B*H*W = 262,144 at batch 64.
  Measured on a 2-core AVX2 EPYC: that gradient alone 24.7 -> 11-13.5 ms
  (1 to 16 chunks alike: it is memory-bound), the whole step +1% (noise), so
  `model.conv_impl='input_vjp'` is an option, not the default (README)."""
  return im2col_conv(x, kernel, bias)


def _input_conv_fwd(x, kernel, bias, chunks):
  p = _patches(x, *kernel.shape[:2])
  return _patch_matmul(p, kernel, bias), (p, x, kernel)


def _input_conv_bwd(chunks, res, g):
  p, x, kernel = res
  n = p.shape[0] * p.shape[1] * p.shape[2]
  c = chunks if n % chunks == 0 else 1
  pc = p.reshape(c, n // c, p.shape[-1])
  gc = g.reshape(c, n // c, g.shape[-1])
  dk = jnp.einsum("cnk,cnf->ckf", pc, gc,
                  preferred_element_type=jnp.float32).sum(0)
  db = g.astype(jnp.float32).sum((0, 1, 2))
  return (jnp.zeros_like(x), dk.reshape(kernel.shape).astype(kernel.dtype),
          db.astype(kernel.dtype))


input_conv.defvjp(_input_conv_fwd, _input_conv_bwd)


def dropout(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
  """Inverted dropout drawing one random byte per value.

  `jax.random.bernoulli` runs the counter-based generator once per value; here
  one 32-bit draw gives four bytes (about 6x faster on CPU, where dropout's
  random bits were a fifth of the step). The rate is applied in steps of
  1/256 (0.25 and 0.5 exactly) and the kept values are scaled by the exact
  inverse of the keep probability, so the expectation is unchanged.
  """
  if rate <= 0.0:
    return x
  threshold = int(round(rate * 256))
  n = x.size
  words = jax.random.bits(key, (-(-n // 4),), jnp.uint32)
  u8 = jax.lax.bitcast_convert_type(words, jnp.uint8).reshape(-1)[:n]
  keep = u8.reshape(x.shape) >= threshold
  return jnp.where(keep, x * (256.0 / (256 - threshold)), 0).astype(x.dtype)


class FSER(nnx.Module):
  """The FSER CNN: images [B, H, W, C] -> logits [B, num_classes]."""

  def __init__(self, num_classes: int, *, in_channels: int = 3,
               image_size: int = 64, filters: Sequence[int] = (32, 64, 128, 256),
               kernel_size: int = 3, conv_dropout: float = 0.25,
               dense: Sequence[int] = (512, 256), dense_dropout: float = 0.5,
               conv_impl: str = "xla", time_pool: str = "",
               dtype=jnp.float32, rngs: nnx.Rngs):
    if conv_impl not in ("xla", "im2col", "input_vjp"):
      raise ValueError(f"model.conv_impl must be 'xla', 'im2col' or "
                       f"'input_vjp', got {conv_impl!r}")
    self.dtype = dtype
    self.conv_impl = conv_impl
    convs, size, cin = [], image_size, in_channels
    for f in filters:
      convs.append(nnx.Conv(cin, f, (kernel_size, kernel_size), padding="SAME",
                            dtype=dtype, param_dtype=jnp.float32, rngs=rngs))
      cin, size = f, size // 2
    self.convs = nnx.List(convs)
    self.conv_dropout = conv_dropout
    # time_pool: the last block's columns (time) are pooled before the dense
    # layers, so any clip length gives the same width (logmel_time): 'mean',
    # or 'mean_std' (statistics pooling, as x-vectors: the mean and the
    # spread over time, e.g. how much pitch and energy move); '' flattens.
    if time_pool not in ("", "mean", "mean_std"):
      raise ValueError(f"model.time_pool must be 'mean' or 'mean_std', got "
                       f"{time_pool!r}")
    self.time_pool = time_pool
    per_row = 2 if time_pool == "mean_std" else 1
    widths = [(size * per_row if time_pool else size * size) * cin, *dense,
              num_classes]
    self.dense = nnx.List([
        nnx.Linear(a, b, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
        for a, b in zip(widths[:-1], widths[1:])])
    self.dense_dropout = dense_dropout

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return self.dense[-1](self.embed(x, train=train, rngs=rngs)).astype(
        jnp.float32)

  def embed(self, x: jax.Array, *, train: bool = False,
            rngs: nnx.Rngs | None = None) -> jax.Array:
    """The last hidden layer's activations [B, dense[-1]] (before softmax)."""
    x = x.astype(self.dtype)
    for i, conv in enumerate(self.convs):
      if self.conv_impl == "im2col":
        y = im2col_conv(x, conv.kernel[...], conv.bias[...])
      elif self.conv_impl == "input_vjp" and i == 0:
        y = input_conv(x, conv.kernel[...], conv.bias[...])
      else:
        y = conv(x)
      # relu(pool(y)) == pool(relu(y)) (both monotone), on 4x fewer values.
      x = nnx.relu(max_pool_2x2(y))
      if train:
        x = dropout(x, self.conv_dropout, rngs.dropout())
    if self.time_pool == "mean_std":  # [B, rows, cols, C] -> [B, rows, 2C]
      x = jnp.concatenate([x.mean(axis=2), x.std(axis=2)], axis=-1)
    elif self.time_pool:
      x = x.mean(axis=2)  # [B, rows, cols, C] -> [B, rows, C]
    x = x.reshape(x.shape[0], -1)
    for layer in self.dense[:-1]:
      x = nnx.relu(layer(x))
      if train:
        x = dropout(x, self.dense_dropout, rngs.dropout())
    return x


def compute_dtype(precision: str):
  """'float32', or 'bfloat16' (bf16 compute, f32 parameters and optimizer)."""
  try:
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[precision]
  except KeyError:
    raise ValueError(f"config train.precision must be 'float32' or 'bfloat16', "
                     f"got {precision!r}") from None


def from_config(cfg, num_classes: int, in_channels: int, seed: int) -> FSER:
  return FSER(num_classes, in_channels=in_channels,
              image_size=cfg.features.image_size,
              filters=tuple(cfg.model.filters), kernel_size=cfg.model.kernel_size,
              conv_dropout=cfg.model.conv_dropout, dense=tuple(cfg.model.dense),
              dense_dropout=cfg.model.dense_dropout,
              conv_impl=cfg.model.get("conv_impl", "xla"),
              time_pool=(cfg.model.get("time_pool", "mean")
                         if cfg.features.kind == "logmel_time" else ""),
              dtype=compute_dtype(cfg.train.precision), rngs=nnx.Rngs(seed))
