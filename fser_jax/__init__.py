"""fser_jax: FSER speech emotion recognition in JAX/Flax.

The data's way, one module a stage: audio -> features -> augment -> model ->
train -> metrics -> checkpoints (datasets/ and splits feed it; report, plots,
predict and generalisation read its results).
"""

__version__ = "0.1.0"

# Choose XLA:CPU's convolution backend for this CPU before JAX reads
# XLA_FLAGS (fser_jax/xla_cpu.py; a flag the user set wins).
from fser_jax import xla_cpu as _xla_cpu  # noqa: E402

_xla_cpu.configure()

# Keep compiled programs on disk between runs (fser_jax/jax_cache.py).
from fser_jax import jax_cache as _jax_cache  # noqa: E402

_jax_cache.configure()
