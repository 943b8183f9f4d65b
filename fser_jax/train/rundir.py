"""A run directory: its files, its config, and its parameters.

workdir/
  config.json          the resolved config (a different config is refused)
  splits.csv           every clip and its split
  normalisation.json   the inputs' standardisation and the class names
  metrics.jsonl        one JSON object per logged step
  checkpoints/         orbax, latest states (resume)
  best/                orbax, best state by validation accuracy
  familiarity.npz, calibration.json   fitted after training (the report)
  tensorboard/         event files
  report.json, report.md, plots/*.png

Everything that reads or writes these names goes through here. Restoring a
run's parameters needs only its config: the model's shapes come from
`nnx.eval_shape` and orbax restores the `params` subtree alone, so no
optimizer (nor its freeze masks) is built to learn the checkpoint's shape.
"""

from __future__ import annotations

import json
import os
import shutil

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from fser_jax.train import checkpoints as ckpt_lib
from fser_jax import config as config_lib
from fser_jax.train import distributed
from fser_jax.frontend import spectrogram as features_lib
from fser_jax.model import cnn as model_lib
from fser_jax.data import splits as splits_lib
from fser_jax.errors import CheckpointError, UserError

CONFIG = "config.json"
SPLITS = "splits.csv"
NORMALISATION = "normalisation.json"
METRICS = "metrics.jsonl"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
FAMILIARITY = "familiarity.npz"
CALIBRATION = "calibration.json"
# A run whose network is a linear head on a pretrained encoder's states
# (fser_jax/runs/head.py): the head instead of checkpoints.
HEAD = "encoder_head.npz"
FILES = (CONFIG, SPLITS, METRICS, REPORT_JSON, REPORT_MD, NORMALISATION,
         FAMILIARITY, CALIBRATION, HEAD)
DIRS = ("checkpoints", "best", "tensorboard", "plots", "encoder_states")

# Keys that may change between invocations on one workdir without changing
# the run: extending training, logging and checkpoint cadence, devices.
RESUMABLE_KEYS = {"train.num_epochs",
                  "train.eval_every_epochs", "train.checkpoint_every_epochs",
                  "train.steps_per_dispatch", "train.max_checkpoints",
                  "mesh.num_devices", "mesh.distributed", "baseline",
                  "data.data_dir", "data.manual_dir", "data.beam_options"}


class WorkdirConflict(UserError, RuntimeError):
  pass


def path(workdir: str, name: str) -> str:
  return os.path.join(workdir, name)


def config_dict(config) -> dict:
  return json.loads(config.to_json_best_effort())


def changed_keys(old: dict, new: dict, *, only=None) -> list[str]:
  """Flattened keys whose values differ between two config dicts. A key one
  side lacks (added to the library after that run was saved) compares as
  its default value: the old run ran with the default's behaviour.

  Args:
    only: a predicate on key names; None: every key.
  """
  defaults = config_lib.flatten(config_dict(config_lib.base()))
  a, b = config_lib.flatten(old), config_lib.flatten(new)
  get = lambda d, k: d.get(k, defaults.get(k))
  return sorted(k for k in set(a) | set(b)
                if (only is None or only(k)) and get(a, k) != get(b, k))


def read_config(workdir: str) -> ml_collections.ConfigDict:
  if not os.path.isdir(workdir):
    raise CheckpointError(f"{workdir}: no such run folder; point --workdir (or "
                          "train.init_from) at a folder written by "
                          "launch.py --mode train")
  p = path(workdir, CONFIG)
  if not os.path.exists(p):
    raise CheckpointError(f"{workdir}: no config.json; is this a workdir "
                          "written by launch.py --mode train?")
  with open(p) as f:
    return config_lib.complete(json.load(f))


def prepare(config, workdir: str, overwrite: bool = False) -> None:
  """Creates the workdir, or checks that the run in it has the same config
  (naming the keys that differ); `overwrite` deletes the run there."""
  os.makedirs(workdir, exist_ok=True)
  p = path(workdir, CONFIG)
  new = config_dict(config)
  if os.path.exists(p) and not distributed.is_lead():
    return  # the lead process checks and writes (it may be writing it now)
  if os.path.exists(p):
    with open(p) as f:
      old = json.load(f)
    a, b = config_lib.flatten(old), config_lib.flatten(new)
    diff = changed_keys(old, new, only=lambda k: k not in RESUMABLE_KEYS)
    if (a.get("train.num_epochs") != b.get("train.num_epochs")
        and b.get("train.schedule") != "constant" and not overwrite):
      # A decaying schedule's shape is fixed by its length: extending it
      # would give a learning rate that matches neither the original run nor
      # a fresh longer one. Only constant-rate runs can be extended.
      raise WorkdirConflict(
          f"{workdir}: train.num_epochs {a.get('train.num_epochs')} -> "
          f"{b.get('train.num_epochs')} under train.schedule="
          f"{b.get('train.schedule')!r}: the schedule's length would change "
          "mid-run. Start a new --workdir (or --overwrite); only "
          "train.schedule='constant' runs can be extended.")
    if diff and not overwrite:
      shown = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in diff[:8])
      raise WorkdirConflict(
          f"{workdir} holds a run with another config ({shown}). Use another "
          "--workdir, or pass --overwrite to delete that run and start anew.")
    if overwrite:  # a fresh start, whether or not the config changed
      logging.warning("--overwrite: deleting the run in %s.", workdir)
      for name in FILES:
        if os.path.exists(path(workdir, name)):
          os.remove(path(workdir, name))
      for name in DIRS:
        shutil.rmtree(path(workdir, name), ignore_errors=True)
  if distributed.is_lead():
    with open(p, "w") as f:
      json.dump(new, f, indent=2, sort_keys=True)


