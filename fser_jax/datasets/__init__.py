"""TFDS datasets of fser_jax. Importing this module registers the `fser` builder
(`tfds build fser --imports fser_jax.datasets ...`, `tfds.data_source('fser/all')`)."""

from fser_jax.datasets.files import scan_own  # noqa: F401
from fser_jax.datasets.fser import Fser, FserConfig, mix_config, own_config  # noqa: F401
