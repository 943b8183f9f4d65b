"""Shared timing helpers: warm-up first, `block_until_ready`, several timed
windows, median/min/max; device name; peak FLOP/s from a large matmul."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from fser_jax import cpu  # noqa: E402
from fser_jax.cpu import xla as xla_cpu  # noqa: E402

cpu.configure()  # the per-CPU defaults a user's run gets, before JAX starts


def isa() -> str:
  """The CPU's widest vector ISA among AVX-512 / AVX2 (every figure names it)."""
  flags = xla_cpu.cpu_flags()
  return ("AVX-512" + (" + AMX" if "amx_tile" in flags else "")
          if "avx512f" in flags else "AVX2" if "avx2" in flags else "other")


def device_name() -> str:
  import jax
  d = jax.devices()[0]
  if d.platform == "cpu":
    cpu = platform.processor() or "cpu"
    try:
      with open("/proc/cpuinfo") as f:
        for line in f:
          if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    except OSError:
      pass
    return (f"{cpu}, {isa()} ({os.cpu_count()} cores, {len(jax.devices())} "
            f"XLA device(s); {xla_cpu.CHOICE})")
  return f"{d.device_kind} x{len(jax.devices())}"


def tf_conv_backend() -> str:
  """Whether TensorFlow (already imported) runs its CPU kernels in oneDNN.

  Stock TensorFlow turns oneDNN on by default only on CPUs with AVX512_VNNI,
  AVX512_BF16, AVX-VNNI or AMX; elsewhere Keras's convolutions are Eigen's
  unless TF_ENABLE_ONEDNN_OPTS=1 was set before TensorFlow started."""
  try:
    from tensorflow.python.util import _pywrap_util_port
    on = _pywrap_util_port.IsMklEnabled()
  except Exception as e:  # noqa: BLE001  (private API: report, never fail)
    return f"unknown ({type(e).__name__})"
  return ("oneDNN on" if on else "oneDNN off (Eigen kernels)") + (
      f", TF_ENABLE_ONEDNN_OPTS={os.environ['TF_ENABLE_ONEDNN_OPTS']}"
      if "TF_ENABLE_ONEDNN_OPTS" in os.environ else ", TensorFlow's default")


def windows(fn, *, warmup: int = 2, repeats: int = 5, min_seconds: float = 1.0):
  """Times `fn()` (which must block) over `repeats` windows of >= min_seconds.

  Returns a list of (seconds, calls) per window.
  """
  for _ in range(warmup):
    fn()
  out = []
  for _ in range(repeats):
    calls, t0 = 0, time.perf_counter()
    while True:
      fn()
      calls += 1
      dt = time.perf_counter() - t0
      if dt >= min_seconds:
        break
    out.append((dt, calls))
  return out


def median_seconds(fn, *, repeats: int = 5, min_seconds: float = 0.3) -> float:
  """Median seconds per call of `fn()` (which must block) over `windows`."""
  wins = windows(fn, repeats=repeats, min_seconds=min_seconds)
  return sorted(dt / n for dt, n in wins)[len(wins) // 2]


def conv_directions() -> dict:
  """The FSER CNN's convolution (stride 1, SAME, NHWC/HWIO) in its three
  directions, unjitted: 'forward' (x, k), 'input gradient' and 'weight
  gradient' (x, k, g), as jax.vjp computes them in the train step."""
  import jax

  def conv(x, k):
    return jax.lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

  return {
      "forward": conv,
      "input gradient": lambda x, k, g: jax.vjp(lambda a: conv(a, k), x)[1](g)[0],
      "weight gradient": lambda x, k, g: jax.vjp(lambda b: conv(x, b), k)[1](g)[0],
  }


def rate_stats(wins, items_per_call: float) -> dict:
  rates = [calls * items_per_call / dt for dt, calls in wins]
  return {"median": statistics.median(rates), "min": min(rates),
          "max": max(rates)}


def peak_flops(n: int = 2048, dtype: str = "float32") -> float:
  """FLOP/s of an n x n matmul on the default device (the measured peak)."""
  import jax
  import jax.numpy as jnp
  a = jnp.ones((n, n), dtype)
  b = jnp.ones((n, n), dtype)
  f = jax.jit(lambda a, b: a @ b)
  wins = windows(lambda: f(a, b).block_until_ready(), repeats=3,
                 min_seconds=0.5)
  return rate_stats(wins, 2 * n ** 3)["median"]


def write_json(path: str | None, result: dict) -> None:
  text = json.dumps(result, indent=2)
  if path:
    with open(path, "w") as f:
      f.write(text + "\n")
  print(text)


def recipe(name: str):
  """configs/<name>.py's get_config()."""
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                         "configs", f"{name}.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config()
