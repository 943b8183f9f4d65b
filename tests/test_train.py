"""The jitted core: a train step lowers the loss, checkpoints round-trip,
sharded training equals single-device training."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from fser_jax.frontend import augment
from fser_jax.train import checkpoints
from fser_jax import config as config_lib
from fser_jax.model import kernels
from fser_jax.model import cnn as model_lib
from fser_jax.train import loop as train
from fser_jax.train import step as step_lib
from fser_jax.train import inputs as train_inputs
from fser_jax.model import forward
from fser_jax.train import optimizer as state_lib


def _small_config():
  c = config_lib.base()
  c.model.filters = (8, 8, 16, 16)
  c.model.dense = (32, 16)
  c.train.learning_rate = 0.05
  c.train.momentum = 0.9
  c.train.num_epochs = 1
  return c


def _batch(n=16, seed=0):
  """Noise images whose class is a bright band at a class-specific height."""
  rng = np.random.default_rng(seed)
  y = (np.arange(n) % 4).astype(np.int32)
  x = 0.3 * rng.random((n, 64, 64, 3)).astype(np.float32)
  for i, c in enumerate(y):
    x[i, 16 * c:16 * c + 8] += 0.7
  return jnp.asarray(x), jnp.asarray(y)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("shape", [(2, 8, 6, 3), (2, 7, 9, 4)])
def test_max_pool_matches_nnx_max_pool(dtype, shape):
  """Both forms of the maximum (float32's reduce, bfloat16's strided
  slices), odd sizes included."""
  x = jnp.asarray(np.random.default_rng(0).random(shape), dtype)
  y = kernels.max_pool_2x2(x)
  assert y.dtype == dtype
  np.testing.assert_array_equal(y, nnx.max_pool(x, (2, 2), (2, 2)))


def test_train_steps_lower_the_loss_on_a_fixed_batch():
  c = _small_config()
  graphdef, state, tx = state_lib.create(c, 4, 3, steps_per_epoch=20)
  x, y = _batch()
  ident = lambda k, im: im
  chunk = step_lib.make_train_chunk(graphdef, tx, ident)
  idx = jnp.tile(jnp.arange(16)[None], (20, 1))
  logits0 = forward.logits_fn(graphdef, state["params"], x)
  loss0 = float(optax.softmax_cross_entropy_with_integer_labels(logits0, y).mean())
  state, m = chunk(state, x, y, idx, jax.random.key(0))
  logits = forward.logits_fn(graphdef, state["params"], x)
  loss = float(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean())
  assert int(state["step"]) == 20
  assert m["loss"].shape == (20,)
  assert loss < 0.5 * loss0, (loss0, loss)


def test_train_step_alone_is_pure_and_is_what_a_chunk_runs():
  """`train_step(state, batch, key)` called on its own, jitted: the same
  arguments give bitwise the same new state (no hidden state, no global
  key), its inputs are left as they were, it follows the gradient (the
  batch's loss falls after a step at a small rate), and a one-step chunk
  of the training set runs exactly it, with the run's key folded with the
  step."""
  c = _small_config()
  c.train.learning_rate = 0.01
  graphdef, state, tx = state_lib.create(c, 4, 3, steps_per_epoch=4)
  x, y = _batch()
  aug = augment.from_config(c.augment)
  train_step = jax.jit(step_lib.make_train_step(graphdef, tx, aug))
  idx = jnp.arange(8)
  batch = step_lib.gather(x, y, idx)
  np.testing.assert_array_equal(batch["x"], x[:8])
  before = jax.tree.map(np.array, state)
  key = jax.random.fold_in(jax.random.key(3), 0)
  a, ma = train_step(state, batch, key)
  b, mb = train_step(state, batch, key)
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
  for u, v in zip(jax.tree.leaves(state), jax.tree.leaves(before)):
    np.testing.assert_array_equal(np.asarray(u), v)  # not donated, unchanged
  assert int(a["step"]) == 1 and float(ma["loss"]) == float(mb["loss"])
  other, _ = train_step(state, batch, jax.random.key(4))  # other dropout
  assert any(not np.array_equal(np.asarray(u), np.asarray(v)) for u, v in
             zip(jax.tree.leaves(a["params"]), jax.tree.leaves(other["params"])))
  # Without augmentation and dropout the loss on the batch must fall.
  c0 = _small_config()
  c0.model.conv_dropout = c0.model.dense_dropout = 0.0
  g0, s0, tx0 = state_lib.create(c0, 4, 3, steps_per_epoch=4)
  plain = jax.jit(step_lib.make_train_step(g0, tx0, lambda k, im: im))
  s1, m1 = plain(s0, batch, key)
  _, m2 = plain(s1, batch, key)
  assert float(m2["loss"]) < float(m1["loss"])
  # The chunk: the same step on the same batch and key, bitwise.
  chunk = step_lib.make_train_chunk(graphdef, tx, aug)
  fresh = jax.tree.map(jnp.asarray, before)
  c1, mc = chunk(fresh, x, y, idx[None], jax.random.key(3))
  for u, v in zip(jax.tree.leaves(c1), jax.tree.leaves(a)):
    np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
  np.testing.assert_array_equal(np.asarray(mc["loss"])[0], np.asarray(ma["loss"]))


def test_a_chunk_equals_the_same_steps_one_by_one():
  c = _small_config()
  graphdef, s1, tx = state_lib.create(c, 4, 3, steps_per_epoch=4)
  _, s2, _ = state_lib.create(c, 4, 3, steps_per_epoch=4)
  x, y = _batch()
  aug = augment.from_config(c.augment)
  chunk = step_lib.make_train_chunk(graphdef, tx, aug)
  idx = jnp.asarray(np.random.default_rng(1).integers(0, 16, (4, 8)))
  key = jax.random.key(3)
  s1, _ = chunk(s1, x, y, idx, key)
  for i in range(4):
    s2, _ = chunk(s2, x, y, idx[i:i + 1], key)
  for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_checkpoint_round_trips_to_equal_arrays(tmp_path):
  c = _small_config()
  graphdef, state, tx = state_lib.create(c, 4, 3, steps_per_epoch=3)
  x, y = _batch()
  chunk = step_lib.make_train_chunk(graphdef, tx, lambda k, im: im)
  state, _ = chunk(state, x, y, jnp.zeros((3, 8), jnp.int32), jax.random.key(0))
  want = jax.tree.map(np.asarray, state)
  ck = checkpoints.Checkpoints(str(tmp_path))
  ck.save_latest(3, state)
  ck.wait()
  _, fresh, _ = state_lib.create(c, 4, 3, steps_per_epoch=3)
  restored = ck.restore(checkpoints.abstract_like(fresh))
  assert int(restored["step"]) == 3
  flat_w = jax.tree.leaves(want)
  flat_r = jax.tree.leaves(restored)
  assert len(flat_w) == len(flat_r)
  for a, b in zip(flat_w, flat_r):
    np.testing.assert_array_equal(a, np.asarray(b))
  # ...and differs from a fresh init (the test would catch a no-op restore).
  fresh_p = jax.tree.leaves(fresh["params"])
  rest_p = jax.tree.leaves(restored["params"])
  assert len(fresh_p) == len(rest_p)
  assert not all(np.array_equal(np.asarray(a), np.asarray(b))
                 for a, b in zip(fresh_p, rest_p))


def test_bfloat16_compute_keeps_float32_parameters():
  c = _small_config()
  c.train.precision = "bfloat16"
  graphdef, state, tx = state_lib.create(c, 4, 3, steps_per_epoch=2)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(state["params"]))
  x, y = _batch()
  logits = forward.logits_fn(graphdef, state["params"], x)
  assert logits.dtype == jnp.float32
  chunk = step_lib.make_train_chunk(graphdef, tx, lambda k, im: im)
  state, m = chunk(state, x, y, jnp.tile(jnp.arange(16)[None], (2, 1)),
                   jax.random.key(0))
  assert np.all(np.isfinite(m["loss"]))
  # The convolutional trunk computes in bfloat16, the dense layers in
  # float32 (a bfloat16 dense kernel's gradient cost more than its FLOPs).
  net = model_lib.FSER(4, filters=(8, 16), dense=(32,), conv_impl="xla",
                       dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  hidden, blocks = net.embed_all(x)
  assert blocks.dtype == jnp.bfloat16 and hidden.dtype == jnp.float32


def test_offline_augmentation_is_the_papers_algorithm_1():
  c = _small_config()
  x, y = _batch(8)
  aug = augment.from_config(c.augment)
  xs, ys = train_inputs.offline_augment(jax.random.key(0), np.asarray(x),
                                 np.asarray(y), 20, aug, batch=4)
  assert xs.shape == (8 * 21, 64, 64, 3) and ys.shape == (8 * 21,)
  np.testing.assert_array_equal(xs[:8], np.asarray(x))  # originals first
  np.testing.assert_array_equal(ys, np.tile(np.asarray(y), 21))
  # Every copy is a different transform of its original, drawn once.
  copies = xs[8:].reshape(20, 8, 64, 64, 3)
  assert all(not np.allclose(copies[k, 0], x[0]) for k in range(20))
  assert not np.allclose(copies[0, 0], copies[1, 0])
  again, _ = train_inputs.offline_augment(jax.random.key(0), np.asarray(x),
                                   np.asarray(y), 20, aug, batch=4)
  np.testing.assert_array_equal(xs, again)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_max_pool_gradient_routes_to_the_maximum(dtype):
  x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 4, 6, 3)),
                  dtype)
  x = x.at[0, :2, :2].set(1.0)  # a window of four tied maxima
  g = jax.grad(lambda x: jnp.sum(kernels.max_pool_2x2(x) * 2.0))(x)
  r = np.asarray(x.astype(jnp.float32)).reshape(2, 2, 2, 3, 2, 3)
  is_max = r == r.max(axis=(2, 4), keepdims=True)
  assert g.dtype == dtype and is_max[0, 0, :, 0, :].all()
  np.testing.assert_array_equal(
      np.asarray(g.astype(jnp.float32)).reshape(r.shape), 2.0 * is_max)
  # Odd sizes: the dropped last row gets no gradient.
  x5 = jnp.ones((1, 5, 4, 1)) * jnp.arange(20.0).reshape(1, 5, 4, 1)
  g5 = jax.grad(lambda x: kernels.max_pool_2x2(x).sum())(x5)
  assert g5.shape == x5.shape and float(g5[0, 4].sum()) == 0.0


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("rate", [0.25, 0.5, 0.75, 0.3, 511 / 512])
def test_dropout_drops_the_rate_and_keeps_the_expectation(rate, packed):
  """Each value is dropped with the rate, never a rounded one (0.3: packed
  falls back to bernoulli's draw; 511/512: 16-bit fields),
  independently of its neighbours (packed: sharing a 32-bit word), kept
  values are scaled by the inverse keep probability, and the mask follows
  the key."""
  x = jnp.ones((16, 32, 32, 32), jnp.float32)  # 524,288 values
  drop = lambda k: kernels.dropout(x, rate, k, packed)
  y = np.asarray(drop(jax.random.key(0)))
  dropped = y == 0
  assert abs(dropped.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / y.size)
  np.testing.assert_allclose(np.unique(y[~dropped]), 1 / (1 - rate),
                             rtol=1e-6)
  # Neighbours (unpacked from one word) are independent: P(both) = p^2.
  flat = dropped.reshape(-1)
  both = (flat[:-1] & flat[1:]).mean()
  assert abs(both - rate ** 2) < 4 * np.sqrt(rate ** 2 / flat.size)
  again = np.asarray(drop(jax.random.key(0)))
  other = np.asarray(drop(jax.random.key(1)))
  np.testing.assert_array_equal(again, y)
  # Another key's mask differs where one of the two drops: 2 r (1 - r).
  assert (other != y).mean() > rate * (1 - rate)
  assert kernels.dropout(x, 0.0, jax.random.key(0)) is x
  assert not np.asarray(kernels.dropout(x, 1.0, jax.random.key(0))).any()


# 2^24 values: enough for the mean to see a 0.19% scale error (what bfloat16
# x * (4/3 rounded to bfloat16) made) at rates up to 0.5. The output mean's
# standard error is sqrt(E[x^2] (1-q) / (q n)) relative, E[x^2] = 13/12 for
# x uniform on [0.5, 1.5): at q = 0.75 that is 1.5e-4, so 5 sigma is 0.07%
# and such an error 13 sigma away; at q = 0.5, 5 sigma is 0.13%.
_EXACT_N = 1 << 24


@functools.lru_cache(maxsize=2)
def _positive_values(dtype):
  """2^24 values uniform on [0.5, 1.5) in `dtype`: spread over many ulps,
  so each value's rounding of x / q errs either way."""
  x = np.random.default_rng(0).uniform(0.5, 1.5, _EXACT_N).astype(np.float32)
  return jnp.asarray(x).astype(dtype).reshape(64, 64, 64, 64)


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("rate", [0.001, 0.01, 0.1, 0.25, 0.5, 0.9, 0.999])
def test_dropout_is_exact_at_every_rate_and_dtype(rate, dtype, packed):
  """The kept fraction is 1 - rate (no rounding to 1/256: 0.01 dropped
  0.0117, 0.001 nothing), every kept value is x / q computed in float32 and
  rounded once to the dtype, and the output's mean is the input's."""
  x = _positive_values(dtype)
  q = kernels.keep_probability(rate, packed)
  # The probability drawn is the rate's, to within bernoulli's 2^-23 steps.
  assert abs(q - (1 - rate)) <= 2.0 ** -23
  y = kernels.dropout(x, rate, jax.random.key(7), packed)
  assert y.dtype == x.dtype and y.shape == x.shape
  y = np.asarray(y.astype(jnp.float32)).reshape(-1)
  xf = np.asarray(x.astype(jnp.float32)).reshape(-1)
  n = xf.size
  kept = y != 0  # x > 0, so only a dropped value is 0
  # 5 binomial standard errors; 2/n is a floor where the rate's variance is
  # tiny (it is not at these rates and n: 0.001 drops ~16,800 values).
  sd = np.sqrt(rate * (1 - rate) / n)
  assert abs((~kept).mean() - rate) <= 5 * sd + 2 / n + 2.0 ** -23
  # Each kept value: x times float32(1/q), rounded to the dtype (numpy's
  # product and ml_dtypes' round-to-nearest-even, not XLA's).
  inv = np.float32(1) / np.float32(q)
  ref = (xf * inv).astype(jnp.dtype(dtype)).astype(np.float32)
  np.testing.assert_array_equal(y[kept], ref[kept])
  # The mean: given x, mean(y) has expectation q * mean(ref) and variance
  # q (1 - q) sum(ref^2) / n^2 (the mask's noise); 5 sigma of it. mean(ref)
  # differs from mean(x) / q only by each value's rounding to the dtype,
  # which no scale can avoid: bounded by half an ulp (2^-8 relative in
  # bfloat16) plus float32's rounding of 1/q and of the product (2^-24
  # each), and near 0 where x / q lands between ulps (q far from 1): at
  # rate 0.001 bfloat16 rounds most x / 0.999 back to x, a -0.1% that is
  # the dtype's, not the scale's.
  ref = ref.astype(np.float64)
  mean_x = xf.mean(dtype=np.float64)
  rounding = q * ref.mean() - mean_x
  u = 2.0 ** -(jnp.finfo(dtype).nmant + 1)
  assert abs(rounding) <= (u + 2.0 ** -23) * mean_x
  sigma = np.sqrt(q * (1 - q) * np.sum(ref ** 2)) / n
  tol = 5 * sigma + abs(rounding)
  assert abs(y.mean(dtype=np.float64) - mean_x) <= tol
  if rate in (0.25, 0.5):  # where the mean alone catches a 0.19% scale
    assert tol < 0.0019 * mean_x


def test_dropout_packed_bfloat16_scale_is_four_thirds_in_float32():
  """Packed dropout at 0.25 in bfloat16: each kept value is x * 4/3 computed
  in float32 and rounded to bfloat16, not x * bfloat16(4/3) = x * 1.3359."""
  x = _positive_values(jnp.bfloat16)
  y = kernels.dropout(x, 0.25, jax.random.key(3), packed=True)
  xf = np.asarray(x.astype(jnp.float32))
  want = np.asarray(jnp.asarray(xf * np.float32(4 / 3)).astype(jnp.bfloat16))
  kept = np.asarray(y) != 0
  assert 0.74 < kept.mean() < 0.76
  np.testing.assert_array_equal(np.asarray(y)[kept], want[kept])
  # The old scale would differ on most values.
  old = np.asarray(x * jnp.bfloat16(4 / 3))
  assert (old[kept] != want[kept]).mean() > 0.3


def test_packed_dropout_draws_bernoulli_where_no_field_width_fits():
  """A rate that is no multiple of 2^-16 is never rounded: packed draws
  bernoulli's mask. Rates at the edges draw, without dividing by zero."""
  x = jnp.ones((64, 1024), jnp.float32)
  for rate in (0.1, 0.3, 1e-3):
    np.testing.assert_array_equal(
        kernels.dropout(x, rate, jax.random.key(5), packed=True),
        kernels.dropout(x, rate, jax.random.key(5), packed=False))
  # 0.25 is packed: another draw than bernoulli's.
  assert (np.asarray(kernels.dropout(x, 0.25, jax.random.key(5), True))
          != np.asarray(kernels.dropout(x, 0.25, jax.random.key(5)))).any()
  for rate in (511 / 512, 1 - 2.0 ** -16, 1 - 1e-6, 1e-6):
    for packed in (False, True):
      y = np.asarray(kernels.dropout(x, rate, jax.random.key(5), packed))
      q = kernels.keep_probability(rate, packed)
      assert abs(q - (1 - rate)) <= 2.0 ** -23
      assert set(np.unique(y)) <= {0.0, np.float32(1 / np.float32(q))}
  # Below 2^-25 float32(1 - rate) is 1: nothing is dropped, as drawn.
  assert kernels.keep_probability(1e-9) == 1.0
  assert kernels.dropout(x, 1e-9, jax.random.key(5)) is x
  assert kernels.keep_probability(511 / 512, packed=True) == 1 / 512


def test_dropout_relies_on_bernoulli_keeping_below_float32_p_in_2e23_steps():
  """What keep_probability assumes of jax.random.bernoulli: it keeps where a
  float32 uniform, a multiple of 2^-23, is below float32(p)."""
  key = jax.random.key(11)
  u = np.asarray(jax.random.uniform(key, (1 << 16,), jnp.float32))
  k = u * 2.0 ** 23
  np.testing.assert_array_equal(k, np.floor(k))
  assert k.max() > 2 ** 23 - 2 ** 10  # the full range, not fewer bits
  for p in (0.9, 0.001, 0.75):
    np.testing.assert_array_equal(
        jax.random.bernoulli(key, jnp.float32(p), (1 << 16,)),
        u < np.float32(p))


@pytest.mark.parametrize("packed", [False, True])
def test_dropout_streams_draw_other_masks_at_the_same_rate(packed):
  """model.dropout_stream: 'folded' and 'rbg' draw masks other than the
  step key's, at the same rate; 'step' is the key itself; the model passes
  the stream to every dropout layer and nothing else changes."""
  x = jnp.ones((64, 4096), jnp.float32)
  key = jax.random.key(2)
  assert kernels.dropout_key(key, "step") is key
  masks = {}
  for stream in kernels.DROPOUT_STREAMS:
    y = kernels.dropout(x, 0.25, kernels.dropout_key(key, stream), packed)
    masks[stream] = np.asarray(y) == 0
    assert abs(masks[stream].mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / x.size)
  for a, b in (("step", "folded"), ("step", "rbg"), ("folded", "rbg")):
    # independent masks disagree where one of the two drops: 2 * 0.25 * 0.75
    assert abs((masks[a] != masks[b]).mean() - 0.375) < 0.01
  with pytest.raises(ValueError, match="dropout_stream"):
    kernels.dropout_key(key, "philox")
  assert set(config_lib.CHOICES["model.dropout_stream"]) == set(
      kernels.DROPOUT_STREAMS)
  assert config_lib.base().model.dropout_stream == "step"
  imgs = jnp.asarray(np.random.default_rng(0).random((4, 32, 32, 3)),
                     jnp.float32)
  out = {}
  for stream in ("step", "folded"):
    net = model_lib.FSER(3, image_size=32, filters=(8, 8), dense=(16,),
                         conv_impl="xla", dropout_stream=stream,
                         dropout_bits="packed" if packed else "bernoulli",
                         rngs=nnx.Rngs(0))
    out[stream] = (net(imgs), net(imgs, train=True,
                                  rngs=nnx.Rngs(dropout=jax.random.key(1))))
  np.testing.assert_array_equal(out["step"][0], out["folded"][0])
  assert np.abs(np.asarray(out["step"][1] - out["folded"][1])).max() > 1e-3


def test_im2col_convolution_equals_lax_conv():
  conv = nnx.Conv(5, 7, (3, 3), padding="SAME", rngs=nnx.Rngs(0))
  x = jnp.asarray(np.random.default_rng(1).random((2, 8, 6, 5)), jnp.float32)
  np.testing.assert_allclose(
      kernels.im2col_conv(x, conv.kernel[...], conv.bias[...]), conv(x),
      atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 8, 12, 5, 7), (3, 10, 6, 4, 9)])
