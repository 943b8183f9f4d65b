"""oneDNN convolutions inside the jitted step: `model.conv_impl='onednn'`.

XLA:CPU runs convolutions in Eigen (or YNNPACK); on AVX-512 CPUs oneDNN's
kernels are faster, and with AVX512_BF16 or AMX they compute bfloat16
natively. This module compiles `onednn_conv.cc` (three typed XLA FFI
handlers: forward with bias, input gradient, weight and bias gradients)
against the system's oneDNN on first use, registers them with `jax.ffi`, and
exposes `conv(x, kernel, bias)`: a stride-1 SAME convolution, NHWC / HWIO,
float32 or bfloat16, with its gradients through `jax.custom_vjp`; with
`winograd=True`, oneDNN's own float32 Winograd F(4x4, 3x3) kernels
(`conv_impl='onednn_winograd'`, the AVX-512 float32 default). The calls
are part of the compiled program (no host round trip, no copies), so XLA
fuses the ReLU, pooling and dropout around them as before.

Optional: it needs a C++17 compiler and oneDNN's headers and library, found
in this order: FSER_JAX_ONEDNN_ROOT (a prefix holding include/ and lib/);
the Python environment's prefix when `pip install fser_jax[onednn]` put them
there (Intel's onednn-cpu-gomp wheels 2022.2.1, i.e. oneDNN 2.6.0, Linux
x86-64); the system's (Debian and Ubuntu: `apt-get install libdnnl-dev`,
oneDNN 2.6 on Debian 12). Without them `available()` says why, and
`conv_impl='auto'` never picks it. The shared library is cached under the
user's cache folder, keyed by the source, the oneDNN prefix, jax and the
machine. The source's oneDNN 2.x and 3.x branches are both tested (2.6.0,
2.6.3 and 3.2.0); oneDNN 3.x has no float32 Winograd kernels
(`winograd_ok()` is False with 3.2 on an AVX-512 CPU), so
`conv_impl='onednn_winograd'` needs 2.x.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import subprocess
import sys
import tempfile
import threading

import jax
import jax.numpy as jnp

from fser_jax.errors import UserError

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "onednn_conv.cc")
_TARGETS = {"forward": "FserOnednnConvForward",
            "data": "FserOnednnConvBackwardData",
            "weights": "FserOnednnConvBackwardWeights"}
_lock = threading.Lock()
_state: dict = {}
# The caps on the instruction sets oneDNN uses (3.x reads the first, 2.x
# the second): a capped oneDNN sees less of the CPU than /proc/cpuinfo.
ISA_CAP_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


class Unsupported(UserError, ValueError):
  """A oneDNN convolution asked for where this oneDNN cannot run it on this
  CPU; the message names the setting and what to use instead."""


def _prefix() -> str | None:
  """Where oneDNN's include/ and lib/ are; None: the compiler's defaults."""
  root = os.environ.get("FSER_JAX_ONEDNN_ROOT")
  if root:
    return root
  if os.path.exists(os.path.join(sys.prefix, "include", "oneapi", "dnnl",
                                 "dnnl.hpp")):
    return sys.prefix
  return None


def _library_path() -> str:
  from fser_jax.cpu import xla as xla_cpu
  with open(_SOURCE, "rb") as f:
    src = f.read()
  key = hashlib.sha256(src + repr((_prefix(), jax.__version__,
                                   xla_cpu.machine_key())).encode()
                       ).hexdigest()[:16]
  return os.path.join(os.path.dirname(xla_cpu.tune_cache_path()), "onednn",
                      f"onednn_conv_{key}.so")


def _build(path: str) -> None:
  """Compiles the handlers into `path` (atomically: concurrent builders
  each write their own file and rename it)."""
  cmd = [os.environ.get("CXX", "g++"), "-O2", "-shared", "-fPIC",
         "-std=c++17", "-w", f"-I{jax.ffi.include_dir()}"]
  prefix = _prefix()
  if prefix:
    cmd += [f"-I{os.path.join(prefix, 'include')}",
            f"-L{os.path.join(prefix, 'lib')}",
            f"-Wl,-rpath,{os.path.join(prefix, 'lib')}"]
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
  os.close(fd)
  try:
    p = subprocess.run(cmd + [_SOURCE, "-ldnnl", "-o", tmp],
                       capture_output=True, text=True, timeout=300)
    if p.returncode:
      lines = [l for l in p.stderr.splitlines() if "error" in l] or \
          p.stderr.strip().splitlines() or ["?"]
      raise OSError(lines[0].strip())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _load() -> ctypes.CDLL:
  """Builds (once per machine) and registers the handlers; raises OSError
  saying what is missing."""
  with _lock:
    if "lib" in _state:
      return _state["lib"]
    if "error" in _state:
      raise OSError(_state["error"])
    try:
      path = _state["path"] = _library_path()
      if not os.path.exists(path):
        _build(path)
      lib = ctypes.CDLL(path)
      for name in _TARGETS.values():
        jax.ffi.register_ffi_target(f"fser_{name}",
                                    jax.ffi.pycapsule(getattr(lib, name)),
                                    platform="cpu")
    except (OSError, subprocess.SubprocessError) as e:
      _state["error"] = (f"oneDNN convolutions unavailable ({e}); they need "
                         "g++ and oneDNN (Debian/Ubuntu: apt-get install "
                         "libdnnl-dev; pip install fser_jax[onednn]; or "
                         "FSER_JAX_ONEDNN_ROOT=<prefix>)")
      raise OSError(_state["error"]) from None
    _state["lib"] = lib
    return lib


def available() -> tuple[bool, str]:
  """(usable here, why not or where it is)."""
  if jax.default_backend() != "cpu":
    return False, f"{jax.default_backend()}: oneDNN convolutions are CPU-only"
  try:
    _load()
  except OSError as e:
    return False, str(e)
  return True, _state["path"]


def ok() -> bool:
  """Whether the oneDNN convolutions are usable here (`available()[0]`)."""
  return available()[0]


def winograd_ok() -> bool:
  """Whether `conv(..., winograd=True)` runs here: the oneDNN convolutions
  build and oneDNN has float32 Winograd kernels for this CPU (AVX-512)."""
  if not ok():
    return False
  if "winograd" not in _state:
    _state["winograd"] = bool(_load().FserOnednnWinogradOk())
  return _state["winograd"]


def bfloat16_ok() -> bool:
  """Whether `conv` runs in bfloat16 here: the oneDNN convolutions build and
  oneDNN has bfloat16 kernels for all three passes on this CPU, as its ISA
  cap (`ISA_CAP_ENV`) leaves it; asked of oneDNN once per process."""
  if not ok():
    return False
  if "bfloat16" not in _state:
    _state["bfloat16"] = bool(_load().FserOnednnBfloat16Ok())
  return _state["bfloat16"]


def bfloat16_message(setting: str) -> str:
  """One line for `setting` (what asked for bfloat16 in oneDNN) where
  `bfloat16_ok()` is False: the CPU as oneDNN sees it, and what to use."""
  from fser_jax.cpu import xla as xla_cpu
  native = [n for f, n in (("avx512_bf16", "AVX512_BF16"),
                           ("amx_bf16", "AMX-BF16"))
            if f in xla_cpu.cpu_flags()]
  cpu = xla_cpu.cpu_model() + (" with " + " and ".join(native) if native
                                else ", no AVX512_BF16 or AMX-BF16")
  caps = [f"{k}={os.environ[k]}" for k in ISA_CAP_ENV if os.environ.get(k)]
  if caps:
    cpu += ", oneDNN capped by " + " ".join(caps)
  return (f"{setting}: oneDNN has no bfloat16 convolutions for this CPU "
          f"({cpu}); use model.conv_impl='auto' or train.precision="
          "'float32' (bfloat16 is native on CPUs with AVX512_BF16 or AMX)")


def impls() -> str:
  """Which kernel oneDNN chose for each convolution built so far."""
  lib = _load()
  n = lib.FserOnednnImpls(None, 0)
  buf = ctypes.create_string_buffer(n + 1)
  lib.FserOnednnImpls(buf, n + 1)
  return buf.value.decode()


def _call(target: str, out_shapes, dtype, *args, winograd: bool = False):
  _load()
  outs = [jax.ShapeDtypeStruct(s, dtype) for s in out_shapes]
  return jax.ffi.ffi_call(f"fser_{_TARGETS[target]}", outs,
                          vmap_method="sequential")(*args, winograd=winograd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv(x, kernel, bias, winograd):
  return _call("forward", [x.shape[:3] + (kernel.shape[-1],)], x.dtype,
               x, kernel, bias, winograd=winograd)[0]


def _conv_fwd(x, kernel, bias, winograd):
  return _conv(x, kernel, bias, winograd), (x, kernel)


def _conv_bwd(winograd, res, g):
  # An unused input gradient (the first layer's: its input is data) is a
  # side-effect-free call that XLA removes.
  # The bias gradient comes out of the weight-gradient pass, which reads g
  # anyway: XLA's own reduction over the batch and image axes is another
  # pass over the first layer's large output (measured: docs/performance.md).
  x, kernel = res
  dx = _call("data", [x.shape], x.dtype, g, kernel, winograd=winograd)[0]
  dk, db = _call("weights", [kernel.shape, kernel.shape[-1:]], x.dtype, x, g,
                 winograd=winograd)
  return dx, dk, db


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv(x: jax.Array, kernel: jax.Array, bias: jax.Array, *,
         winograd: bool = False) -> jax.Array:
  """conv(x, kernel) + bias, stride 1, SAME padding, in oneDNN. x [B, H, W,
  C], kernel [KH, KW, C, F] (odd sizes), bias [F]; float32 or bfloat16 (the
  kernel and bias are cast to x's type). Same values as `lax.conv` within
  the type's rounding. `winograd`: oneDNN's Winograd F(4x4, 3x3) for all
  three passes (float32, 3x3), the activations reordered to and from its
  blocked layout inside the call; where oneDNN has no Winograd kernel
  (`winograd_ok()` False: a CPU without AVX-512, oneDNN 3.x) the direct
  convolution runs instead and `impls()` says so. bfloat16 where oneDNN has
  no bfloat16 kernels for this CPU (`bfloat16_ok()` False) raises
  `Unsupported` when traced."""
  if x.ndim != 4 or kernel.ndim != 4 or kernel.shape[2] != x.shape[-1]:
    raise ValueError(f"onednn.conv: x {x.shape} (NHWC) and kernel "
                     f"{kernel.shape} (HWIO) do not match")
  if kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
    raise ValueError(f"onednn.conv: odd kernel sizes only, got {kernel.shape}")
  if x.dtype not in (jnp.float32, jnp.bfloat16):
    raise ValueError(f"onednn.conv: float32 or bfloat16, got {x.dtype}")
  if winograd and (x.dtype != jnp.float32 or kernel.shape[:2] != (3, 3)):
    raise ValueError("onednn.conv: winograd=True needs float32 and a 3x3 "
                     f"kernel, got {x.dtype} and {kernel.shape}")
  # Here, before XLA builds the primitive: there oneDNN's refusal would be
  # an INTERNAL error that names neither the setting nor a way out.
  if x.dtype == jnp.bfloat16 and ok() and not bfloat16_ok():
    raise Unsupported(bfloat16_message("onednn.conv in bfloat16 ("
                                       "train.precision='bfloat16')"))
  return _conv(x, kernel.astype(x.dtype), bias.astype(x.dtype), winograd)
