"""The XLA:CPU convolution backend, chosen per CPU before JAX starts.

jaxlib 0.10.2's XLA:CPU sends float32 convolutions (backward ones included),
dots and reductions to YNNPACK fusions by default
(`--xla_cpu_experimental_ynn_fusion_type` defaults to individual_dot,
individual_convolution, reduce). On CPUs without AVX-512 those convolutions
are much slower than XLA's Eigen ones, so there `configure()` turns YNNPACK
fusions off; on AVX-512 CPUs it sets the value measured fastest for the
vendor (below). A flag the user set in XLA_FLAGS always wins. The
measurements behind each default, per CPU kind: docs/performance.md.
`configure()` runs when fser_jax is imported (before the first computation,
which is when XLA reads XLA_FLAGS); `CHOICE` says what it did and why, and
launch.py logs it.

Chosen by measurement: `python -m fser_jax.tools.tune` times the train step under
every candidate (this flag's values, `model.conv_impl`, precisions), each in
a subprocess, and caches the fastest float32 one per CPU model, ISA flags
and jaxlib version (`tune_cache_path()`). Where that cache has this
machine's entry, `configure()` and `conv_impl()` apply it; without one, the
per-ISA defaults below apply:

  AVX2 (no AVX-512)  YNNPACK fusions off, Winograd: each faster than
                     jaxlib's default and than lax convolutions on a 2-core
                     AMD EPYC with AVX2.
  AVX-512, Intel     `individual_dot,reduce`, Winograd: the fastest of the
                     candidates without oneDNN on a 2-core Xeon with
                     AVX-512, AVX512_BF16 and AMX (jaxlib 0.10.2).
  AVX-512, AMD       YNNPACK fusions off, Winograd: the fastest on a 2-core
                     Zen 4 EPYC with AVX-512 and AVX512_BF16, no AMX
                     (jaxlib 0.10.2), where `individual_dot,reduce` lost in
                     every alternation: the two vendors' CPUs disagree, so
                     the untuned default goes by vendor.
  float32, AVX-512 with oneDNN 2.x built: `conv_impl='onednn_winograd'`
                     with the flag above (`conv_impl()` below).
  bfloat16 (AVX512_BF16 or AMX, oneDNN built): `conv_impl='onednn'`
                     (`conv_impl()` below).
  One machine of each kind: run the tuner on yours.
"""

from __future__ import annotations

import json
import os

FLAG = "--xla_cpu_experimental_ynn_fusion_type"
CHOICE = "not configured"
USER_SET = False  # the user's XLA_FLAGS named FLAG before configure() ran
# The value configure() put in XLA_FLAGS, for the processes this one starts
# (they inherit both and so know the flag as fser_jax's, not the user's).
SET_BY_US = "FSER_JAX_XLA_FLAG"
AVX512_DEFAULT = "individual_dot,reduce"
NO_TUNE_ENV = "FSER_JAX_NO_TUNE_CACHE"  # set: ignore the tuner's cache