def test_winograd_convolution_and_its_vjp_equal_lax_conv(shape):
  """Winograd F(4x4, 3x3) with its own VJP: values, input gradient, kernel
  and bias gradients equal lax.conv's (sizes that are and are not multiples
  of the 4x4 tile)."""
  b, h, w, c, f = shape
  x = jax.random.normal(jax.random.key(0), (b, h, w, c))
  k = 0.3 * jax.random.normal(jax.random.key(1), (3, 3, c, f))
  bias = 0.1 * jax.random.normal(jax.random.key(2), (f,))
  g = jax.random.normal(jax.random.key(3), (b, h, w, f))

  def plain(x, k, bias):
    return jax.lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias

  want, want_vjp = jax.vjp(plain, x, k, bias)
  got, got_vjp = jax.vjp(kernels.winograd_conv, x, k, bias)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  for o, w_ in zip(got_vjp(g), want_vjp(g)):
    np.testing.assert_allclose(o, w_, rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="3x3"):
    kernels.winograd_conv(x, jnp.zeros((5, 5, c, f)), bias)


@pytest.mark.parametrize("shape", [(2, 8, 12, 3, 5), (2, 9, 7, 4, 6)])
def test_pooled_conv_equals_conv_then_pool_with_all_gradients(shape):
  """The first layer's phase matmul: max_pool_2x2(conv) values; kernel and
  bias gradients; the input gradient when the input is differentiated; and
  no input-gradient work when it is not (two dots: forward, kernel)."""
  b, h, w, c, f = shape
  x = jax.random.normal(jax.random.key(0), (b, h, w, c))
  k = 0.3 * jax.random.normal(jax.random.key(1), (3, 3, c, f))
  bias = 0.1 * jax.random.normal(jax.random.key(2), (f,))

  def plain(x, k, bias):
    return kernels.max_pool_2x2(jax.lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        + bias)

  want, want_vjp = jax.vjp(plain, x, k, bias)
  got, got_vjp = jax.vjp(kernels.pooled_conv, x, k, bias)
  assert got.shape == (b, h // 2, w // 2, f)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  g = jax.random.normal(jax.random.key(3), want.shape)
  for o, w_ in zip(got_vjp(g), want_vjp(g)):
    np.testing.assert_allclose(o, w_, rtol=1e-4, atol=1e-4)
  jaxpr = str(jax.make_jaxpr(jax.grad(
      lambda k: kernels.pooled_conv(x, k, bias).sum()))(k))
  assert jaxpr.count("dot_general[") == 2


def test_auto_conv_impl_is_chosen_per_backend_and_cpu():
  from fser_jax.cpu import xla as xla_cpu
  assert xla_cpu.conv_impl("cpu", flags={"avx2", "fma"})[0] == "winograd"
  assert xla_cpu.conv_impl("cpu", flags={"avx2", "avx512f"},
                           vendor="GenuineIntel")[0] == "winograd"
  assert xla_cpu.conv_impl("cpu", "bfloat16", flags={"avx2"})[0] == "xla"
  assert xla_cpu.conv_impl("gpu", flags={"avx2"})[0] == "xla"
  assert xla_cpu.conv_impl("cpu", flags=set())[0] == "xla"  # unknown CPU
  # oneDNN: its Winograd where it runs (either vendor), else on AMD the
  # direct convolutions for the second layer; bfloat16 always direct.
  yes, no = (lambda: True), (lambda: False)
  for vendor in ("GenuineIntel", "AuthenticAMD"):
    assert xla_cpu.conv_impl("cpu", flags={"avx512f"}, vendor=vendor,
                             onednn_ok=yes, winograd_ok=yes)[0] == \
        "onednn_winograd"
  assert xla_cpu.conv_impl("cpu", flags={"avx512f"}, vendor="AuthenticAMD",
                           onednn_ok=yes, winograd_ok=no)[0] == \
      "winograd_onednn"
  assert xla_cpu.conv_impl("cpu", flags={"avx512f"}, vendor="GenuineIntel",
                           onednn_ok=yes, winograd_ok=no)[0] == "winograd"
  assert xla_cpu.conv_impl("cpu", flags={"avx2"}, onednn_ok=yes,
                           winograd_ok=yes)[0] == "winograd"
  assert xla_cpu.conv_impl("cpu", "bfloat16", flags={"avx512f", "amx_bf16"},
                           onednn_ok=yes, winograd_ok=yes)[0] == "onednn"
  from fser_jax.cpu import onednn
  ok = dict(onednn_ok=onednn.ok, winograd_ok=onednn.winograd_ok,
            bfloat16_ok=onednn.bfloat16_ok)
  want = xla_cpu.conv_impl(jax.default_backend(), **ok)[0]
  assert kernels.resolve_conv_impl("auto") == want
  assert kernels.resolve_conv_impl("auto", jnp.bfloat16) == \
      xla_cpu.conv_impl(jax.default_backend(), "bfloat16", **ok)[0]
  assert kernels.resolve_conv_impl("im2col") == "im2col"
  with pytest.raises(ValueError, match="conv_impl"):
    model_lib.FSER(3, conv_impl="fft", rngs=None)


def test_winograd_model_equals_the_xla_model_in_a_train_step():
  """conv_impl='winograd' changes how the layers with >= 64 input channels
  are computed, not what: same parameters, same logits and gradients."""
  kw = dict(in_channels=3, image_size=16, filters=(8, 64, 16), dense=(12,),
            rngs=None)
  x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
  y = jnp.array([0, 1, 2, 1])
  out = {}
  for impl in ("xla", "winograd"):
    m = model_lib.FSER(3, **{**kw, "rngs": nnx.Rngs(0)}, conv_impl=impl)

    def loss(m):
      return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

    out[impl] = (m(x), nnx.grad(loss)(m))
  np.testing.assert_allclose(out["winograd"][0], out["xla"][0], rtol=1e-4,
                             atol=1e-5)
  gx = jax.tree.leaves(out["xla"][1])
  gw = jax.tree.leaves(out["winograd"][1])
  assert len(gx) == len(gw) and len(gx) == 10
  for a, b in zip(gw, gx):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
  # Layer 1 is one phase matmul, layer 3 (64 input channels) Winograd, both
  # custom VJPs; layer 2 (8 input channels) stays lax.conv.
  graphdef, state = nnx.split(model_lib.FSER(
      3, **{**kw, "rngs": nnx.Rngs(0)}, conv_impl="winograd"))
  jaxpr = str(jax.make_jaxpr(lambda s, v: nnx.merge(graphdef, s)(v))(state, x))
  assert jaxpr.count("name=_pooled_conv\n") == 1
  assert jaxpr.count("name=_winograd_conv\n") == 1
  assert jaxpr.count("conv_general_dilated[") == 1


def test_wave_batch_fn_feeds_the_front_end_the_channel_and_each_clips_norm():
  """With waveform augmentation a batch's images are the front-end of the
  augmented waveforms, standardised with each clip's own (mean, std)."""
  from fser_jax.frontend import spectrogram as features
  from fser_jax.frontend import wave_augment
  c = _small_config()
  c.augment.wave.phone_prob = 1.0
  rng = np.random.default_rng(0)
  wav = jnp.asarray(0.1 * rng.standard_normal((2, 12000)), jnp.float32)
  lengths = jnp.array([12000, 9000])
  norm = jnp.asarray([[[0.1, 0.2, 0.3], [1.0, 2.0, 4.0]],
                      [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]], jnp.float32)
  fn = train_inputs.make_wave_batch_fn(c, 16000, lambda k, x: x)  # no image aug
  got = fn(jax.random.key(0), {"wav": wav, "length": lengths, "norm": norm},
           {})
  phoned = wave_augment.phone(wav, lengths, 16000)
  raw = features.frontend(c.features, 16000)(phoned, lengths)
  want = (raw - norm[:, 0, None, None, :]) / norm[:, 1, None, None, :]
  np.testing.assert_allclose(got, want, atol=1e-4)
  clean = features.frontend(c.features, 16000)(wav, lengths)
  assert float(jnp.abs(raw - clean).mean()) > 0.05  # the channel shows


def test_fit_with_waveform_augmentation(tiny, tmp_path):
  from fser_jax.data import input_pipeline
  c = tiny(**{"train.num_steps": 2, "train.steps_per_dispatch": 1})
  c.augment.wave.noise_prob = 0.5
  c.augment.wave.gain_prob = 0.5
  c.augment.wave.speed_prob = 0.5
  data = input_pipeline.load(c, progress=False)
  assert data.wav is not None and data.wav.shape[0] == data.labels.size
  # The buffer holds the longest clip slowed to 0.9x.
  assert data.wav.shape[1] >= data.wav_lengths.max() / 0.9
  out = train.fit(c, data, str(tmp_path))
  losses = [h["train_loss"] for h in out.history if "train_loss" in h]
  assert losses and np.all(np.isfinite(losses))


# --- the loop's parts, each alone ---------------------------------------------
def test_dispatches_never_cross_an_epoch_and_do_not_depend_on_the_start():
  full = list(train.dispatches(0, 14, 6, 4))
  # (epoch, offset, steps): 4 + 2 | 4 + 2 | 2 (the last, cut at 14 steps)
  assert full == [(0, 0, 4), (0, 4, 2), (1, 0, 4), (1, 4, 2), (2, 0, 2)]
  # Resumed at any dispatch boundary: exactly the uninterrupted tail.
  for i in range(len(full)):
    start = full[i][0] * 6 + full[i][1]
    assert list(train.dispatches(start, 14, 6, 4)) == full[i:]
  assert list(train.dispatches(14, 14, 6, 4)) == []


def test_plan_counts_steps_and_names_a_batch_that_cannot_work():
  import ml_collections
  t = ml_collections.ConfigDict({"batch_size": 16, "num_epochs": 3,
                                 "num_steps": 0})
  assert train.plan(t, 100) == (6, 18, 3)  # 100 // 16 = 6 steps per epoch
  with pytest.raises(train.ConfigError, match="batch_size=16 is larger than "
                     "the 10 training examples"):
    train.plan(t, 10)
  with pytest.raises(train.ConfigError, match="divisible by the 3"):
    train.plan(t, 100, n_devices=3)


class _FakeCheckpoints:
  def __init__(self, step):
    self.step = step

  def latest_step(self):
    return self.step

  def restore(self, abstract):
    return {"step": jnp.asarray(self.step), "params": jnp.ones(2)}


def test_resume_drops_the_log_lines_after_the_checkpoint(tmp_path):
  path = str(tmp_path / "metrics.jsonl")
  lines = [{"step": s, "train_loss": float(s)} for s in (2, 4, 6, 8)]
  with open(path, "w") as f:
    f.writelines(json.dumps(x) + "\n" for x in lines)
  fresh = {"step": jnp.zeros(()), "params": jnp.zeros(2)}
  state, start, history = checkpoints.resume(_FakeCheckpoints(4), fresh, path)
  assert start == 4 and float(state["params"].sum()) == 2  # restored
  assert [h["step"] for h in history] == [2, 4]  # 6 and 8 are redone
  with open(path) as f:  # and the file says the same
    assert [json.loads(x)["step"] for x in f] == [2, 4]
  state, start, history = checkpoints.resume(_FakeCheckpoints(None), fresh, path)
  assert start == 0 and state is fresh and history == []


def test_check_finite_names_the_first_bad_step_and_the_checkpoint():
  train.check_finite({"loss": np.ones(4)}, 8, 1, 6, "/w")  # finite: silent
  bad = {"loss": np.array([1.0, 2.0, np.nan, np.inf])}
  with pytest.raises(train.TrainingDiverged,
                     match=r"nan at step 11 \(epoch 2\).*step 6 in /w/"):
    train.check_finite(bad, 8, 1, 6, "/w")
  with pytest.raises(train.TrainingDiverged, match="No checkpoint was saved"):
    train.check_finite(bad, 8, 1, None, "/w")


def test_training_inputs_with_the_papers_offline_copies(tiny):
  from fser_jax.data import input_pipeline
  c = tiny(**{"augment.offline_copies": 2})
  data = input_pipeline.load(c, progress=False)
  x, y = data.subset("train")
  inp = train_inputs.training_inputs(c, data, jax.random.key(0))
  assert inp.n == 3 * y.size and inp.extras is None
  np.testing.assert_array_equal(inp.y, np.tile(y, 3))
  np.testing.assert_array_equal(inp.x[:y.size], x)  # originals first
  assert not np.allclose(inp.x[y.size:2 * y.size], x)  # then augmented
  probe = jnp.ones((2, 4, 4, 3))
  assert inp.aug_fn(jax.random.key(1), probe) is probe  # copies used as is


@pytest.mark.parametrize("chunks", [1, 4])
def test_input_conv_vjp_equals_the_plain_convolutions_gradient(chunks):
  x = jax.random.normal(jax.random.key(0), (4, 16, 12, 3))
  k = 0.3 * jax.random.normal(jax.random.key(1), (3, 3, 3, 8))
  b = 0.1 * jax.random.normal(jax.random.key(2), (8,))
  g = jax.random.normal(jax.random.key(3), (4, 16, 12, 8))

  def plain(x, k, b):
    return jax.lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + b

  def loss(conv, k, b):
    return jnp.sum(jax.nn.relu(conv(x, k, b)) * g)

  want = jax.grad(lambda k, b: loss(plain, k, b), (0, 1))(k, b)
  got = jax.grad(lambda k, b: loss(
      lambda x, k, b: kernels.input_conv(x, k, b, chunks), k, b),
      (0, 1))(k, b)
  for w, o in zip(want, got):
    np.testing.assert_allclose(o, w, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(kernels.input_conv(x, k, b), plain(x, k, b),
                             atol=1e-5)
  # The input is data: its gradient is not computed (zeros by design).
  dx = jax.grad(lambda x: jnp.sum(kernels.input_conv(x, k, b) * g))(x)
  assert not np.any(np.asarray(dx))


def test_predict_logits_pads_small_counts_to_powers_of_two():
  """Varying image counts reuse a few compilations: 3 and 4 images share the
  4-image shape, 70 runs as 64 + 6 padded to 64; values are unpadded."""
  shapes = []

  @jax.jit
  def eval_fn(params, x):
    shapes.append(x.shape[0])  # runs once per traced shape
    return x.sum((1, 2, 3)) * params

  rng = np.random.default_rng(0)
  for n in (3, 4, 70):
    images = rng.random((n, 2, 2, 1)).astype(np.float32)
    got = forward.predict_logits(eval_fn, jnp.float32(2.0), images, 64)
    np.testing.assert_allclose(got, 2 * images.sum((1, 2, 3)), rtol=1e-6)
  assert shapes == [4, 64]


def test_head_only_steps_hold_the_trunk_bitwise_even_with_weight_decay():
  """train.head_only_steps=3 with weight decay and momentum: the trunk is
  bitwise unchanged for 3 updates while the head moves; then it trains.
  A frozen trunk ('trunk') never moves, decay or not."""
  import ml_collections
  import optax
  from fser_jax.train import optimizer as state_lib
  tcfg = ml_collections.ConfigDict(dict(
      learning_rate=0.1, schedule="constant", warmup_epochs=0, warmup_steps=0,
      optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=0.01,
      num_epochs=10, num_steps=0, freeze="none", head_only_steps=3,
      clip_grad_norm=0.0))
  rng = np.random.default_rng(0)
  w = lambda *shape: rng.normal(size=shape).astype(np.float32)
  params = {"convs": {"0": {"kernel": w(3, 3)}},
            "dense": {"0": {"kernel": w(4, 2)}, "1": {"kernel": w(2, 2)}}}
  for freeze, hold in (("none", 3), ("trunk", 10)):
    tcfg.freeze = freeze
    tx = state_lib.optimizer(tcfg, num_dense=2, steps_per_epoch=1)
    p, s = params, tx.init(params)
    for step in range(5):
      g = jax.tree.map(lambda x: np.ones_like(x), p)
      u, s = tx.update(g, s, p)
      new = optax.apply_updates(p, u)
      trunk = lambda q: [q["convs"]["0"]["kernel"], q["dense"]["0"]["kernel"]]
      trunk_same = all(np.array_equal(a, b)
                       for a, b in zip(trunk(new), trunk(p)))
      assert trunk_same == (step < hold), (freeze, step)
      assert not np.array_equal(new["dense"]["1"]["kernel"],
                                p["dense"]["1"]["kernel"])
      p = new


def test_clipping_bounds_the_update_and_warmup_follows_its_schedule():
  """clip_grad_norm=1 with plain SGD at rate 1: the update's global norm is
  exactly 1 for a gradient of norm 10; a linear warmup over 4 steps gives
  rates 0, 1/4, 2/4, 3/4, 1 (optax's linear_schedule from step 0)."""
  import ml_collections
  from fser_jax.train import optimizer as state_lib
  tcfg = ml_collections.ConfigDict(dict(
      learning_rate=1.0, schedule="constant", warmup_epochs=0, warmup_steps=4,
      optimizer="sgd", momentum=0.0, nesterov=False, weight_decay=0.0,
      num_epochs=10, num_steps=0, freeze="none", head_only_steps=0,
      clip_grad_norm=1.0))
  tx = state_lib.optimizer(tcfg, num_dense=1, steps_per_epoch=1)
  p = {"w": np.zeros(4, np.float32)}
  s = tx.init(p)
  g = {"w": np.array([10.0, 0, 0, 0], np.float32)}
  norms = []
  for _ in range(6):
    u, s = tx.update(g, s, p)
    norms.append(float(np.linalg.norm(u["w"])))
  np.testing.assert_allclose(norms, [0, 0.25, 0.5, 0.75, 1.0, 1.0], atol=1e-6)
