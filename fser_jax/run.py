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

from fser_jax import baseline as baseline_lib
from fser_jax import calibration as calibration_lib
from fser_jax import config as config_lib
from fser_jax import familiarity
from fser_jax import input_pipeline
from fser_jax import metrics as metrics_lib
from fser_jax import plots
from fser_jax import train as train_lib
from fser_jax import forward
from fser_jax import transfer
from fser_jax.errors import UserError

# Keys that may change between invocations on one workdir without changing
# the run: extending training, logging and checkpoint cadence, devices.
RESUMABLE_KEYS = {"train.num_epochs",
                  "train.eval_every_epochs", "train.checkpoint_every_epochs",
                  "train.steps_per_dispatch", "train.max_checkpoints",
                  "mesh.num_devices", "mesh.distributed", "baseline",
                  "data.data_dir", "data.manual_dir"}
RUN_FILES = ("config.json", "splits.csv", "metrics.jsonl", "report.json",
             "report.md", "normalisation.json", familiarity.FILENAME,
             calibration_lib.FILENAME)
RUN_DIRS = ("checkpoints", "best", "tensorboard", "plots")


class WorkdirConflict(UserError, RuntimeError):
  pass


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
    a, b = config_lib.flatten(old), config_lib.flatten(new)
    # A key the saved run lacks (added to the library since) at its default
    # value is not a change: the old run ran with that default's behaviour.
    defaults = config_lib.flatten(config_dict(config_lib.base()))
    diff = sorted(k for k in set(a) | set(b)
                  if a.get(k) != b.get(k) and k not in RESUMABLE_KEYS
                  and not (k not in a and b.get(k) == defaults.get(k)))
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
      for name in RUN_FILES:
        if os.path.exists(os.path.join(workdir, name)):
          os.remove(os.path.join(workdir, name))
      for name in RUN_DIRS:
        shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
  with open(path, "w") as f:
    json.dump(new, f, indent=2, sort_keys=True)


def model_outputs(infer, params, images: np.ndarray, num_classes: int):
  """(logits, last hidden layer) of `params` on `images` through
  `forward.make_infer_fn`'s function: the trunk runs once for both."""
  if len(images) == 0:
    return (np.zeros((0, num_classes), np.float32),
            np.zeros((0, 1), np.float32))
  return forward.predict_logits(infer, params, images)[:2]


def baseline_of(data) -> dict | None:
  """fser_jax.baseline fitted on the training clips, scored on the test
  clips of the same split (None when the data has no clip statistics)."""
  if data.clip_stats is None:
    return None
  tr, te = data.split == "train", data.split == "test"
  return baseline_lib.fit_and_score(data.clip_stats[tr], data.labels[tr],
                                    data.clip_stats[te], data.labels[te],
                                    len(data.classes))


def baseline_line(rep: dict) -> str:
  b = rep.get("baseline")
  if not b:
    return ""
  below = rep["unweighted_accuracy"] < b["unweighted_accuracy"]
  return ((f"**Below the baseline**: the model's UA "
           f"{100 * rep['unweighted_accuracy']:.1f}% is lower than " if below
           else f"Baseline: the model's UA {100 * rep['unweighted_accuracy']:.1f}"
           f"% against ")
          + f"{100 * b['unweighted_accuracy']:.1f}% (accuracy "
          f"{100 * b['accuracy']:.1f}%, macro-F1 {100 * b['macro_f1']:.1f}%) "
          f"for a {b['model']} on the same split"
          + (": this recipe is not worth its compute here." if below else "."))


def calibration_md(rep: dict) -> str:
  c, sel = rep["calibration"], rep["selective"]
  lines = [f"Calibration (fser_jax/calibration.py; temperature fitted on the "
           f"validation split): T = {c['temperature']:.3f}; ECE "
           f"({c['bins']} {c['binning']} bins) {100 * c['ece_before']:.2f}% -> "
           f"{100 * c['ece_after']:.2f}%, NLL {c['nll_before']:.3f} -> "
           f"{c['nll_after']:.3f}, Brier {c['brier']:.3f}. Accuracy is "
           "unchanged (the argmax is).", "",
           "Selective prediction on the test split (keep the clips a score "
           "trusts most; AURC: lower is better; the last column keeps the "
           "clips above the threshold that kept 80% of validation clips):", "",
           "| score | AURC | acc @ 80% | acc @ 50% | val-80% threshold: test "
           "coverage / acc |", "|---|---|---|---|---|"]
  p = metrics_lib.pct
  for name, v in sel.items():
    t = v.get("val_threshold_80")
    tt = (f"{p(t['test_coverage'])}% / {p(t['test_accuracy'])}%" if t
          else "-")
    lines.append(f"| {name} | {v['aurc']:.4f} | {p(v['acc_at_80'])} | "
                 f"{p(v['acc_at_50'])} | {tt} |")
  return "\n".join(lines)


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


