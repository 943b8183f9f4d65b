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


def crop_time(key: jax.Array, images: jax.Array, width: int) -> jax.Array:
  """A random `width`-column window of each [H, W, C] image (per example)."""
  b, _, w, _ = images.shape
  if w <= width:
    return images
  starts = jax.random.randint(key, (b,), 0, w - width + 1)
  return jax.vmap(lambda img, s: jax.lax.dynamic_slice_in_dim(
      img, s, width, axis=1))(images, starts)


def spec_masks(key: jax.Array, images: jax.Array, *, time_masks: int,
               freq_masks: int, max_width: float) -> jax.Array:
  """SpecAugment's masks (Park et al., 2019): per example, `time_masks`
  bands of columns and `freq_masks` bands of rows, each up to `max_width`
  of its axis, set to 0 (the standardised inputs' mean)."""
  b, h, w, _ = images.shape

  def kept(k, n, count):  # [b, n]: False inside any of the bands
    if count == 0:
      return jnp.ones((b, n), bool)
    k1, k2 = jax.random.split(k)
    widths = jax.random.randint(k1, (b, count), 0, int(max_width * n) + 1)
    starts = jnp.floor(jax.random.uniform(k2, (b, count))
                       * (n - widths + 1)).astype(jnp.int32)
    pos = jnp.arange(n)[None, None, :]
    inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
    return ~inside.any(axis=1)

  kt, kf = jax.random.split(key)
  keep = kept(kf, h, freq_masks)[:, :, None] & kept(kt, w, time_masks)[:, None]
  return jnp.where(keep[..., None], images, 0).astype(images.dtype)


def time_reversal_note(features_kind: str, cfg) -> str | None:
  """Why `horizontal_flip` is wrong for a time-keeping front-end, or None.

  On the paper's image a flip is the Keras augmentation it used. On
  `logmel_time` columns are time at a fixed rate: a flip plays the clip
  backwards, so a rising pitch contour (surprise) becomes a falling one
  (anger, sadness) and the label no longer fits the image."""
  if features_kind == "logmel_time" and cfg.horizontal_flip:
    return ("augment.horizontal_flip plays logmel_time images backwards (a "
            "rising pitch contour becomes a falling one); set "
            "--config.augment.horizontal_flip=False as configs/fser_plus.py "
            "does")
  return None


def from_config(cfg, crop_to: int | None = None):
  """`(key, images) -> images` for an `augment` config block. `crop_to`:
  logmel_time's training window (features.frames), cut at random from the
  stored full-length images. Without crop and masks, exactly the Keras-style
  transforms (the same random draws as before either existed)."""
  time_masks = cfg.time_masks
  freq_masks = cfg.freq_masks

  def affine(key, images):
    return augment_batch(key, images, width_shift=cfg.width_shift,
                         height_shift=cfg.height_shift, zoom=cfg.zoom,
                         horizontal_flip=cfg.horizontal_flip)

  if not (crop_to or time_masks or freq_masks):
    return affine

  def fn(key, images):
    k_crop, k_affine, k_mask = jax.random.split(key, 3)
    if crop_to:
      images = crop_time(k_crop, images, crop_to)
    images = affine(k_affine, images)
    if time_masks or freq_masks:
      images = spec_masks(k_mask, images, time_masks=time_masks,
                          freq_masks=freq_masks,
                          max_width=cfg.mask_width)
    return images
  return fn
