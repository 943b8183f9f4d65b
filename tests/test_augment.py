"""Augmentation semantics: zero rates are the identity, a flip flips, a shift
shifts with nearest fill, zoom zooms around the centre."""

import jax
import jax.numpy as jnp
import numpy as np

from fser_jax.frontend import augment

IMG = jnp.asarray(np.random.default_rng(0).random((2, 8, 10, 3)), jnp.float32)


def _params(**kw):
  base = dict(shift_rows=0.0, shift_cols=0.0, zoom_rows=1.0, zoom_cols=1.0,
              flip=False)
  base.update(kw)
  return {k: jnp.asarray(v) for k, v in base.items()}


def test_zero_rates_are_identity():
  out = augment.augment_batch(jax.random.key(0), IMG, width_shift=0.0,
                              height_shift=0.0, zoom=0.0, horizontal_flip=False)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(IMG))
  out = augment.transform(IMG[0], _params())
  np.testing.assert_allclose(np.asarray(out), np.asarray(IMG[0]), atol=1e-6)


def test_flip_flips():
  out = augment.transform(IMG[0], _params(flip=True))
  np.testing.assert_allclose(np.asarray(out), np.asarray(IMG[0, :, ::-1]),
                             atol=1e-6)


def test_width_shift_shifts_with_nearest_fill():
  # Output column j samples input column j + 0.2 * 10 = j + 2.
  out = np.asarray(augment.transform(IMG[0], _params(shift_cols=0.2)))
  img = np.asarray(IMG[0])
  np.testing.assert_allclose(out[:, :-2], img[:, 2:], atol=1e-6)
  # Past the border, 'nearest' fill repeats the last column.
  np.testing.assert_allclose(out[:, -2:], img[:, -1:].repeat(2, 1), atol=1e-6)


def test_height_shift_shifts_rows():
  out = np.asarray(augment.transform(IMG[0], _params(shift_rows=-0.25)))
  img = np.asarray(IMG[0])
  np.testing.assert_allclose(out[2:], img[:-2], atol=1e-6)
  np.testing.assert_allclose(out[:2], img[:1].repeat(2, 0), atol=1e-6)


def test_zoom_samples_around_the_centre():
  # zoom 0.5 on columns: output column j samples 0.5 * (j - 4.5) + 4.5.
  img = np.tile(np.arange(10, dtype=np.float32), (8, 1))[..., None]
  out = np.asarray(augment.transform(jnp.asarray(img),
                                     _params(zoom_cols=0.5)))[0, :, 0]
  np.testing.assert_allclose(out, 0.5 * (np.arange(10) - 4.5) + 4.5, atol=1e-5)


def test_random_parameters_are_per_example_and_in_range():
  p = augment.sample_params(jax.random.key(1), 1000, width_shift=0.1,
                            height_shift=0.2, zoom=0.3, horizontal_flip=True)
  assert np.abs(np.asarray(p["shift_cols"])).max() <= 0.1
  assert np.abs(np.asarray(p["shift_rows"])).max() <= 0.2
  z = np.asarray(p["zoom_rows"])
  assert 0.7 <= z.min() and z.max() <= 1.3 and z.std() > 0.1
  assert 0.4 < np.asarray(p["flip"]).mean() < 0.6
  # Same key, same parameters; another key, others.
  q = augment.sample_params(jax.random.key(1), 1000, width_shift=0.1,
                            height_shift=0.2, zoom=0.3, horizontal_flip=True)
  np.testing.assert_array_equal(np.asarray(p["zoom_rows"]),
                                np.asarray(q["zoom_rows"]))


def test_crop_time_takes_a_random_window_per_example():
  img = jnp.broadcast_to(jnp.arange(40, dtype=jnp.float32)[None, None, :, None],
                         (6, 4, 40, 1))
  out = np.asarray(augment.crop_time(jax.random.key(0), img, 16))
  assert out.shape == (6, 4, 16, 1)
  starts = out[:, 0, 0, 0]
  for row, s in zip(out, starts):  # a contiguous window of the original
    np.testing.assert_array_equal(row[0, :, 0], np.arange(s, s + 16))
  assert len(set(starts.tolist())) > 1 and starts.max() <= 24
  assert augment.crop_time(jax.random.key(0), img[:, :, :16], 16).shape[2] == 16


def test_spec_masks_zero_bands_of_bounded_width():
  img = jnp.ones((64, 20, 50, 1))
  out = np.asarray(augment.spec_masks(jax.random.key(1), img, time_masks=2,
                                      freq_masks=1, max_width=0.1))
  cols_zero = (out[..., 0] == 0).all(axis=1)  # [B, W]: whole column masked
  rows_zero = (out[..., 0] == 0).all(axis=2)  # [B, H]
  assert cols_zero.sum(1).max() <= 2 * 5 and rows_zero.sum(1).max() <= 2
  assert cols_zero.any() and rows_zero.any()
  # Everything not in a masked row or column is untouched.
  kept = ~(cols_zero[:, None, :] | rows_zero[:, :, None])
  assert np.all(out[..., 0][kept] == 1)
  none = augment.spec_masks(jax.random.key(1), img, time_masks=0, freq_masks=0,
                            max_width=0.1)
  np.testing.assert_array_equal(np.asarray(none), np.asarray(img))


def test_from_config_without_crop_or_masks_draws_as_before():
  from fser_jax import config as config_lib
  cfg = config_lib.base().augment
  x = IMG
  a = augment.from_config(cfg)(jax.random.key(3), x)
  b = augment.augment_batch(jax.random.key(3), x, width_shift=cfg.width_shift,
                            height_shift=cfg.height_shift, zoom=cfg.zoom,
                            horizontal_flip=cfg.horizontal_flip)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_flip_is_flagged_only_where_columns_are_time():
  from fser_jax import config as config_lib
  cfg = config_lib.base().augment
  assert cfg.horizontal_flip  # the paper's augmentation, kept by default
  assert "backwards" in augment.time_reversal_note("logmel_time", cfg)
  assert augment.time_reversal_note("rgb", cfg) is None
  cfg.horizontal_flip = False
  assert augment.time_reversal_note("logmel_time", cfg) is None
  from configs import fser_plus
  plus = fser_plus.get_config()
  assert augment.time_reversal_note(plus.features.kind, plus.augment) is None
