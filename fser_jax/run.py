"""One run from config to report: what `launch.py --mode train` calls.

workdir/
  config.json     the resolved config (a different config is refused)
  splits.csv      every clip and its split
  metrics.jsonl   one JSON object per logged step
  checkpoints/    orbax, latest states (resume)
  best/           orbax, best state by validation accuracy
  tensorboard/    event files
  report.json, report.md, plots/*.png
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
from absl import logging

from fser_jax import config as config_lib
from fser_jax import familiarity
from fser_jax import input_pipeline
from fser_jax import metrics as metrics_lib
from fser_jax import plots
from fser_jax import train as train_lib

# Keys that may change between invocations on one workdir without changing
# the run: extending training, logging and checkpoint cadence, devices.
RESUMABLE_KEYS = {"train.num_epochs",
                  "train.eval_every_epochs", "train.checkpoint_every_epochs",
                  "train.steps_per_dispatch", "train.max_checkpoints",
                  "mesh.num_devices", "mesh.distributed",
                  "data.data_dir", "data.manual_dir"}
RUN_FILES = ("config.json", "splits.csv", "metrics.jsonl", "report.json",
             "report.md", "normalisation.json", familiarity.FILENAME)
RUN_DIRS = ("checkpoints", "best", "tensorboard", "plots")


class WorkdirConflict(RuntimeError):
  pass


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
  return out


def config_dict(config) -> dict:
  return json.loads(config.to_json_best_effort())


def prepare_workdir(config, workdir: str, overwrite: bool = False) -> None:
  """Creates the workdir, or checks that the run in it has the same config."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "config.json")
  new = config_dict(config)
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    a, b = _flatten(old), _flatten(new)
    diff = sorted(k for k in set(a) | set(b)
                  if a.get(k) != b.get(k) and k not in RESUMABLE_KEYS)
    if diff and not overwrite:
      shown = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in diff[:8])
      raise WorkdirConflict(
          f"{workdir} holds a run with another config ({shown}). Use another "
          "--workdir, or pass --overwrite to delete that run and start anew.")
    if overwrite:  # a fresh start, whether or not the config changed
      logging.warning("--overwrite: deleting the run in %s.", workdir)
      for name in RUN_FILES:
        if os.path.exists(os.path.join(workdir, name)):
          os.remove(os.path.join(workdir, name))
      for name in RUN_DIRS:
        shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
  with open(path, "w") as f:
    json.dump(new, f, indent=2, sort_keys=True)


def fit_familiarity(data, result: dict, workdir: str, x_test,
                    correct: np.ndarray) -> dict:
  """Fits fser_jax.familiarity on the best checkpoint, saves it for predict,
  and returns its summary on the test clips."""
  embed = train_lib.make_embed_fn(result["graphdef"])
  params = result["state"]["params"]
  emb = lambda x: train_lib.predict_logits(embed, params, x)
  x_train, y_train = data.subset("train")
  fam = familiarity.fit(emb(x_train), y_train,
                        emb(data.subset("validation")[0]))
  familiarity.save(os.path.join(workdir, familiarity.FILENAME), fam)
  return familiarity.summary(fam, familiarity.distance(fam, emb(x_test)),
                             correct)


def familiarity_line(fam: dict) -> str:
  acc = lambda k: "-" if fam.get(k) is None else f"{100 * fam[k]:.1f}%"
  return (f"Familiarity (fser_jax/familiarity.py): {fam['n_unfamiliar']} of "
          f"{fam['n_familiar'] + fam['n_unfamiliar']} test clips "
          f"({100 * fam['test_unfamiliar_fraction']:.1f}%) lie farther from the "
          f"training data than {100 * fam['quantile']:.0f}% of the validation "
          f"clips (last hidden layer, Mahalanobis distance > "
          f"{fam['threshold']:.1f}). Accuracy on the familiar clips "
          f"{acc('accuracy_familiar')}, on the unfamiliar ones "
          f"{acc('accuracy_unfamiliar')}.")


def evaluate_and_report(config, data, result: dict, workdir: str) -> dict:
  x_test, y_test = data.subset("test")
  logits = train_lib.predict_logits(result["eval_fn"], result["state"]["params"],
                                    x_test)
  probs = metrics_lib.softmax(logits)
  rep = metrics_lib.report(y_test, probs, data.classes, data.meta_of("test"))
  rep.update({
      "dataset": config.data.dataset, "protocol": config.data.protocol,
      "fold": config.data.fold, "best_step": int(result["best_step"]),
      "n_train": int(np.sum(data.split == "train")),
      "n_validation": int(np.sum(data.split == "validation")),
      "familiarity": fit_familiarity(data, result, workdir, x_test,
                                     probs.argmax(1) == y_test),
  })
  with open(os.path.join(workdir, "report.json"), "w") as f:
    json.dump(rep, f, indent=2)
  paper = config.data.dataset == "fser/all" and config.data.protocol == "paper"
  extra = (f"Dataset `{config.data.dataset}`, protocol `{config.data.protocol}` "
           f"fold {config.data.fold}; train {rep['n_train']}, validation "
           f"{rep['n_validation']} clips; best checkpoint by validation "
           f"accuracy: step {rep['best_step']}.")
  extra += "\n\n" + familiarity_line(rep["familiarity"])
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write(metrics_lib.to_markdown(rep, paper=paper, extra=extra))
  pdir = plots.ensure_dir(workdir)
  plots.confusion_matrix(rep, os.path.join(pdir, "confusion_matrix.png"))
  plots.roc_curves(y_test, probs, data.classes, os.path.join(pdir, "roc.png"))
  plots.training_curves(result["history"],
                        os.path.join(pdir, "training_curves.png"))
  return rep


def train_and_evaluate(config, workdir: str, *, overwrite: bool = False) -> dict:
  """Trains (resuming if the workdir holds a run) and writes the report."""
  config_lib.validate(config)
  prepare_workdir(config, workdir, overwrite)
  data = input_pipeline.load(config)
  input_pipeline.write_splits_csv(os.path.join(workdir, "splits.csv"), data)
  pdir = plots.ensure_dir(workdir)
  plots.example_images(data.raw_images(), data.labels, data.classes,
                       os.path.join(pdir, "inputs.png"))
  with open(os.path.join(workdir, "normalisation.json"), "w") as f:
    json.dump({"mean": data.norm[0], "std": data.norm[1],
               "classes": list(data.classes)}, f)
  result = train_lib.fit(config, data, workdir)
  rep = evaluate_and_report(config, data, result, workdir)
  logging.info("Test (%s, fold %d, %d clips): accuracy %.4f, UA %.4f, "
               "macro-F1 %.4f. Report: %s", config.data.protocol,
               config.data.fold, rep["n_test"], rep["accuracy"],
               rep["unweighted_accuracy"], rep["macro_f1"],
               os.path.join(workdir, "report.md"))
  return rep
