"""The XLA:CPU convolution backend, chosen per CPU before JAX starts.

jaxlib 0.10.2's XLA:CPU sends float32 convolutions (backward ones included),
dots and reductions to YNNPACK fusions by default
(`--xla_cpu_experimental_ynn_fusion_type` defaults to individual_dot,
individual_convolution, reduce). On CPUs without AVX-512 those convolutions
are much slower than XLA's Eigen ones. Measured side by side in one session
on a 2-core AMD EPYC with AVX2 (no AVX-512), `benchmarks/train_step.py
--batch_size 64 --baseline none --repeats 3`, float32:

  XLA_FLAGS                                                  train step
  (jaxlib default: YNNPACK for dots, convolutions, reductions)  141 ex/s
  --xla_cpu_experimental_ynn_fusion_type=       (YNNPACK off)   287 ex/s
  --xla_cpu_experimental_ynn_fusion_type=individual_dot,reduce  274 ex/s

So on a CPU without AVX-512, `configure()` turns YNNPACK fusions off. On an
AVX-512 CPU it keeps jaxlib's default: we have not measured the flag there
(our AVX-512 sessions predate this module), and a default we have not
measured beats one we guessed. A flag the user set in XLA_FLAGS always wins.
`configure()` runs when fser_jax is imported (before the first computation,
which is when XLA reads XLA_FLAGS); `CHOICE` says what it did and why, and
launch.py logs it.
"""

from __future__ import annotations

import os

FLAG = "--xla_cpu_experimental_ynn_fusion_type"
CHOICE = "not configured"


def cpu_flags() -> set[str]:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("flags"):
          return set(line.split(":", 1)[1].split())
  except OSError:
    pass
  return set()


def configure(environ=None, flags: set[str] | None = None) -> str:
  """Sets the YNNPACK flag in `environ["XLA_FLAGS"]` for this CPU unless the
  user set it; returns (and stores in CHOICE) a line saying what and why."""
  global CHOICE
  environ = os.environ if environ is None else environ
  current = environ.get("XLA_FLAGS", "")
  if FLAG in current:
    CHOICE = f"XLA_FLAGS already sets {FLAG}: left as the user set it"
  elif os.environ.get("FSER_JAX_KEEP_XLA_DEFAULTS"):
    CHOICE = "FSER_JAX_KEEP_XLA_DEFAULTS is set: jaxlib's default backend"
  else:
    flags = cpu_flags() if flags is None else flags
    if not flags:
      CHOICE = "CPU features unknown (no /proc/cpuinfo): jaxlib's default"
    elif "avx512f" in flags:
      CHOICE = ("CPU has AVX-512: jaxlib's default (YNNPACK fusions); the "
                "alternative is unmeasured on AVX-512")
    else:
      environ["XLA_FLAGS"] = (current + f" {FLAG}=").strip()
      CHOICE = (f"CPU without AVX-512: {FLAG}= (YNNPACK fusions off, XLA's "
                "Eigen convolutions; 2.0x faster train step measured on AVX2)")
  return CHOICE


def bfloat16_note(flags: set[str] | None = None) -> str | None:
  """Why `train.precision='bfloat16'` will not be faster on this CPU, or None
  where it has native bfloat16 arithmetic (AVX512_BF16 or AMX-BF16).

  Without it, every bfloat16 product is widened to float32 and narrowed
  back, and XLA:CPU's bfloat16 convolutions run in Eigen rather than the
  float32 path's kernels: measured on the 2-core AVX2 EPYC
  (`benchmarks/train_step.py --baseline none --repeats 3`, two runs back to
  back), float32 130.5 ex/s, bfloat16 109.0 (x0.84)."""
  flags = cpu_flags() if flags is None else flags
  if not flags or {"avx512_bf16", "amx_bf16"} & flags:
    return None
  return ("train.precision='bfloat16' on a CPU without native bfloat16 "
          "arithmetic (no AVX512_BF16 / AMX-BF16): expect it to be slower "
          "than float32 here (x0.84 measured on AVX2); use float32 on this "
          "machine, bfloat16 on GPUs and AMX CPUs.")


def conv_impl(backend: str, dtype_name: str = "float32",
              flags: set[str] | None = None) -> tuple[str, str]:
  """What `model.conv_impl='auto'` means on this machine: (impl, why).

  'winograd' (model.winograd_conv for the layers with >= 64 input channels,
  model.pooled_conv for the first) on a CPU without AVX-512 in float32: the
  train step measured side by side on a 2-core AVX2 EPYC (batch 64),
  `benchmarks/train_step.py --conv_impl auto,xla`: 190.0 ex/s with these,
  131.1 with lax convolutions, Keras 108.5 (x1.75 and x1.21).
  'xla' elsewhere: GPUs run cuDNN, which picks its own algorithms (Winograd
  among them), and AVX-512 CPUs are unmeasured, so they keep the measured
  default rather than a guess."""
  if backend != "cpu":
    return "xla", f"{backend}: XLA's convolutions (cuDNN picks the algorithm)"
  if dtype_name != "float32":
    return "xla", f"{dtype_name}: Winograd's transforms need float32"
  flags = cpu_flags() if flags is None else flags
  if not flags:
    return "xla", "CPU features unknown: XLA's convolutions"
  if "avx512f" in flags:
    return "xla", ("CPU has AVX-512: XLA's convolutions (Winograd unmeasured "
                   "there)")
  return "winograd", ("CPU without AVX-512: Winograd F(4x4,3x3) for layers "
                      "with >= 64 input channels and the first layer as one "
                      "matmul over its pooling phases (train step x1.45 "
                      "measured on AVX2)")