def evaluate_and_report(config, data, result: dict, workdir: str,
                        init_info: dict | None = None) -> dict:
  k = len(data.classes)
  (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
      data.subset("train"), data.subset("validation"), data.subset("test"))
  infer = forward.make_infer_fn(result["graphdef"])  # one compilation
  params = result["state"]["params"]
  logits, emb_test = model_outputs(infer, params, x_test, k)
  val_logits, emb_val = model_outputs(infer, params, x_val, k)
  _, emb_train = model_outputs(infer, params, x_train, k)
  probs = metrics_lib.softmax(logits)
  rep = metrics_lib.report(y_test, probs, data.classes, data.meta_of("test"))
  # Familiarity: fitted on the training clips, threshold from validation.
  fam = familiarity.fit(emb_train, y_train, emb_val)
  familiarity.save(os.path.join(workdir, familiarity.FILENAME), fam)
  d_test = familiarity.distance(fam, emb_test)
  d_val = familiarity.distance(fam, emb_val) if len(emb_val) else None
  # Calibration: temperature and selective thresholds from validation only.
  cal = calibration_lib.fit(val_logits, y_val, d_val)
  calibration_lib.save(os.path.join(workdir, calibration_lib.FILENAME), cal)
  calib, selective = calibration_lib.summarise(cal, logits, y_test, d_test,
                                               val_logits, d_val)
  rep.update({
      "dataset": config.data.dataset, "protocol": config.data.protocol,
      "fold": config.data.fold, "best_step": int(result["best_step"]),
      "n_train": int(np.sum(data.split == "train")),
      "n_validation": int(np.sum(data.split == "validation")),
      "familiarity": familiarity.summary(fam, d_test,
                                         probs.argmax(1) == y_test),
      "calibration": calib, "selective": selective,
      "init_from": init_info,
      "baseline": baseline_of(data),
  })
  with open(os.path.join(workdir, "report.json"), "w") as f:
    json.dump(rep, f, indent=2)
  paper = config.data.dataset == "fser/all" and config.data.protocol == "paper"
  extra = baseline_line(rep) + "\n\n" if rep.get("baseline") else ""
  extra += (f"Dataset `{config.data.dataset}`, protocol `{config.data.protocol}` "
           f"fold {config.data.fold}; train {rep['n_train']}, validation "
           f"{rep['n_validation']} clips; best checkpoint by validation "
           f"accuracy: step {rep['best_step']}.")
  extra += "\n\n" + familiarity_line(rep["familiarity"])
  extra += "\n\n" + calibration_md(rep)
  if init_info:
    extra += (f"\n\nInitialised from `{init_info['run']}` (step "
              f"{init_info['checkpoint_step']}): transferred "
              f"{', '.join(init_info['transferred'])}; output layer "
              f"{init_info['head']}"
              + (f" ({', '.join(f'{a} <- {b}' for a, b in init_info['head_rows_copied'].items())})"
                 if init_info["head_rows_copied"] else "")
              + f"; frozen: {init_info['freeze']}; input normalisation: "
              f"{init_info['normalisation']}.")
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write(metrics_lib.to_markdown(rep, paper=paper, extra=extra))
  pdir = plots.ensure_dir(workdir)
  plots.confusion_matrix(rep, os.path.join(pdir, "confusion_matrix.png"))
  plots.roc_curves(y_test, probs, data.classes, os.path.join(pdir, "roc.png"))
  plots.training_curves(result["history"],
                        os.path.join(pdir, "training_curves.png"))
  t = rep["calibration"]["temperature"]
  plots.reliability(
      calibration_lib.reliability(calibration_lib.softmax(logits), y_test),
      calibration_lib.reliability(calibration_lib.softmax(logits, t), y_test),
      os.path.join(pdir, "reliability.png"))
  cal_probs = calibration_lib.softmax(logits, t)
  plots.risk_coverage(
      calibration_lib.scores(cal_probs, d_test, cal),
      cal_probs.argmax(1) == y_test, os.path.join(pdir, "risk_coverage.png"))
  return rep


def train_and_evaluate(config, workdir: str, *, overwrite: bool = False) -> dict:
  """Trains (resuming if the workdir holds a run) and writes the report."""
  config_lib.validate(config)
  prepare_workdir(config, workdir, overwrite)
  data = input_pipeline.load(config, norm=transfer.source_norm(config))
  input_pipeline.write_splits_csv(os.path.join(workdir, "splits.csv"), data)
  pdir = plots.ensure_dir(workdir)
  plots.example_images(data.raw_images(), data.labels, data.classes,
                       os.path.join(pdir, "inputs.png"))
  with open(os.path.join(workdir, "normalisation.json"), "w") as f:
    json.dump({"mean": data.norm[0], "std": data.norm[1],
               "classes": list(data.classes),
               "normalize": input_pipeline.normalize_mode(config.features)},
              f)
  init_params, init_info = None, None
  if config.train.init_from:
    init_params, init_info = transfer.load_init(config, data.classes,
                                                data.images.shape[-1])
    logging.info("Initialised from %s (step %d): %d tensors transferred, "
                 "output layer %s; frozen: %s.", init_info["run"],
                 init_info["checkpoint_step"], len(init_info["transferred"]),
                 init_info["head"], init_info["freeze"])
  result = train_lib.fit(config, data, workdir, init_params=init_params)
  rep = evaluate_and_report(config, data, result, workdir, init_info)
  logging.info("Test (%s, fold %d, %d clips): accuracy %.4f, UA %.4f, "
               "macro-F1 %.4f. Report: %s", config.data.protocol,
               config.data.fold, rep["n_test"], rep["accuracy"],
               rep["unweighted_accuracy"], rep["macro_f1"],
               os.path.join(workdir, "report.md"))
  return rep
