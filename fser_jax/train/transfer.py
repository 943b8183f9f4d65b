"""Start a run from a trained run: `train.init_from`, `train.freeze`.

`--config.train.init_from=RUN` on any training config: the new run's initial
parameters come from RUN's best checkpoint (fser_jax.train.rundir.restore_params).

- Every layer but the output layer is copied. The output layer is copied
  whole when the new label set equals RUN's classes (same names, same
  order); otherwise it is re-initialised, and the rows (kernel columns and
  bias entries) of new classes that map to one of RUN's classes through
  fser_jax.data.labels (identical names, synonyms, `train.init_label_map`) are
  copied from that class: a head that starts where RUN's knowledge is.
- Front-end and architecture must agree: a RUN whose `features.*`,
  `data.sample_rate` or `model.filters/kernel_size/dense` differ from the new
  config is refused with one line naming the keys and RUN's values (set them,
  or pick another run). We refuse rather than silently adopt RUN's front-end,
  so the new config.json always says what the run did.
- `train.freeze`: 'none'; 'convs' (the four convolution blocks); 'trunk'
  (every layer but the output layer). Frozen parameters get exactly zero
  updates (optax.multi_transform with optax.set_to_zero): bitwise unchanged
  (fser_jax/train/optimizer.py).
- `train.head_only_steps`: the output layer alone trains first (a linear
  probe), then every layer: the new head is fitted before its gradients
  reach the trunk.
- Input normalisation: the new run's own training statistics by default;
  `train.init_from_norm=True` keeps RUN's (input_pipeline reads them).
"""

from __future__ import annotations

import os

import jax
import numpy as np

from fser_jax import config as config_lib
from fser_jax.data import labels as labels_lib
from fser_jax.train import rundir
from fser_jax.train import optimizer as state_lib
from fser_jax.config import ConfigError

FRONT_END_KEYS = ("data.sample_rate", "model.filters", "model.kernel_size",
                  "model.dense")


def check_compatible(new_config, src_config, run: str) -> None:
  """Refuses a RUN whose front-end or architecture differs, naming the keys."""
  # Keys added after a run was saved compare as their defaults.
  a = rundir.config_dict(new_config)
  b = rundir.config_dict(src_config)
  keys = rundir.changed_keys(
      b, a, only=lambda k: k.startswith("features.") or k in FRONT_END_KEYS)
  a, b = config_lib.flatten(a), config_lib.flatten(b)
  if keys:
    shown = ", ".join(f"{k}={b.get(k)!r} (this config: {a.get(k)!r})"
                      for k in keys[:6])
    raise ConfigError(
        f"config train.init_from={run}: that run's front-end or architecture "
        f"differs: {shown}. Set these keys to the run's values "
        f"(--config.{keys[0]}=...) or start from another run.")


def load_init(config, classes, in_channels: int):
  """(initial params for the new run, info dict for its report).

  Args:
    config: the new run's config (train.init_from set).
    classes: the new run's class names.
    in_channels: input channels of the new run's images.
  """
  run = os.path.expanduser(config.train.init_from)
  src_cfg = rundir.read_config(run)
  check_compatible(config, src_cfg, run)
  src_classes = list(rundir.read_normalisation(run)["classes"])
  _, src_params, step = rundir.restore_params(run, src_cfg, len(src_classes),
                                              in_channels)
  _, new_state, _ = state_lib.create(config, len(classes), in_channels, 1)
  new = new_state["params"].to_pure_dict()
  src = jax.device_get(src_params.to_pure_dict())
  num_dense = len(new["dense"])
  same_head = list(classes) == src_classes
  transferred, reinit = [], []

  def walk(dst, s, prefix):
    for k in dst:
      name = f"{prefix}{k}"
      if isinstance(dst[k], dict):
        walk(dst[k], s[k], name + "/")
      elif state_lib.is_head(name, num_dense) and not same_head:
        reinit.append(name)
      else:
        if np.shape(dst[k]) != np.shape(s[k]):
          raise ConfigError(f"config train.init_from={run}: parameter {name} "
                            f"has shape {np.shape(s[k])} there, "
                            f"{np.shape(dst[k])} here")
        dst[k] = np.asarray(s[k])
        transferred.append(name)

  walk(new, src, "")
  copied = {}
  if not same_head:
    resolved = labels_lib.resolve(
        classes, src_classes,
        labels_lib.parse_user_map(config.train.init_label_map))
    head, src_head = new["dense"][num_dense - 1], src["dense"][num_dense - 1]
    kernel = np.array(head["kernel"])
    bias = np.array(head["bias"])
    for i, c in enumerate(classes):
      m = resolved["map"][c]
      if m is not None:
        j = src_classes.index(m)
        kernel[:, i] = np.asarray(src_head["kernel"])[:, j]
        bias[i] = np.asarray(src_head["bias"])[j]
        copied[c] = m
    head["kernel"], head["bias"] = kernel, bias
  params = new_state["params"]
  params.replace_by_pure_dict(jax.tree.map(np.asarray, new))
  info = {"run": os.path.abspath(run), "checkpoint_step": step,
          "source_classes": src_classes, "transferred": transferred,
          "reinitialised": reinit,
          "head": ("copied" if same_head else
                   "rows copied for mapped classes" if copied else
                   "re-initialised"),
          "head_rows_copied": copied,
          "freeze": config.train.freeze,
          "normalisation": ("the run's (train.init_from_norm)"
                            if config.train.get("init_from_norm") else
                            "this run's training split")}
  return params, info


def source_norm(config):
  """RUN's normalisation statistics (train.init_from_norm), or None."""
  if not (config.train.get("init_from") and config.train.get("init_from_norm")):
    return None
  run = os.path.expanduser(config.train.init_from)
  if not os.path.exists(rundir.path(run, rundir.NORMALISATION)):
    raise ConfigError(f"config train.init_from_norm=True: "
                      f"{rundir.path(run, rundir.NORMALISATION)} is missing")
  n = rundir.read_normalisation(run)
  return (n["mean"], n["std"])
