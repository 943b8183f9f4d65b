"""fser_jax: FSER speech emotion recognition in JAX/Flax.

The data's way, one module a stage: audio -> features -> augment -> model ->
train -> metrics -> checkpoints (datasets/ and splits feed it; report, plots,
predict and generalisation read its results).
"""

__version__ = "0.1.0"
