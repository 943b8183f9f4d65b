"""Shared fixtures: a tiny synthetic TFDS dataset built once per session, and
tiny configs (Flax examples shrink configs in tests the same way)."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The repository root, as launch.py has it: configs/*.py import configs.common.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Tests never read the developer's tuned settings (python -m fser_jax.tools.tune):
# every run here gets the per-ISA defaults; tests of the cache unset this.
os.environ["FSER_JAX_NO_TUNE_CACHE"] = "1"

import fser_jax.cpu  # noqa: E402

# As launch.py does: the per-CPU defaults before JAX starts.
fser_jax.cpu.configure()

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


@pytest.fixture(scope="session")
def ar_dir(tmp_path_factory):
  """fser/synthetic_small built as ArrayRecord files (random access: what
  streamed training reads)."""
  import tensorflow_datasets as tfds
  import fser_jax.datasets  # noqa: F401
  d = str(tmp_path_factory.mktemp("tfds_array_record"))
  tfds.builder("fser/synthetic_small", data_dir=d).download_and_prepare(
      file_format="array_record")
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


def tiny_config_file(path, data_dir: str, **overrides) -> str:
  """Writes a config file (for launch.py subprocesses) whose get_config()
  is `tiny_config(data_dir, **overrides)`; returns its path."""
  here = os.path.dirname(os.path.abspath(__file__))
  with open(path, "w") as f:
    f.write("import sys\n"
            f"sys.path.insert(0, {here!r})\n"
            "from conftest import tiny_config\n"
            "def get_config():\n"
            f"  return tiny_config({data_dir!r}, **{overrides!r})\n")
  return str(path)


def _apply(c, overrides: dict):
  """Sets 'section.key' (any depth, or top-level 'key') values on a config."""
  for k, v in overrides.items():
    *path, name = k.split(".")
    node = c
    for part in path:
      node = node[part]
    node[name] = v
  return c


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """After each test module, JAX's in-process caches (compiled programs,
  traces) are dropped: a worker runs ~170 tests, and keeping every program
  it compiled grew it past 5 GB. The on-disk compilation cache keeps the
  next module's compiles cheap."""
  yield
  import gc
  import sys
  if "jax" in sys.modules:
    sys.modules["jax"].clear_caches()
  gc.collect()


@pytest.fixture
def tiny(tfds_dir):
  return lambda **kw: tiny_config(tfds_dir, **kw)


@pytest.fixture(scope="session")
def source_run(tfds_dir, tmp_path_factory):
  """A tiny trained run on fser/synthetic_small (8 FSER classes), never
  modified by the tests that use it (fine-tuning, evaluate, curves)."""
  from fser_jax.runs import cnn
  workdir = str(tmp_path_factory.mktemp("source_run"))
  c = tiny_config(tfds_dir, **{"train.num_epochs": 2, "baseline": True})
  cnn.run(c, workdir)
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


# launch.py's own entry point (`_run`: the one `except UserError` -> one
# line, exit 2) run over several command lines in ONE subprocess, to pay the
# interpreter's and TensorFlow's start-up once instead of per case.
_DRIVER = r'''
import contextlib, io, json, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import launch
results = []
for argv in json.loads(sys.argv[3]):
  sys.argv = ["launch.py"] + argv
  for name in list(launch.FLAGS):  # each case starts from the defaults
    if name.startswith("config."):  # the last case's --config.x overrides
      delattr(launch.FLAGS, name)
    else:
      launch.FLAGS[name].unparse()
  err = io.StringIO()
  try:
    with contextlib.redirect_stderr(err):
      launch._run()
    code = 0
  except SystemExit as e:
    code = e.code
  results.append({"code": code, "stderr": err.getvalue()})
print("RESULTS" + json.dumps(results))
'''


def launch_all(argvs: list[list[str]], timeout: int = 600) -> list[dict]:
  """[{'code', 'stderr'}] of `python launch.py ARGV` for each ARGV, in one
  fresh process (flags re-parsed per case; each case's stderr apart)."""
  import json
  import subprocess
  import sys
  here = os.path.dirname(os.path.abspath(__file__))
  r = subprocess.run([sys.executable, "-c", _DRIVER, os.path.dirname(here),
                      here, json.dumps(argvs)], capture_output=True,
                     text=True, timeout=timeout,
                     env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert "RESULTS" in r.stdout, r.stderr[-3000:]
  return json.loads(r.stdout.split("RESULTS", 1)[1])


def assert_one_line_exit_2(result: dict, want: str) -> None:
  """Exit 2, one 'error:' message naming `want` (on its line, or in the
  how-to-fix lines under it), no traceback."""
  err = result["stderr"]
  assert result["code"] == 2, err[-2000:]
  lines = [l for l in err.splitlines() if l.startswith("error:")]
  assert len(lines) == 1, err[-2000:]
  assert want in err[err.index(lines[0]):], err[-2000:]
  assert "Traceback" not in err
