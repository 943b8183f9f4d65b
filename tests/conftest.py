"""Shared fixtures: a tiny synthetic TFDS dataset built once per session, and
tiny configs (Flax examples shrink configs in tests the same way)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from fser_jax import config as config_lib  # noqa: E402


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
  """A data dir holding fser/synthetic_small (192 clips), built once."""
  import tensorflow_datasets as tfds
  import fser_jax.datasets  # noqa: F401
  d = str(tmp_path_factory.mktemp("tfds"))
  tfds.builder("fser/synthetic_small", data_dir=d).download_and_prepare()
  return d


def tiny_config(data_dir: str, **overrides):
  """A small, fast config on fser/synthetic_small."""
  c = config_lib.base()
  c.data.dataset = "fser/synthetic_small"
  c.data.data_dir = data_dir
  c.data.protocol = "speaker"
  c.data.num_folds = 4
  c.model.filters = (8, 8, 16, 16)
  c.model.dense = (32, 16)
  c.train.batch_size = 16
  c.train.num_epochs = 2
  c.train.learning_rate = 0.05
  c.train.momentum = 0.9
  c.train.steps_per_dispatch = 4
  c.train.checkpoint_every_epochs = 1
  for k, v in overrides.items():
    if "." in k:
      section, name = k.split(".")
      c[section][name] = v
    else:
      c[k] = v
  return c


@pytest.fixture
def tiny(tfds_dir):
  return lambda **kw: tiny_config(tfds_dir, **kw)