# --- normalisation, splits, report ----------------------------------------------
def write_normalisation(workdir: str, norm, classes, mode: str) -> None:
  if not distributed.is_lead():
    return
  with open(path(workdir, NORMALISATION), "w") as f:
    json.dump({"mean": norm[0], "std": norm[1], "classes": list(classes),
               "normalize": mode}, f)


def read_normalisation(workdir: str) -> dict:
  """{'mean', 'std' (per channel, training split), 'classes', 'normalize'
  ('global' | 'speaker' | 'corpus'; runs saved before it: 'global')}."""
  p = path(workdir, NORMALISATION)
  if not os.path.exists(p):
    raise CheckpointError(f"{workdir}: no normalisation.json; the run did "
                          "not finish loading its data (train it first)")
  with open(p) as f:
    norm = json.load(f)
  norm.setdefault("normalize", "global")
  return norm


def split_of(workdir: str, filenames) -> np.ndarray:
  """Each of `filenames`' split in the run's splits.csv ('unused' when not
  listed there)."""
  return splits_lib.from_file(path(workdir, SPLITS), filenames)


def read_report(workdir: str) -> dict | None:
  p = path(workdir, REPORT_JSON)
  if not os.path.exists(p):
    return None
  with open(p) as f:
    return json.load(f)


# --- parameters ----------------------------------------------------------------
def abstract_params(config, num_classes: int, in_channels: int | None = None):
  """(graphdef, the parameters' ShapeDtypeStructs) of `config`'s model,
  without allocating it."""
  if in_channels is None:
    in_channels = features_lib.num_channels(config.features.kind)
  model = nnx.eval_shape(lambda: model_lib.from_config(
      config, num_classes, in_channels, config.seed))
  graphdef, params = nnx.split(model, nnx.Param)
  return graphdef, params


def restore_params(workdir: str, config=None, num_classes: int | None = None,
                   in_channels: int | None = None):
  """(graphdef, params, step): the best (else latest) parameters of the run
  in `workdir`, on this machine's first device whatever the run trained
  on. The optimizer's state in the checkpoint is not read."""
  config = read_config(workdir) if config is None else config
  if num_classes is None:
    num_classes = len(read_normalisation(workdir)["classes"])
  graphdef, params = abstract_params(config, num_classes, in_channels)
  sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  params = ckpt_lib.abstract_like(params, sharding)
  ckpts = ckpt_lib.Checkpoints(workdir)
  try:
    use_best = ckpts.best_step() is not None
    if not use_best and ckpts.latest_step() is None:
      raise CheckpointError(f"{workdir}: no checkpoint to use (train first, or "
                            "point at a trained run)")
    step = ckpts.best_step() if use_best else ckpts.latest_step()
    item = {"params": params}
    restored = ocp.PyTreeCheckpointer().restore(
        os.path.join(workdir, "best" if use_best else "checkpoints",
                     str(step), "default"),
        args=ocp.args.PyTreeRestore(
            item=item,
            restore_args=ocp.checkpoint_utils.construct_restore_args(item),
            partial_restore=True))
  except CheckpointError:
    raise
  except Exception as e:  # shape/structure mismatch from orbax
    raise CheckpointError(
        f"{workdir}: the checkpoint does not fit the model of its config "
        f"({type(e).__name__}: {str(e)[:300]})") from None
  finally:
    ckpts.close()
  return graphdef, restored["params"], int(step)


def write_splits_csv(path: str, data) -> None:
  """Every clip's file, metadata, label and split (`data`: labels, classes,
  meta, split, as input_pipeline.Data holds them)."""
  import csv
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["filename", "corpus", "speaker", "gender", "language", "label",
                "split"])
    for i in range(data.labels.size):
      w.writerow([data.meta["filename"][i], data.meta["corpus"][i],
                  data.meta["speaker"][i], data.meta["gender"][i],
                  data.meta["language"][i], data.classes[data.labels[i]],
                  data.split[i]])
