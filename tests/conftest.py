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
  c.baseline = False  # seconds per load; on in `source_run` and its tests
  return _apply(c, overrides)


def _apply(c, overrides: dict):
  """Sets 'section.key' (or top-level 'key') values on a config."""
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


@pytest.fixture(scope="session")
def source_run(tfds_dir, tmp_path_factory):
  """A tiny trained run on fser/synthetic_small (8 FSER classes), never
  modified by the tests that use it (fine-tuning, evaluate, curves)."""
  from fser_jax import run
  workdir = str(tmp_path_factory.mktemp("source_run"))
  c = tiny_config(tfds_dir, **{"train.num_epochs": 2, "baseline": True})
  run.train_and_evaluate(c, workdir)
  return workdir


@pytest.fixture(scope="session")
def user_recordings(tmp_path_factory):
  """The embedded stand-in for a user's recordings, shrunk: 6 speakers x 5
  labels (angry, happy, sad, fear, neutral) x 2 clips, 8 kHz phone channel,
  with manifest.csv (path,label,speaker,gender)."""
  from fser_jax.datasets import synthetic
  d = str(tmp_path_factory.mktemp("user_recordings"))
  return synthetic.write_user_recordings(d, utterances=2)


def own_tiny_config(tfds_dir: str, path: str, **overrides):
  """configs/own_data.py on `path`, shrunk like `tiny_config`."""
  import importlib.util
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  spec = importlib.util.spec_from_file_location(
      "own_data", os.path.join(root, "configs", "own_data.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config(path)
  small = tiny_config(tfds_dir)
  c.data.data_dir = tfds_dir
  c.model.filters, c.model.dense = small.model.filters, small.model.dense
  c.train.batch_size = 16
  c.train.num_epochs = 2
  c.train.steps_per_dispatch = 4
  c.train.checkpoint_every_epochs = 1
  c.train.eval_every_epochs = 1
  return _apply(c, overrides)
