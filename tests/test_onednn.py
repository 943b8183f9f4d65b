"""conv_impl='onednn': oneDNN's convolutions as XLA FFI custom calls.

Values and all three gradients against lax.conv (float32 to rounding,
bfloat16 to its precision), shapes the model never uses (odd sizes, a 5x5
kernel), the first layer's unused input gradient removed from the compiled
step, the model's logits against conv_impl='xla', and a clear error where
oneDNN is missing or has no bfloat16 kernels for the CPU. Skipped where
oneDNN does not build (no libdnnl-dev or fser_jax[onednn]); the bfloat16
cases where oneDNN cannot run them on this CPU."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fser_jax.model import cnn as model_lib
from fser_jax.cpu import onednn
from fser_jax.cpu import xla as xla_cpu

OK, WHY = onednn.available()
needs_onednn = pytest.mark.skipif(not OK, reason=WHY)
# What oneDNN itself says (a CPU without AVX512_BF16 or AMX, or one capped
# by ONEDNN_MAX_CPU_ISA, can have none), not what the tests' machine had.
needs_bfloat16 = pytest.mark.skipif(
    not (OK and onednn.bfloat16_ok()),
    reason=onednn.bfloat16_message("bfloat16 in oneDNN") if OK else WHY)


def _capped_to_avx2(code: str) -> dict:
  """Runs `code` in a fresh process with oneDNN capped to AVX2 (what an
  AVX2-only CPU gives it) and returns its 'name value' lines as a dict."""
  import subprocess
  import sys
  env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2",
         "DNNL_MAX_CPU_ISA": "AVX2", xla_cpu.NO_TUNE_ENV: "1"}
  p = subprocess.run([sys.executable, "-c", code], env=env,
                     capture_output=True, text=True, timeout=300)
  assert p.returncode == 0, p.stderr[-2000:]
  return dict(l.split(" ", 1) for l in p.stdout.splitlines())


def _lax(x, k, b):
  return jax.lax.conv_general_dilated(
      x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + b


def _both(f, x, k, b, g):
  y, vjp = jax.vjp(f, x, k, b)
  return (y, *vjp(g))


_SHAPES = pytest.mark.parametrize(
    "shape,ksize", [((2, 9, 7, 3), 3), ((3, 6, 10, 5), 5), ((2, 8, 8, 16), 3)])


def _case(shape, ksize, f=6):
  """x, kernel, bias, output gradient (float32) and lax.conv's y, dx, dk,
  db for them."""
  r = np.random.default_rng(0)
  x = jnp.asarray(r.normal(size=shape), jnp.float32)
  k = jnp.asarray(r.normal(size=(ksize, ksize, shape[-1], f)) * 0.2,
                  jnp.float32)
  b = jnp.asarray(r.normal(size=(f,)), jnp.float32)
  g = jnp.asarray(r.normal(size=shape[:3] + (f,)), jnp.float32)
  return (x, k, b, g), jax.jit(lambda *a: _both(_lax, *a))(x, k, b, g)


@needs_onednn
@_SHAPES

def test_values_and_gradients_match_lax(shape, ksize):
  (x, k, b, g), want = _case(shape, ksize)
  got = jax.jit(lambda *a: _both(onednn.conv, *a))(x, k, b, g)
  for name, w, o in zip(("y", "dx", "dk", "db"), want, got):
    assert o.shape == w.shape and o.dtype == jnp.float32, name
    np.testing.assert_allclose(o, w, rtol=1e-4, atol=1e-4 * float(
        jnp.abs(w).max()), err_msg=name)
  # A wrong kernel or dtype is a one-line error before anything runs.
  with pytest.raises(ValueError, match="do not match"):
    onednn.conv(x, k[:, :, :1], b)
  with pytest.raises(ValueError, match="float32 or bfloat16"):
    onednn.conv(x.astype(jnp.float16), k, b)


@needs_bfloat16
@_SHAPES
def test_bfloat16_values_and_gradients_match_lax(shape, ksize):
  """bfloat16 in, bfloat16 out, within bfloat16's precision of lax.conv's
  float32 result."""
  args, want = _case(shape, ksize)
  got16 = jax.jit(lambda *a: _both(onednn.conv, *a))(
      *(a.astype(jnp.bfloat16) for a in args))
  for name, w, o in zip(("y", "dx", "dk", "db"), want, got16):
    assert o.dtype == jnp.bfloat16, name
    err = float(jnp.abs(o.astype(jnp.float32) - w).max() / jnp.abs(w).max())
    assert err < 3e-2, (name, err)


_MIXED = dict(image_size=16, filters=(8, 16, 64, 8), dense=(16,))
_X = jnp.asarray(np.random.default_rng(2).random((4, 16, 16, 3)), jnp.float32)


def _forward_hlo(m) -> str:
  graphdef, state = nnx.split(m)
  return jax.jit(lambda s, x: nnx.merge(graphdef, s)(x)).lower(
      state, _X).compile().as_text()


def _matches_xla(conv_impl: str) -> str:
  """The model (`_MIXED`) under `conv_impl` against conv_impl='xla': the
  same logits and parameter gradients. Returns its compiled forward."""
  ref = model_lib.FSER(3, conv_impl="xla", rngs=nnx.Rngs(0), **_MIXED)
  m = model_lib.FSER(3, conv_impl=conv_impl, rngs=nnx.Rngs(0), **_MIXED)
  np.testing.assert_allclose(m(_X), ref(_X), rtol=1e-4, atol=1e-5)

  def loss(model, x):
    return (model(x) ** 2).mean()

  for a, b in zip(jax.tree.leaves(nnx.grad(loss)(ref, _X)),
                  jax.tree.leaves(nnx.grad(loss)(m, _X))):
    np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-6)
  return _forward_hlo(m)


@needs_onednn
def test_winograd_onednn_matches_xla():
  """'winograd_onednn': the first layer's phase matmul, Winograd for >= 64
  input channels, oneDNN for the rest; same values and gradients."""
  text = _matches_xla("winograd_onednn")
  # Layers 2 and 3 (8 and 16 input channels) in oneDNN; 1 and 4 not.
  assert text.count('custom_call_target="fser_FserOnednnConvForward"') == 2


@needs_onednn
def test_model_matches_xla_and_drops_the_input_gradient():
  kw = dict(image_size=16, filters=(8, 16), dense=(32,), rngs=nnx.Rngs(0))
  x = jnp.asarray(np.random.default_rng(1).random((4, 16, 16, 3)), jnp.float32)
  ref = model_lib.FSER(3, conv_impl="xla", **kw)
  m = model_lib.FSER(3, conv_impl="onednn",
                     **{**kw, "rngs": nnx.Rngs(0)})
  assert m.conv_impl == "onednn"
  np.testing.assert_allclose(m(x), ref(x), rtol=1e-4, atol=1e-5)

  def loss(model, x):
    return (model(x) ** 2).mean()

  gw = nnx.grad(loss)(ref, x)
  go = nnx.grad(loss)(m, x)
  for a, b in zip(jax.tree.leaves(gw), jax.tree.leaves(go)):
    np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-6)
  # Compiled: two layers -> two forwards, two weight gradients, and one
  # input gradient (the first layer's input is data: its call is removed).
  graphdef, state = nnx.split(m)
  text = jax.jit(jax.grad(lambda s, x: loss(nnx.merge(graphdef, s), x))
                 ).lower(state, x).compile().as_text()
  target = 'custom_call_target="fser_FserOnednnConv{}"'.format
  calls = [t for t in ("Forward", "BackwardData", "BackwardWeights")
           for _ in range(text.count(target(t)))]
  assert calls.count("Forward") == 2 and calls.count("BackwardWeights") == 2
  assert calls.count("BackwardData") == 1
  assert "avx" in onednn.impls() or "gemm" in onednn.impls()


needs_winograd = pytest.mark.skipif(
    not (OK and onednn.winograd_ok()),
    reason="no float32 Winograd kernels in this oneDNN on this CPU (oneDNN "
    "2.x on AVX-512 only)")


@needs_winograd
@pytest.mark.parametrize("shape,f", [((2, 9, 7, 5), 6), ((2, 8, 8, 32), 16)])
def test_winograd_values_and_gradients_match_lax(shape, f):
  """oneDNN's Winograd F(4x4, 3x3), activations reordered to its blocked
  layout and back inside each call: values and all three gradients equal
  lax.conv's to float32 rounding, sizes that are and are not multiples of
  its tiles and channel blocks."""
  r = np.random.default_rng(3)
  x = jnp.asarray(r.normal(size=shape), jnp.float32)
  k = jnp.asarray(r.normal(size=(3, 3, shape[-1], f)) * 0.2, jnp.float32)
  b = jnp.asarray(r.normal(size=(f,)), jnp.float32)
  g = jnp.asarray(r.normal(size=shape[:3] + (f,)), jnp.float32)
  want = jax.jit(lambda *a: _both(_lax, *a))(x, k, b, g)
  got = jax.jit(lambda *a: _both(
      lambda x, k, b: onednn.conv(x, k, b, winograd=True), *a))(x, k, b, g)
  for name, w, o in zip(("y", "dx", "dk", "db"), want, got):
    assert o.shape == w.shape, name
    np.testing.assert_allclose(o, w, rtol=1e-4, atol=1e-5 * float(
        jnp.abs(w).max()), err_msg=name)
  key = "fwd/winograd:{},{},{},{},{},3,3".format(*shape, f)
  assert any(l.startswith(key) and "wino" in l.split()[-1]
             for l in onednn.impls().splitlines()), onednn.impls()
  with pytest.raises(ValueError, match="float32 and a 3x3"):
    onednn.conv(x.astype(jnp.bfloat16), k, b, winograd=True)


@needs_winograd
def test_onednn_winograd_model_matches_xla():
  """'onednn_winograd': the first layer's phase matmul, oneDNN's Winograd
  for every later 3x3 layer; same values and gradients as 'xla'."""
  text = _matches_xla("onednn_winograd")
  assert text.count('custom_call_target="fser_FserOnednnConvForward"') == 3
  assert text.count("winograd = true") == 3


@needs_bfloat16
def test_onednn_winograd_in_bfloat16_is_onednn():
  """In bfloat16 'onednn_winograd' is 'onednn': every layer in oneDNN's
  direct convolution."""
  text16 = _forward_hlo(model_lib.FSER(3, conv_impl="onednn_winograd",
                                       rngs=nnx.Rngs(0), dtype=jnp.bfloat16,
                                       **_MIXED))
  assert text16.count('custom_call_target="fser_FserOnednnConvForward"') == 4
  assert "winograd = true" not in text16


@needs_onednn
def test_without_avx512_winograd_is_off_and_falls_back_to_direct():
  """oneDNN limited to AVX2 (ONEDNN_MAX_CPU_ISA, as on a CPU without
  AVX-512): the probe says no Winograd, 'auto' does not choose it, and a
  call that asks for it still gives lax.conv's values through the direct
  convolution, which impls() names."""
  code = (
      "import jax, jax.numpy as jnp, numpy as np\n"
      "from fser_jax.cpu import onednn, xla as xla_cpu\n"
      "print('ok', onednn.winograd_ok())\n"
      "print('auto', xla_cpu.conv_impl('cpu', flags={'avx512f'}, "
      "onednn_ok=onednn.ok, winograd_ok=onednn.winograd_ok)[0])\n"
      "x = jax.random.normal(jax.random.key(0), (2, 8, 8, 16))\n"
      "k = jax.random.normal(jax.random.key(1), (3, 3, 16, 8))\n"
      "b = jnp.zeros(8)\n"
      "want = jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME', "
      "dimension_numbers=('NHWC', 'HWIO', 'NHWC'))\n"
      "got = onednn.conv(x, k, b, winograd=True)\n"
      "print('err', float(jnp.abs(got - want).max() / jnp.abs(want).max()))\n"
      "print('impl', onednn.impls().strip().splitlines()[0])\n")
  out = _capped_to_avx2(code)
  assert out["ok"] == "False"
  assert out["auto"] != "onednn_winograd"
  assert float(out["err"]) < 1e-5
  assert "no Winograd" in out["impl"] and "wino" not in out["impl"].split(
      "(")[0].split()[-1]


@needs_onednn
def test_without_native_bfloat16_asking_for_it_is_one_clear_line():
  """oneDNN limited to AVX2 (as on an AVX2-only EPYC, on any CPU): the
  probe says no bfloat16 kernels, 'auto' does not choose oneDNN for
  bfloat16 even where the CPU's flags report AVX512_BF16, and asking for
  it by name, in the model or in onednn.conv, is one UserError line that
  names the settings and what to use, raised before oneDNN is asked for a
  primitive; float32 still runs in oneDNN."""
  code = (
      "import jax, jax.numpy as jnp\n"
      "from flax import nnx\n"
      "from fser_jax import errors\n"
      "from fser_jax.cpu import onednn, xla as xla_cpu\n"
      "from fser_jax.model import cnn, kernels\n"
      "print('ok', onednn.ok(), onednn.bfloat16_ok())\n"
      "print('auto', kernels.resolve_conv_impl('auto', jnp.bfloat16))\n"
      "print('auto_bf16_cpu', xla_cpu.conv_impl('cpu', 'bfloat16', "
      "flags={'avx2', 'avx512f', 'avx512_bf16'}, onednn_ok=onednn.ok, "
      "bfloat16_ok=onednn.bfloat16_ok)[0])\n"
      "x = jnp.ones((2, 8, 8, 3), jnp.bfloat16)\n"
      "k = jnp.ones((3, 3, 3, 4))\n"
      "for name, call in [('model', lambda: cnn.FSER(3, conv_impl='onednn', "
      "dtype=jnp.bfloat16, rngs=nnx.Rngs(0))), ('conv', lambda: jax.jit("
      "onednn.conv)(x, k, jnp.zeros(4)))]:\n"
      "  try:\n"
      "    call()\n"
      "    print(name, 'no error')\n"
      "  except errors.UserError as e:\n"
      "    print(name, type(e).__name__, str(e).replace('\\n', '|'))\n"
      "print('built', repr(onednn.impls()))\n"
      "y = onednn.conv(x.astype(jnp.float32), k, jnp.zeros(4))\n"
      "print('f32', float(y[0, 0, 0, 0]), float(y[0, 1, 1, 0]))\n")
  out = _capped_to_avx2(code)
  assert out["ok"] == "True False"
  assert out["auto"] != "onednn" and out["auto_bf16_cpu"] == "xla"
  cap = "ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2"
  kind, msg = out["model"].split(" ", 1)
  assert kind == "Unsupported", out["model"]
  assert msg.startswith("model.conv_impl='onednn' with "
                        "train.precision='bfloat16': oneDNN has no bfloat16 "
                        "convolutions for this CPU ("), msg
  assert cap in msg and "|" not in msg
  assert "use model.conv_impl='auto' or train.precision='float32'" in msg
  kind, msg = out["conv"].split(" ", 1)
  assert kind == "Unsupported" and msg.startswith(
      "onednn.conv in bfloat16 (train.precision='bfloat16'): oneDNN has no "
      "bfloat16 convolutions"), out["conv"]
  # Refused before any primitive was built; then float32 builds one.
  assert out["built"] == "''"
  # Ones: a corner sums 2x2 of the 3x3 window (SAME padding), 3 channels;
  # an inner pixel all of it.
  assert out["f32"] == "12.0 27.0"


def test_auto_picks_onednn_for_bfloat16_only_where_measured(monkeypatch,
                                                            tmp_path):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no tuner cache
  bf16_cpu = {"avx2", "avx512f", "avx512_bf16"}
  yes, no = (lambda: True), (lambda: False)
  assert xla_cpu.conv_impl("cpu", "bfloat16", bf16_cpu, yes)[0] == "onednn"
  assert xla_cpu.conv_impl("cpu", "bfloat16", bf16_cpu, no)[0] == "xla"
  # The flags say AVX512_BF16, oneDNN says no (ONEDNN_MAX_CPU_ISA).
  assert xla_cpu.conv_impl("cpu", "bfloat16", bf16_cpu, yes,
                           bfloat16_ok=no)[0] == "xla"
  assert xla_cpu.conv_impl("cpu", "bfloat16", {"avx2"}, yes)[0] == "xla"
  amd = dict(vendor="AuthenticAMD")
  assert xla_cpu.conv_impl("cpu", "float32", bf16_cpu, yes, **amd)[0] == \
      "winograd_onednn"
  assert xla_cpu.conv_impl("cpu", "float32", bf16_cpu, no, **amd)[0] == \
      "winograd"
  assert xla_cpu.conv_impl("cpu", "float32", bf16_cpu, yes,
                           vendor="GenuineIntel")[0] == "winograd"
  assert xla_cpu.conv_impl("cpu", "float32", {"avx2"}, yes, **amd)[0] == \
      "winograd"
  assert xla_cpu.conv_impl("gpu", "bfloat16", bf16_cpu, yes)[0] == "xla"
  # A tuned choice of oneDNN that no longer builds falls back.
  xla_cpu.save_tuned({"ynn_fusion": "", "conv_impl": "onednn",
                      "bfloat16_conv_impl": "onednn"},
                     xla_cpu.machine_key(bf16_cpu))
  monkeypatch.delenv(xla_cpu.NO_TUNE_ENV, raising=False)
  assert xla_cpu.conv_impl("cpu", "float32", bf16_cpu, yes)[0] == "onednn"
  assert xla_cpu.conv_impl("cpu", "float32", bf16_cpu)[0] != "onednn"
  assert xla_cpu.conv_impl("cpu", "float32", bf16_cpu, no,
                           vendor="GenuineIntel")[0] == "winograd"
  # ... and so does a tuned bfloat16 choice of oneDNN where oneDNN has no
  # bfloat16 (a CPU without native bfloat16: untuned, 'auto' is 'xla').
  avx512 = {"avx2", "avx512f"}
  xla_cpu.save_tuned({"bfloat16_conv_impl": "onednn"},
                     xla_cpu.machine_key(avx512))
  assert xla_cpu.conv_impl("cpu", "bfloat16", avx512, yes,
                           bfloat16_ok=yes)[0] == "onednn"
  assert xla_cpu.conv_impl("cpu", "bfloat16", avx512, yes,
                           bfloat16_ok=no)[0] == "xla"


def test_missing_onednn_is_one_clear_line(monkeypatch, tmp_path):
  monkeypatch.setattr(onednn, "_state", {})
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing cached
  monkeypatch.setenv("CXX", "/nonexistent/c++")
  ok, why = onednn.available()
  assert not ok and "libdnnl-dev" in why and "\n" not in why
  with pytest.raises(ValueError, match="conv_impl='onednn'.*libdnnl-dev"):
    model_lib.FSER(3, conv_impl="onednn", rngs=nnx.Rngs(0))


def test_onednn_is_found_in_the_root_then_the_environment(monkeypatch,
                                                          tmp_path):
  """FSER_JAX_ONEDNN_ROOT first; then the Python environment's prefix where
  `pip install fser_jax[onednn]` put oneDNN's headers; else the system's.
  The prefix is part of the build's cache key."""
  env = tmp_path / "venv"
  monkeypatch.setattr(onednn.sys, "prefix", str(env))
  monkeypatch.delenv("FSER_JAX_ONEDNN_ROOT", raising=False)
  assert onednn._prefix() is None
  system_build = onednn._library_path()
  header = env / "include" / "oneapi" / "dnnl" / "dnnl.hpp"
  header.parent.mkdir(parents=True)
  header.write_text("")
  assert onednn._prefix() == str(env)
  assert onednn._library_path() != system_build
  monkeypatch.setenv("FSER_JAX_ONEDNN_ROOT", "/opt/dnnl")
  assert onednn._prefix() == "/opt/dnnl"


def test_asking_for_onednn_winograd_where_it_cannot_run_is_an_error(
    monkeypatch):
  """By name, 'onednn_winograd' on a oneDNN without float32 Winograd
  kernels is refused (it would silently run the direct convolution)."""
  monkeypatch.setattr(onednn, "available", lambda: (True, "stub"))
  monkeypatch.setattr(onednn, "winograd_ok", lambda: False)
  with pytest.raises(ValueError, match="no float32 Winograd kernels"):
    model_lib.FSER(3, conv_impl="onednn_winograd", rngs=nnx.Rngs(0))
