"""fser_jax: FSER speech emotion recognition in JAX/Flax.

The data's way, one module a stage: audio -> features -> augment -> model ->
train -> metrics -> checkpoints (datasets/ and splits feed it; report, plots,
predict and generalisation read its results).
"""

__version__ = "0.2.0"

import os as _os

# librosa's YIN (the baseline's pitch) runs numba code compiled for the host
# CPU; numba 0.68 / llvmlite 0.50 names some Xeons with AMX 'rocketlake' and
# its code for that target crashes (segmentation fault). Generic x86-64 code
# gives the same pitch; a value the user set wins.
_os.environ.setdefault("NUMBA_CPU_NAME", "generic")

# Choose XLA:CPU's convolution backend for this CPU before JAX reads
# XLA_FLAGS (fser_jax/xla_cpu.py; a flag the user set wins).
from fser_jax import xla_cpu as _xla_cpu  # noqa: E402

_xla_cpu.configure()

# Keep compiled programs on disk between runs (fser_jax/jax_cache.py).
from fser_jax import jax_cache as _jax_cache  # noqa: E402

_jax_cache.configure()
