"""The CPU kernels the FSER CNN runs on: 2x2 max-pooling with its own VJP,
im2col and phase-matmul convolutions, Winograd F(4x4, 3x3), dropout with
packed random bits, and `conv_pool`, the one place that chooses, per
`model.conv_impl`, how each block convolves and pools. What each saves is
measured in docs/performance.md; the CNN itself is fser_jax/model/cnn.py.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fser_jax.cpu import xla as xla_cpu


def _pool_window(x: jax.Array) -> jax.Array:
  b, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c)


def _max4(x: jax.Array) -> jax.Array:
  """The maximum of each 2x2 window of `x` [B, H, W, C] (even H, W), as
  three elementwise maxima of strided slices."""
  return jnp.maximum(jnp.maximum(x[:, 0::2, 0::2], x[:, 0::2, 1::2]),
                     jnp.maximum(x[:, 1::2, 0::2], x[:, 1::2, 1::2]))


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2/2 max-pooling (odd trailing rows/cols dropped).

  Same values as `nnx.max_pool(x, (2, 2), (2, 2))`. Its gradient routes the
  upstream gradient through a mask of the maxima saved by the forward pass:
  one select, where XLA:CPU's reduce-window gradient, and even the autodiff
  of reshape + max (compare, count, divide), cost several passes over the
  un-pooled activations.

  The maximum itself: in bfloat16 as maxima of strided slices, which
  XLA:CPU vectorises over the channels where its reduce over the reshaped
  window axes runs element by element; in float32 as that reduce, which
  XLA fuses with the convolution's output (slices were slower there).
  Measured figures for this and the kernels below: docs/performance.md.
  """
  if x.dtype == jnp.bfloat16:
    b, h, w, c = x.shape
    return _max4(x[:, :h // 2 * 2, :w // 2 * 2])
  return _pool_window(x).max(axis=(2, 4))


def _pool_fwd(x):
  m = max_pool_2x2(x)
  return m, (_pool_window(x) == m[:, :, None, :, None, :], x.shape)


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
  not; on GPUs both are cuDNN/cuBLAS-fast.
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
  That gradient gets faster (memory-bound: any number of chunks alike), the
  whole step not measurably, so `model.conv_impl='input_vjp'` is an option,
  not the default."""
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


def _phase_patches(x: jax.Array, kh: int, kw: int) -> jax.Array:
  """[B, H/2, W/2, (kh+1)*(kw+1)*C]: for each 2x2 pooling window, the
  SAME-padded input its four convolution outputs read (H, W even)."""
  h, w = x.shape[1:3]
  xp = jnp.pad(x, ((0, 0), (kh // 2, (kh - 1) // 2 + 1),
                   (kw // 2, (kw - 1) // 2 + 1), (0, 0)))
  return jnp.concatenate([xp[:, i:i + h:2, j:j + w:2]
                          for i in range(kh + 1) for j in range(kw + 1)],
                         axis=-1)


def _phase_kernel(kernel: jax.Array) -> jax.Array:
  """[kh, kw, C, F] -> [(kh+1)*(kw+1)*C, 4*F]: the kernel placed at each of
  the four offsets (r, s) of a 2x2 pooling window, zeros elsewhere."""
  kh, kw, c, f = kernel.shape
  ks = [jnp.pad(kernel, ((r, 1 - r), (s, 1 - s), (0, 0), (0, 0)))
        for r in (0, 1) for s in (0, 1)]
  return jnp.stack(ks, axis=3).reshape((kh + 1) * (kw + 1) * c, 4 * f)


@jax.custom_vjp
def _pooled_conv(x, kernel, bias):
  return _pooled_conv_fwd(x, kernel, bias)[0]


def _pooled_conv_fwd(x, kernel, bias):
  perturbed = getattr(x, "perturbed", True)
  x, kernel, bias = (getattr(a, "value", a) for a in (x, kernel, bias))
  p = _phase_patches(x, *kernel.shape[:2])
  z = (p @ _phase_kernel(kernel)).reshape(*p.shape[:3], 4, kernel.shape[3])
  y = z.max(axis=3)
  mask = z == y[:, :, :, None]
  return y + bias, (p, mask, kernel, x.shape if perturbed else None)


def _pooled_conv_bwd(res, g):
  # Each pooled value's gradient goes to the phase that was the maximum (all
  # tied ones, as max_pool_2x2), then one dot gives the phase kernel's
  # gradient; the input gradient only when the input is being differentiated
  # (a layer whose input is data skips it).
  p, mask, kernel, x_shape = res
  dz = jnp.where(mask, g[:, :, :, None], 0).reshape(-1, 4 * kernel.shape[3])
  dk = p.reshape(-1, p.shape[-1]).T @ dz
  dk = jax.vjp(_phase_kernel, kernel)[1](dk.astype(kernel.dtype))[0]
  dx = None
  if x_shape is not None:
    dp = (dz @ _phase_kernel(kernel).T).reshape(p.shape)
    dx = jax.vjp(lambda v: _phase_patches(v, *kernel.shape[:2]),
                 jnp.zeros(x_shape, p.dtype))[1](dp)[0]
  return dx, dk, g.sum((0, 1, 2))


_pooled_conv.defvjp(_pooled_conv_fwd, _pooled_conv_bwd, symbolic_zeros=True)


def pooled_conv(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
  """`max_pool_2x2(conv(x) + bias)` for a stride-1 SAME convolution, as one
  matmul over the pooling window's four phases: K = (kh+1)*(kw+1)*C, N = 4*F.

  For the first layer (C = 3) this replaces Eigen's convolution with K = 27
  and N = 32 and the full-size output's pooling: the forward is no faster;
  the saving is the backward's one dot instead of a pooling gradient and a
  K = 262,144 weight-gradient dot. It does 16/9 as many
  products (the phase kernel's zeros), so it only pays where the layer is
  memory-bound, i.e. few input channels. Odd trailing rows/columns are
  dropped, as `max_pool_2x2` does."""
  h, w = x.shape[1:3]
  ph, pw = h % 2, w % 2  # an odd last row/column: pad to even, crop below
  if ph or pw:
    x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)))
  y = _pooled_conv(x, kernel.astype(x.dtype), bias.astype(x.dtype))
  return y[:, :h // 2, :w // 2] if ph or pw else y


# Winograd F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional
# Neural Networks", 2016): a 4x4 output tile from a 6x6 input tile with 36
# products per input/output channel pair instead of 144, i.e. 4x fewer
# multiplications, at the price of linear transforms of the input, kernel and
# output (elementwise work XLA fuses) and relative errors of ~1e-5 in float32.
_WINO_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0],
                     [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                     [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float32)
_WINO_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6],
                    [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                    [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float32)
_WINO_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0],
                     [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float32)
# Layers with fewer input channels lose to the direct convolution: their
# transforms move more bytes than the 4x fewer products save (measured per
# layer: docs/performance.md).
WINOGRAD_MIN_CHANNELS = 64


def _lincomb(mat: np.ndarray, xs: Sequence[jax.Array]) -> list[jax.Array]:
  """[sum_j mat[i, j] * xs[j] for each row i], skipping zero coefficients so
  XLA fuses each transform into a few elementwise loops."""
  out = []
  for row in mat:
    acc = None
    for c, x in zip(row, xs):
      if c == 0:
        continue
      t = x if c == 1 else -x if c == -1 else x * float(c)
      acc = t if acc is None else acc + t
    out.append(acc)
  return out


def _winograd_tiles(x: jax.Array) -> jax.Array:
  """x [B, H, W, C] (H, W multiples of 4) -> B^T d B of every SAME-padded 6x6
  input tile: [36, B*H/4*W/4, C]. Rows, then columns, each one stacked
  array: a third of the operations of 36 separate combinations, faster to
  run and to compile."""
  _, h, w, c = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  rows = jnp.stack(_lincomb(_WINO_BT, [xp[:, i:i + h:4] for i in range(6)]))
  cols = _lincomb(_WINO_BT, [rows[:, :, :, j:j + w:4] for j in range(6)])
  return jnp.stack(cols, axis=1).reshape(36, -1, c)


def _winograd_untile(m: jax.Array, b: int, h: int, w: int) -> jax.Array:
  """A^T m A of every tile: [36, B*H/4*W/4, F] -> [B, H, W, F]."""
  m = m.reshape(6, 6, b, h // 4, w // 4, -1)
  r4 = jnp.stack(_lincomb(_WINO_AT, [m[i] for i in range(6)]))
  y = jnp.stack(_lincomb(_WINO_AT, [r4[:, j] for j in range(6)]), axis=-2)
  # [4 rows, B, H/4, W/4, 4 columns, F] -> [B, H, W, F]
  return jnp.transpose(y, (1, 2, 0, 3, 4, 5)).reshape(b, h, w, -1)


def _winograd_kernel(kernel: jax.Array) -> jax.Array:
  """G g G^T: [3, 3, C, F] -> [36, C, F], as elementwise combinations of the
  [C, F] slices. An einsum here became dots with K = 3 between transposing
  copies, a visible share of the step."""
  rows = _lincomb(_WINO_G, [kernel[i] for i in range(3)])  # 6 x [3, C, F]
  return jnp.stack([u for r in rows
                    for u in _lincomb(_WINO_G, [r[j] for j in range(3)])])


def _winograd_kernel_grad(du: jax.Array) -> jax.Array:
  """G^T du G: [36, C, F] -> [3, 3, C, F] (`_winograd_kernel` transposed)."""
  du = du.reshape(6, 6, *du.shape[1:])
  rows = _lincomb(_WINO_G.T, [du[a] for a in range(6)])  # 3 x [6, C, F]
  return jnp.stack([jnp.stack(_lincomb(_WINO_G.T, [r[b] for b in range(6)]))
                    for r in rows])


def _winograd_from_tiles(v: jax.Array, u: jax.Array, b: int, h: int,
                         w: int, swap: bool = False) -> jax.Array:
  """The convolution from its transformed input tiles v [36, P, C] and
  transformed kernel u [36, C, F] (swap: u is [36, F, C], i.e. the kernel
  with its channels swapped, contracted without a transposing copy)."""
  m = jnp.einsum("tpf,tcf->tpc" if swap else "tpc,tcf->tpf", v, u)
  return _winograd_untile(m, b, h, w)


def _winograd(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return _winograd_from_tiles(_winograd_tiles(x), _winograd_kernel(kernel),
                              *x.shape[:3])


@jax.custom_vjp
def _winograd_conv(x, kernel, bias):
  return _winograd(x, kernel) + bias


def _winograd_conv_fwd(x, kernel, bias):
  v = _winograd_tiles(x)  # kept for the weight gradient
  y = _winograd_from_tiles(v, _winograd_kernel(kernel), *x.shape[:3])
  return y + bias, (v, kernel)


def _winograd_conv_bwd(res, g):
  # The weight gradient in the Winograd domain from the saved input tiles
  # (A g A^T of each output tile, a dot over tiles, then G^T . G); the input
  # gradient is itself a SAME convolution of g with the kernel flipped and its
  # channels swapped, done the same way. Autodiff of the forward instead
  # scatters overlapping tiles back (slower).
  v, kernel = res
  b, h, w, f = g.shape
  gt = g.reshape(b, h // 4, 4, w // 4, 4, f)
  rows = jnp.stack(_lincomb(_WINO_AT.T, [gt[:, :, r] for r in range(4)]))
  dm = _lincomb(_WINO_AT.T, [rows[..., s, :] for s in range(4)])
  dm = jnp.stack(dm, axis=1).reshape(36, -1, f)
  dk = _winograd_kernel_grad(jnp.einsum("tpc,tpf->tcf", v, dm))
  dx = _winograd_from_tiles(_winograd_tiles(g),
                            _winograd_kernel(kernel[::-1, ::-1]), b, h, w,
                            swap=True)
  # A^T's second column is all ones, so dm[1, 1] is each tile's sum of g:
  # the bias gradient reads 1/16 of g's bytes instead of all of them.
  return dx, dk.astype(kernel.dtype), dm[7].sum(0)


_winograd_conv.defvjp(_winograd_conv_fwd, _winograd_conv_bwd)


def winograd_conv(x: jax.Array, kernel: jax.Array,
                  bias: jax.Array) -> jax.Array:
  """A stride-1 SAME 3x3 convolution by Winograd F(4x4, 3x3), with its own
  VJP; same parameters as `nnx.Conv`, values within ~1e-5 relative in float32.
  H and W need not be multiples of 4 (zero rows/columns are added and the
  output cropped: a SAME convolution's border is zeros anyway)."""
  if kernel.shape[:2] != (3, 3):
    raise ValueError(f"winograd_conv needs a 3x3 kernel, got {kernel.shape}")
  _, h, w, _ = x.shape
  ph, pw = -h % 4, -w % 4
  if ph or pw:
    x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)))
  y = _winograd_conv(x, kernel.astype(x.dtype), bias.astype(x.dtype))
  return y[:, :h, :w] if ph or pw else y


# jax.random.bernoulli (mode 'low') compares a float32 uniform, a multiple of
# 2^-23, with float32(p): what `keep_probability` relies on, and what
# tests/test_train.py checks against the installed JAX.
_UNIFORM_BITS = 23
# Field widths the packed draw may use: each one's rates are exactly the
# multiples of 2^-bits; 16-bit fields let rates near 0 or 1 (511/512) draw
# exactly, two values to a word.
_PACKED_BITS = (1, 2, 4, 8, 16)


def _packed_bits(rate: float) -> int | None:
  """The fewest bits whose fields express `rate` (0 < rate < 1) exactly, or
  None when no width in _PACKED_BITS does."""
  return next((b for b in _PACKED_BITS if (rate * (1 << b)).is_integer()),
              None)


def keep_probability(rate: float, packed: bool = False) -> float:
  """The probability `dropout(x, rate, key, packed)` keeps each value with,
  exactly; kept values are divided by it, so the output's expectation is
  the input.

  - rate <= 0: 1 (the input itself); rate >= 1: 0 (zeros).
  - packed, and rate a multiple of 2^-b for b in 1, 2, 4, 8, 16: 1 - rate,
    exactly.
  - otherwise (bernoulli, or packed at a rate no field width expresses):
    jax.random.bernoulli keeps where a uniform multiple of 2^-23 is below
    float32(1 - rate), i.e. with probability float32(1 - rate) rounded up
    to a multiple of 2^-23: within 2^-23 of 1 - rate (exactly 1 - rate for
    0.25, 0.5, 0.75, ...; 1 for a rate below 2^-25, which then drops
    nothing, as the draw would).
  """
  rate = float(rate)
  if rate <= 0.0:
    return 1.0
  if rate >= 1.0:
    return 0.0
  bits = _packed_bits(rate) if packed else None
  if bits is not None:
    return 1.0 - rate  # exact: a multiple of 2^-bits
  p = float(np.float32(1.0 - rate))
  return math.ceil(p * (1 << _UNIFORM_BITS)) / (1 << _UNIFORM_BITS)


def _scaled(x: jax.Array, keep: jax.Array, q: float) -> jax.Array:
  """Kept values divided by the keep probability `q`, dropped ones 0: x
  times 1/q in float32 (or x's dtype if wider), then rounded once to x's
  dtype. q is exact in float32 (a multiple of 2^-23 or 2^-16), its
  reciprocal within 2^-24 relative, so the scale carries no error beyond
  float32's rounding and each bfloat16 value is x / q rounded to the
  nearest. (XLA turns a division by a constant into this product anyway.)
  Scaling a bfloat16 by a Python float would round that float to bfloat16
  first (4/3 to 1.3359, 1 - 0.1 to 0.8984), a bias in every kept value."""
  wide = jnp.promote_types(x.dtype, jnp.float32)
  inv = np.asarray(np.float32(1) / np.float32(q), wide)
  return jnp.where(keep, x.astype(wide) * inv, 0).astype(x.dtype)


def dropout(x: jax.Array, rate: float, key: jax.Array,
            packed: bool = False) -> jax.Array:
  """Inverted dropout: each value kept with probability
  `keep_probability(rate, packed)` and divided by it, so the expectation is
  unchanged at every rate and dtype (up to the rounding of each value to
  x's dtype); rate <= 0 returns x itself, rate >= 1 zeros.

  By default one `jax.random.bernoulli` draw per value. `packed` (config
  model.dropout_bits='packed') draws as few random bits per value as
  express the rate exactly: 1 for 0.5, 2 for 0.25 or 0.75, 4 for multiples
  of 1/16, 8 for multiples of 1/256, 16 for multiples of 1/65536 (two
  values a word); one 32-bit word serving 32 / bits values, a faster step.
  Any other rate (0.1, 0.3, 0.001) no field width expresses, and the rate
  is never rounded: such a call draws bernoulli's mask (the same values as
  packed=False). Its masks keep the rate and independence
  tests/test_train.py checks, but fine-tuning from a source with huge
  logits ended at a higher training loss with them than with bernoulli's,
  unexplained (docs/performance.md; benchmarks/dropout_experiment.py
  repeats it over seeds against a control stream), so they are not the
  default.
  """
  q = keep_probability(rate, packed)
  if q == 1.0:
    return x
  if q == 0.0:
    return jnp.zeros_like(x)
  bits = _packed_bits(float(rate)) if packed else None
  if bits is None:
    keep = jax.random.bernoulli(key, jnp.float32(1.0 - float(rate)), x.shape)
    return _scaled(x, keep, q)
  levels = 1 << bits
  threshold = int(float(rate) * levels)  # exact: rate * levels is an integer
  per_word = 32 // bits
  n = x.size
  words = jax.random.bits(key, (-(-n // per_word),), jnp.uint32)
  shifts = jnp.arange(per_word, dtype=jnp.uint32) * jnp.uint32(bits)
  fields = (words[:, None] >> shifts) & jnp.uint32(levels - 1)
  keep = fields.reshape(-1)[:n].reshape(x.shape) >= threshold
  return _scaled(x, keep, q)


DROPOUT_STREAMS = ("step", "folded", "rbg")
# Any constant gives another stream; this one is fixed so that the control
# arm of benchmarks/dropout_experiment.py is reproducible.
_FOLDED_STREAM = 0x5eed


def dropout_key(key: jax.Array, stream: str = "step") -> jax.Array:
  """The key a dropout mask is drawn from (config model.dropout_stream):
  'step' the key itself; 'folded' the key folded with a constant, a
  different stream that is just as valid; 'rbg' an rbg key (XLA's
  RngBitGenerator) seeded from the key's bits."""
  if stream == "step":
    return key
  if stream == "folded":
    return jax.random.fold_in(key, _FOLDED_STREAM)
  if stream == "rbg":
    return jax.random.wrap_key_data(
        jax.random.bits(key, (4,), jnp.uint32), impl="rbg")
  raise ValueError(f"model.dropout_stream must be one of {DROPOUT_STREAMS}, "
                   f"got {stream!r}")


CONV_IMPLS = ("auto", "xla", "im2col", "input_vjp", "winograd", "onednn",
              "winograd_onednn", "onednn_winograd")
# need fser_jax.cpu.onednn
ONEDNN_IMPLS = ("onednn", "winograd_onednn", "onednn_winograd")
# float32: the phase matmul for layer 1, Winograd for >= 64 input channels
WINOGRAD_IMPLS = ("winograd", "winograd_onednn")


def resolve_conv_impl(conv_impl: str, dtype=jnp.float32) -> str:
  """'auto' -> the implementation measured fastest for this backend and CPU
  (fser_jax.cpu.xla.conv_impl); any other name as given."""
  if conv_impl != "auto":
    return conv_impl
  from fser_jax.cpu import onednn  # built on first use, where asked
  return xla_cpu.conv_impl(jax.default_backend(), jnp.dtype(dtype).name,
                           onednn_ok=onednn.ok,
                           winograd_ok=onednn.winograd_ok,
                           bfloat16_ok=onednn.bfloat16_ok)[0]


def conv_pool(conv_impl: str, i: int, cin: int, dtype,
              ksize: tuple[int, int] = (3, 3)):
  """How block i (cin input channels) computes its convolution and 2x2
  max-pooling under a resolved `conv_impl`: (fn(x, kernel, bias) -> pooled,
  what it is), or (None, 'XLA') for `nnx.Conv` then `max_pool_2x2`. The one
  place the choice is made (the model and benchmarks/profile_step.py)."""
  f32 = jnp.dtype(dtype) == jnp.float32
  if conv_impl == "im2col":
    return (lambda x, k, b: max_pool_2x2(im2col_conv(x, k, b))), "im2col"
  if conv_impl == "input_vjp" and i == 0:
    return (lambda x, k, b: max_pool_2x2(input_conv(x, k, b))), "im2col VJP"
  # Winograd, XLA's or oneDNN's, in float32 only (bfloat16 would lose the
  # transforms' precision); the first layer (few input channels,
  # memory-bound) as one phase matmul.
  if f32 and conv_impl in WINOGRAD_IMPLS + ("onednn_winograd",) and i == 0:
    return pooled_conv, "phase matmul"
  if (f32 and conv_impl in WINOGRAD_IMPLS and tuple(ksize) == (3, 3)
      and cin >= WINOGRAD_MIN_CHANNELS):
    return (lambda x, k, b: max_pool_2x2(winograd_conv(x, k, b))), \
        "Winograd F(4x4,3x3)"
  if conv_impl in ONEDNN_IMPLS:
    from fser_jax.cpu import onednn
    # 'onednn_winograd': oneDNN's own Winograd for every later 3x3 layer
    # (its kernels transform tiles in cache); otherwise oneDNN's direct
    # convolutions ('onednn': every layer; 'winograd_onednn': the layers
    # Winograd leaves; all of them in bfloat16).
    wino = f32 and conv_impl == "onednn_winograd" and tuple(ksize) == (3, 3)
    return ((lambda x, k, b: max_pool_2x2(onednn.conv(x, k, b,
                                                      winograd=wino))),
            "oneDNN Winograd" if wino else "oneDNN")
  return None, "XLA"