def _cpuinfo(field: str) -> str | None:
  """The first `field : value` of /proc/cpuinfo, or None."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith(field):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return None


def cpu_model() -> str:
  return _cpuinfo("model name") or "unknown"


# ISA flags that change which kernels XLA:CPU and YNNPACK can use.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
             "avx_vnni")


def machine_key(flags: set[str] | None = None, model: str | None = None,
                jaxlib: str | None = None) -> str:
  """What a tuned choice holds for: CPU model, ISA flags, jaxlib version."""
  flags = cpu_flags() if flags is None else flags
  if jaxlib is None:
    from importlib import metadata
    try:
      jaxlib = metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
      jaxlib = "unknown"
  isa = "+".join(f for f in ISA_FLAGS if f in flags) or "none"
  return f"{model or cpu_model()} | {isa} | jaxlib {jaxlib}"


def tune_cache_path() -> str:
  base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
  return os.path.join(base, "fser_jax", "tune.json")


def load_tuned(key: str | None = None, path: str | None = None) -> dict | None:
  """This machine's entry in the tuner's cache, or None."""
  if os.environ.get(NO_TUNE_ENV):
    return None
  path = path or tune_cache_path()
  try:
    with open(path) as f:
      cache = json.load(f)
  except (OSError, ValueError):
    return None
  return cache.get(key or machine_key())


def save_tuned(entry: dict, key: str | None = None,
               path: str | None = None) -> str:
  path = path or tune_cache_path()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  try:
    with open(path) as f:
      cache = json.load(f)
  except (OSError, ValueError):
    cache = {}
  cache[key or machine_key()] = entry
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(cache, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
  return path


def cpu_vendor() -> str:
  """'GenuineIntel', 'AuthenticAMD', ... or 'unknown'."""
  return _cpuinfo("vendor_id") or "unknown"


def avx512_default(vendor: str) -> tuple[str, str]:
  """The YNNPACK flag's value on an untuned AVX-512 CPU and where it was
  measured: the two AVX-512 CPUs measured disagree, so it goes by vendor."""
  if vendor == "AuthenticAMD":
    return "", ("YNNPACK fusions off, faster than individual_dot,reduce in "
                "every alternation on an AVX-512 Zen 4 EPYC")
  return AVX512_DEFAULT, (f"{AVX512_DEFAULT}, the fastest candidate without "
                          "oneDNN on an AVX-512/AMX Xeon")


def cpu_flags() -> set[str]:
  return set((_cpuinfo("flags") or "").split())


def configure(environ=None, flags: set[str] | None = None,
              vendor: str | None = None) -> str:
  """Sets the YNNPACK flag in `environ["XLA_FLAGS"]` for this CPU unless the
  user set it; returns (and stores in CHOICE) a line saying what and why."""
  global CHOICE, USER_SET
  environ = os.environ if environ is None else environ
  current = environ.get("XLA_FLAGS", "")
  ours = environ.get(SET_BY_US)
  inherited = ours is not None and f"{FLAG}={ours}" in current.split()
  if environ is os.environ:
    USER_SET = FLAG in current and not inherited
  if inherited:
    CHOICE = f"{FLAG}={ours}, as fser_jax chose it in the parent process"
  elif FLAG in current:
    CHOICE = f"XLA_FLAGS already sets {FLAG}: left as the user set it"
  elif os.environ.get("FSER_JAX_KEEP_XLA_DEFAULTS"):
    CHOICE = "FSER_JAX_KEEP_XLA_DEFAULTS is set: jaxlib's default backend"
  else:
    def put(value):  # the flag, and the marker saying it is ours
      environ["XLA_FLAGS"] = (current + f" {FLAG}={value}").strip()
      environ[SET_BY_US] = value

    flags = cpu_flags() if flags is None else flags
    tuned = load_tuned(machine_key(flags)) if flags else None
    if tuned and tuned.get("ynn_fusion") is not None:
      if tuned["ynn_fusion"] != "default":
        put(tuned["ynn_fusion"])
      # The rates are this machine's, read from the tuner's cache.
      CHOICE = ("tuned on this machine by python -m fser_jax.tools.tune: "
                f"{FLAG}={tuned['ynn_fusion']} with conv_impl "
                f"{tuned.get('conv_impl')}, the fastest float32 candidate "
                f"({tuned.get('examples_per_sec', 0):.0f} ex/s against "
                f"{tuned.get('default_examples_per_sec', 0):.0f} for the "
                "untuned default)")
    elif not flags:
      CHOICE = "CPU features unknown (no /proc/cpuinfo): jaxlib's default"
    elif "avx512f" in flags:
      value, why = avx512_default(vendor or cpu_vendor())
      put(value)
      CHOICE = (f"CPU has AVX-512, not tuned here: {FLAG}={value} ({why}; "
                "run python -m fser_jax.tools.tune to measure this machine)")
    else:
      put("")
      CHOICE = (f"CPU without AVX-512: {FLAG}= (YNNPACK fusions off: XLA's "
                "Eigen convolutions, faster than YNNPACK's without AVX-512)")
  return CHOICE


def ynn_off_options() -> dict:
  """jax.jit compiler options that turn YNNPACK fusions off for one
  program, whatever the process-wide choice; empty where the user set FLAG
  in XLA_FLAGS or asked for jaxlib's defaults. The wav2vec2 family's
  encoders use them: on an AMX Xeon they ran faster with YNNPACK fusions
  off than with the AVX-512 Intel default, in both precisions, while
  Whisper's ran slower, so Whisper keeps the process-wide choice
  (docs/encoders.md#speed)."""
  if USER_SET or os.environ.get("FSER_JAX_KEEP_XLA_DEFAULTS"):
    return {}
  return {FLAG.lstrip("-"): ""}


def bfloat16_note(flags: set[str] | None = None) -> str | None:
  """Why `train.precision='bfloat16'` will not be faster on this CPU, or None
  where it has native bfloat16 arithmetic (AVX512_BF16 or AMX-BF16).

  Without it, every bfloat16 product is widened to float32 and narrowed
  back, and XLA:CPU's bfloat16 convolutions run in Eigen rather than the
  float32 path's kernels, so the step is slower than float32's (measured on
  an AVX2 EPYC: docs/performance.md)."""
  flags = cpu_flags() if flags is None else flags
  if not flags or {"avx512_bf16", "amx_bf16"} & flags:
    return None
  return ("train.precision='bfloat16' on a CPU without native bfloat16 "
          "arithmetic (no AVX512_BF16 / AMX-BF16): expect it to be slower "
          "than float32 here (every product is widened to float32 and "
          "back); use float32 on this machine, bfloat16 on GPUs and AMX "
          "CPUs.")


def conv_impl(backend: str, dtype_name: str = "float32",
              flags: set[str] | None = None, onednn_ok=None,
              vendor: str | None = None,
              winograd_ok=None, bfloat16_ok=None) -> tuple[str, str]:
  """What `model.conv_impl='auto'` means on this machine: (impl, why).

  The tuner's cached choice, where this machine has one, comes first (its
  float32 winner, or its fastest bfloat16 candidate for bfloat16). Without
  one, on CPUs:
  - float32: 'winograd' (kernels.winograd_conv for the layers with >= 64 input
    channels, kernels.pooled_conv for the first): faster than lax
    convolutions and than Keras on an AVX2 EPYC, and the fastest float32
    candidate without oneDNN on an AVX-512/AMX Xeon.
    On an AVX-512 CPU where oneDNN's float32 Winograd kernels run
    (`onednn.winograd_ok`): 'onednn_winograd' (every 3x3 layer after the
    first in oneDNN's Winograd F(4x4, 3x3)), the fastest float32 step
    measured on a Zen 4 EPYC and on an AMX Xeon. Where only the direct
    oneDNN convolutions run, on AMD
    'winograd_onednn' (the second layer in oneDNN too), faster than
    'winograd' on the Zen 4 EPYC.
  - bfloat16: 'onednn' where the CPU has native bfloat16 (AVX512_BF16 or
    AMX-BF16), the oneDNN convolutions build here (fser_jax/cpu/onednn.py)
    and oneDNN runs them in bfloat16 (`bfloat16_ok`): several times XLA's
    bfloat16 step on the Zen 4 EPYC (AVX512_BF16, no AMX), whose
    convolutions widen every product to float32 in Eigen. Otherwise 'xla'
    (Winograd's transforms need float32).
  The figures behind each: docs/performance.md.
  GPUs: 'xla' (cuDNN picks its own algorithms, Winograd among them).
  `onednn_ok`, `winograd_ok`, `bfloat16_ok`: callables saying whether the
  oneDNN convolutions build here, whether oneDNN's Winograd runs and
  whether its bfloat16 convolutions run (`fser_jax.cpu.onednn.ok`,
  `.winograd_ok`, `.bfloat16_ok`, passed in by `kernels.resolve_conv_impl`
  and launch.py: this module sits below that one); without the first two
  they are not considered, without the third the CPU flags decide (they do
  not see ONEDNN_MAX_CPU_ISA, which can leave oneDNN without bfloat16 on a
  CPU that has it)."""
  if backend != "cpu":
    return "xla", f"{backend}: XLA's convolutions (cuDNN picks the algorithm)"
  flags = cpu_flags() if flags is None else flags
  if not flags:
    return "xla", "CPU features unknown: XLA's convolutions"
  onednn_ok = onednn_ok or (lambda: False)
  native_bf16 = bool({"avx512_bf16", "amx_bf16"} & flags)
  bfloat16_ok = bfloat16_ok or (lambda: native_bf16)

  def onednn_runs():  # oneDNN's convolutions, in this dtype
    return onednn_ok() and (dtype_name == "float32" or bfloat16_ok())

  tuned = load_tuned(machine_key(flags))
  field = "conv_impl" if dtype_name == "float32" else "bfloat16_conv_impl"
  if tuned and tuned.get(field):
    impl = tuned[field]
    if "onednn" not in impl or onednn_runs():
      return impl, "tuned on this machine by python -m fser_jax.tools.tune"
  if dtype_name != "float32":
    if native_bf16 and onednn_runs():
      return "onednn", (f"{dtype_name} on a CPU with native bfloat16: "
                        "oneDNN's convolutions, which compute in bfloat16 "
                        "where XLA's widen every product to float32")
    return "xla", f"{dtype_name}: Winograd's transforms need float32"
  winograd_ok = winograd_ok or (lambda: False)
  if "avx512f" in flags:
    if onednn_ok() and winograd_ok():
      return "onednn_winograd", (
          "CPU with AVX-512, not tuned here: oneDNN's Winograd for every 3x3 "
          "layer after the first (the fastest float32 step on a Zen 4 EPYC "
          "and an AMX Xeon; python -m fser_jax.tools.tune measures this "
          "machine)")
    if (vendor or cpu_vendor()) == "AuthenticAMD" and onednn_ok():
      return "winograd_onednn", (
          "AMD CPU with AVX-512, not tuned here: Winograd for the layers with "
          ">= 64 input channels, oneDNN for the second (faster than "
          "'winograd' alone on a Zen 4 EPYC)")
    return "winograd", ("CPU has AVX-512, not tuned here: Winograd, the "
                        "fastest float32 candidate measured on an AVX-512 "
                        "Xeon (and without oneDNN on a Zen 4 EPYC)")
  return "winograd", ("CPU without AVX-512: Winograd F(4x4,3x3) for layers "
                      "with >= 64 input channels and the first layer as one "
                      "matmul over its pooling phases (faster than lax "
                      "convolutions on AVX2)")
