"""Errors that are the user's to fix: launch.py prints their message (which
names the file, key or folder at fault) instead of a traceback."""

from fser_jax.audio import AudioError
from fser_jax.config import ConfigError
from fser_jax.datasets.corpora import FilenameError
from fser_jax.input_pipeline import DatasetNotBuiltError
from fser_jax.run import WorkdirConflict
from fser_jax.splits import SplitError
from fser_jax.train import Interrupted, TrainingDiverged


class CheckpointError(RuntimeError):
  """A workdir without a usable checkpoint, or one of another model."""


USER_ERRORS = (AudioError, ConfigError, FilenameError, DatasetNotBuiltError,
               WorkdirConflict, SplitError, TrainingDiverged, CheckpointError,
               FileNotFoundError)
