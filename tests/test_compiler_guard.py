"""A guard against silent XLA:CPU miscompilation (jax issues 39103, 39257,
40412 in jaxlib 0.10.2): one train step's loss and gradients under jaxlib's
default backend (YNNPACK fusions) and with YNNPACK off (what fser_jax picks
on CPUs without AVX-512) must agree, and every layer type's forward pass must
match a float64 NumPy reference. A jaxlib regression then fails CI instead
of a user's results."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fser_jax.model import kernels
from fser_jax.model import cnn as model_lib

STEP_SCRIPT = r"""
import sys
import numpy as np
import jax, jax.numpy as jnp, optax
import fser_jax.cpu; fser_jax.cpu.configure()
from fser_jax import config as config_lib
from fser_jax.train import loop as train
from fser_jax.model import forward
from fser_jax.train import optimizer as state_lib
c = config_lib.base()
c.model.filters = (8, 8, 16, 16); c.model.dense = (32, 16)
c.model.conv_dropout = 0.0; c.model.dense_dropout = 0.0
graphdef, state, tx = state_lib.create(c, 5, 3, 4)
rng = np.random.default_rng(0)
x = jnp.asarray(rng.normal(size=(8, 64, 64, 3)).astype(np.float32))
y = jnp.asarray(rng.integers(0, 5, 8).astype(np.int32))
def loss_fn(p):
  logits = forward.logits_fn(graphdef, p, x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
loss, g = jax.jit(jax.value_and_grad(loss_fn))(state["params"])
leaves = [np.asarray(l) for l in jax.tree.leaves(g)]
np.savez(sys.argv[1], loss=np.asarray(loss), *leaves)
print(fser_jax.cpu.xla.CHOICE)
"""


def _step(tmp_path, name, xla_flags):
  env = dict(os.environ, FSER_JAX_KEEP_XLA_DEFAULTS="1", XLA_FLAGS=xla_flags,
             JAX_PLATFORMS="cpu")
  out = tmp_path / f"{name}.npz"
  r = subprocess.run([sys.executable, "-c", STEP_SCRIPT, str(out)], env=env,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  with np.load(out) as z:
    return {k: z[k] for k in z.files}


def test_train_step_same_under_both_cpu_backends(tmp_path):
  a = _step(tmp_path, "default", "")
  b = _step(tmp_path, "ynn_off", "--xla_cpu_experimental_ynn_fusion_type=")
  assert np.isfinite(a["loss"]) and a["loss"] == pytest.approx(b["loss"],
                                                               rel=1e-5)
  for k in a:
    np.testing.assert_allclose(a[k], b[k], rtol=2e-4, atol=2e-6, err_msg=k)


def _conv_ref(x, k, b):
  """SAME stride-1 convolution in float64 (cross-correlation, as lax.conv)."""
  kh, kw = k.shape[:2]
  xp = np.pad(x, ((0, 0), (kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2),
                  (0, 0)))
  h, w = x.shape[1:3]
  out = np.zeros(x.shape[:3] + (k.shape[3],))
  for i in range(kh):
    for j in range(kw):
      out += np.einsum("bhwc,cf->bhwf", xp[:, i:i + h, j:j + w], k[i, j])
  return out + b


def test_each_layer_forward_matches_float64():
  from flax import nnx
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4, 16, 16, 3)).astype(np.float32)
  conv = nnx.Conv(3, 8, (3, 3), padding="SAME", rngs=nnx.Rngs(0))
  k, b = np.asarray(conv.kernel[...], np.float64), np.asarray(conv.bias[...])
  ref = _conv_ref(x.astype(np.float64), k, b)
  np.testing.assert_allclose(np.asarray(jax.jit(conv)(x)), ref, rtol=1e-4,
                             atol=1e-4)
  np.testing.assert_allclose(
      np.asarray(jax.jit(kernels.im2col_conv)(x, conv.kernel[...],
                                                conv.bias[...])),
      ref, rtol=1e-4, atol=1e-4)
  # Winograd F(4x4, 3x3) on enough channels that its transforms matter.
  xw = rng.normal(size=(2, 12, 8, 64)).astype(np.float32)
  kw = (0.1 * rng.normal(size=(3, 3, 64, 16))).astype(np.float32)
  bw = rng.normal(size=(16,)).astype(np.float32)
  np.testing.assert_allclose(
      np.asarray(jax.jit(kernels.winograd_conv)(xw, kw, bw)),
      _conv_ref(xw.astype(np.float64), kw.astype(np.float64), bw),
      rtol=1e-4, atol=1e-4)
  pooled = np.asarray(jax.jit(kernels.max_pool_2x2)(x))
  np.testing.assert_array_equal(
      pooled, x.reshape(4, 8, 2, 8, 2, 3).max(axis=(2, 4)))
  g = jax.grad(lambda v: jnp.sum(kernels.max_pool_2x2(v) ** 2))(x)
  g_ref = jax.grad(lambda v: jnp.sum(
      nnx.max_pool(v, (2, 2), (2, 2)) ** 2))(x)
  np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), rtol=1e-6)
  dense = nnx.Linear(48, 7, rngs=nnx.Rngs(1))
  v = rng.normal(size=(5, 48)).astype(np.float32)
  np.testing.assert_allclose(
      np.asarray(jax.jit(dense)(v)),
      v.astype(np.float64) @ np.asarray(dense.kernel[...], np.float64)
      + np.asarray(dense.bias[...]), rtol=1e-5, atol=1e-5)
  # The pattern of jax#39103: a vmapped matrix-vector product, then a sum.
  m = rng.normal(size=(6, 32, 32)).astype(np.float32)
  u = rng.normal(size=(6, 32)).astype(np.float32)
  got = jax.jit(lambda a, c: jnp.sum(jax.vmap(jnp.dot)(a, c), axis=1))(m, u)
  want = np.einsum("bij,bj->bi", m.astype(np.float64), u).sum(1)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)


def test_compilation_cache_is_on_unless_the_user_chose():
  from fser_jax.cpu import cache as jax_cache
  env = {"HOME": "/home/u"}
  assert jax_cache.configure(env) == "/home/u/.cache/fser_jax/jax"
  assert env["JAX_COMPILATION_CACHE_DIR"] == "/home/u/.cache/fser_jax/jax"
  assert env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0.1"
  assert int(env["JAX_COMPILATION_CACHE_MAX_SIZE"]) == 2 << 30
  env = {"XDG_CACHE_HOME": "/x", "JAX_COMPILATION_CACHE_MAX_SIZE": "-1"}
  jax_cache.configure(env)
  assert env["JAX_COMPILATION_CACHE_DIR"] == "/x/fser_jax/jax"
  assert env["JAX_COMPILATION_CACHE_MAX_SIZE"] == "-1"  # the user's value
  env = {"JAX_COMPILATION_CACHE_DIR": "/mine"}
  assert "JAX_COMPILATION_CACHE_DIR" in jax_cache.configure(env)
  assert env == {"JAX_COMPILATION_CACHE_DIR": "/mine"}  # nothing added
  env = {"FSER_JAX_NO_COMPILATION_CACHE": "1"}
  assert jax_cache.configure(env).startswith("off")
  assert "JAX_COMPILATION_CACHE_DIR" not in env


def test_bfloat16_note_only_where_the_cpu_lacks_native_bfloat16():
  from fser_jax.cpu import xla as xla_cpu
  assert "slower than float32" in xla_cpu.bfloat16_note({"avx2", "fma"})
  assert xla_cpu.bfloat16_note({"avx512f", "avx512_bf16"}) is None
  assert xla_cpu.bfloat16_note({"avx512f", "amx_bf16"}) is None
  assert xla_cpu.bfloat16_note(set()) is None  # unknown CPU: no claim
