"""Stage 3: image augmentation on the accelerator, as Keras' ImageDataGenerator.

The paper (Algorithm 1) used `keras.preprocessing.image.ImageDataGenerator`
with width shift, height shift, zoom and horizontal flip, nearest fill. Keras
draws, per image:
  tx ~ U(-height_shift, height_shift) * H   (rows)
  ty ~ U(-width_shift, width_shift) * W     (columns)
  zx, zy ~ U(1 - zoom, 1 + zoom) independently
  flip ~ Bernoulli(0.5) if horizontal_flip
and samples the input at `zoom * (out - centre) + centre + shift` with bilinear
interpolation (scipy order 1), clamping coordinates at the border ('nearest'
fill). This module does the same for a batch, with per-example parameters drawn
from an explicit PRNG key, jit- and vmap-friendly. Zero rates are the identity.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sample_params(key: jax.Array, batch: int, *, width_shift: float,
                  height_shift: float, zoom: float,
                  horizontal_flip: bool) -> dict[str, jax.Array]:
  """Per-example transform parameters (shifts as fractions of the size)."""
  k_tx, k_ty, k_zx, k_zy, k_flip = jax.random.split(key, 5)
  u = lambda k, r: jax.random.uniform(k, (batch,), minval=-r, maxval=r)
  return {
      "shift_rows": u(k_tx, height_shift),
      "shift_cols": u(k_ty, width_shift),
      "zoom_rows": 1.0 + u(k_zx, zoom),
      "zoom_cols": 1.0 + u(k_zy, zoom),
      "flip": (jax.random.bernoulli(k_flip, 0.5, (batch,)) if horizontal_flip
               else jnp.zeros((batch,), bool)),
  }


def transform(img: jax.Array, p: dict[str, jax.Array]) -> jax.Array:
  """Applies one example's parameters to an [H, W, C] image."""
  h, w = img.shape[:2]
  img = jnp.where(p["flip"], img[:, ::-1], img)
  rows = jnp.arange(h, dtype=jnp.float32)
  cols = jnp.arange(w, dtype=jnp.float32)
  cr, cc = (h - 1) / 2.0, (w - 1) / 2.0
  src_r = p["zoom_rows"] * (rows - cr) + cr + p["shift_rows"] * h
  src_c = p["zoom_cols"] * (cols - cc) + cc + p["shift_cols"] * w
  # 'nearest' fill: coordinates outside the image take the border's value.
  src_r = jnp.clip(src_r, 0.0, h - 1.0)
  src_c = jnp.clip(src_c, 0.0, w - 1.0)

  def axis_weights(src, n):
    # Separable bilinear interpolation as an [out, in] matrix: two non-zeros a
    # row, exact 0/1 at integer coordinates (so zero rates are the identity).
    lo = jnp.floor(src)
    frac = src - lo
    lo = lo.astype(jnp.int32)
    hi = jnp.minimum(lo + 1, n - 1)
    return (jax.nn.one_hot(lo, n) * (1.0 - frac)[:, None]
            + jax.nn.one_hot(hi, n) * frac[:, None])

  wr = axis_weights(src_r, h)
  wc = axis_weights(src_c, w)
  return jnp.einsum("ih,hwc,jw->ijc", wr, img.astype(jnp.float32), wc,
                    precision=jax.lax.Precision.HIGHEST).astype(img.dtype)


def augment_batch(key: jax.Array, images: jax.Array, *, width_shift: float,
                  height_shift: float, zoom: float,
                  horizontal_flip: bool) -> jax.Array:
  """Augments an [B, H, W, C] batch with per-example random parameters."""
  if not (width_shift or height_shift or zoom or horizontal_flip):
    return images
  params = sample_params(key, images.shape[0], width_shift=width_shift,
                         height_shift=height_shift, zoom=zoom,
                         horizontal_flip=horizontal_flip)
  return jax.vmap(transform)(images, params)


def from_config(cfg):
  """`(key, images) -> images` for an `augment` config block."""
  def fn(key, images):
    return augment_batch(key, images, width_shift=cfg.width_shift,
                         height_shift=cfg.height_shift, zoom=cfg.zoom,
                         horizontal_flip=cfg.horizontal_flip)
  return fn
