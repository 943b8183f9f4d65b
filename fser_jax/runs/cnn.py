"""One run from config to report: what `launch.py --mode train` calls.

The run directory's files are fser_jax/train/rundir.py's. After training, the
report scores the splits' clips the one way every mode does
(fser_jax.runs.trained.TrainedRun: the best checkpoint restored from the
workdir, each clip from its audio through the run's front-end,
standardisation and windows), so a run's report and `--mode evaluate` on
the same clips give the same numbers, whatever the clips' length.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import logging

from fser_jax.evaluation import linear
from fser_jax.evaluation import calibration as calibration_lib
from fser_jax import config as config_lib
from fser_jax.train import distributed
from fser_jax.evaluation import familiarity
from fser_jax.runs import trained as inference
from fser_jax.data import input_pipeline
from fser_jax.frontend import normalisation
from fser_jax.evaluation import metrics as metrics_lib
from fser_jax.evaluation import plots
from fser_jax.train import rundir
from fser_jax.train import loop as train_lib
from fser_jax.train import transfer


def baseline_features(stats: np.ndarray, meta: dict, normalize: str
                      ) -> np.ndarray:
  """The baseline's statistics as the model's inputs are normalised: as
  they are under 'global', else standardised per speaker (or corpus) with
  that group's own clips."""
  if normalize == "global":
    return stats
  return linear.speaker_standardise(
      stats, normalisation.norm_groups(meta, normalize))


def baseline_of(data, normalize: str = "global") -> dict | None:
  """fser_jax.evaluation.linear fitted on the training clips, scored on the test
  clips of the same split (None when the data has no clip statistics). It
  sees what the model sees: under features.normalize='speaker' / 'corpus'
  its statistics are standardised per group with the group's own clips, as
  the model's inputs are; its choices are cross-validated by speaker."""
  if data.clip_stats is None:
    return None
  tr, te = data.split == "train", data.split == "test"
  x = baseline_features(data.clip_stats, data.meta, normalize)
  rep = linear.fit_and_score(
      x[tr], data.labels[tr], x[te], data.labels[te], len(data.classes),
      groups_train=np.asarray(data.meta["speaker"], object)[tr])
  if rep is not None:
    rep["normalisation"] = normalize
  return rep


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
  lines = [f"Calibration (fser_jax/evaluation/calibration.py; temperature fitted on the "
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
  return (f"Familiarity (fser_jax/evaluation/familiarity.py): {fam['n_unfamiliar']} of "
          f"{fam['n_familiar'] + fam['n_unfamiliar']} test clips "
          f"({100 * fam['test_unfamiliar_fraction']:.1f}%) lie farther from the "
          f"training data than {100 * fam['quantile']:.0f}% of the validation "
          f"clips (last hidden layer, Mahalanobis distance > "
          f"{fam['threshold']:.1f}). Accuracy on the familiar clips "
          f"{acc('accuracy_familiar')}, on the unfamiliar ones "
          f"{acc('accuracy_unfamiliar')}.")


def evaluate_and_report(config, data, result: train_lib.FitResult,
                        workdir: str, init_info: dict | None = None) -> dict:
  """Fits the familiarity model (training windows) and the calibration
  (validation windows), then scores the test clips as `--mode evaluate`
  does, and writes report.json, report.md and the plots."""
  run = inference.TrainedRun(workdir, trust=False)  # T = 1, no distances
  read, chunk = input_pipeline.clip_reader(config, data)

  def windows(split):
    idx = np.flatnonzero(data.split == split)
    return run.window_outputs_read(
        read, idx, groups=run.groups_for(data.meta_of(split), idx.size),
        chunk=chunk)

  w_train, w_val, w_test = (windows(s) for s in ("train", "validation", "test"))
  y_train, y_val, y_test = (data.labels[data.split == s]
                            for s in ("train", "validation", "test"))
  # Familiarity: fitted on the training windows, threshold from validation.
  fam = familiarity.fit(w_train.hidden, y_train[w_train.clip_of_window()],
                        w_val.hidden, val_bounds=w_val.bounds)
  lead = distributed.is_lead()  # the one process that writes
  if lead:
    familiarity.save(rundir.path(workdir, rundir.FAMILIARITY), fam)
  run.familiarity = fam
  d_val = (run.aggregate(w_val).distance if y_val.size else None)
  # Calibration: temperature and selective thresholds from validation only.
  cal = calibration_lib.fit(w_val.logits, y_val, d_val, bounds=w_val.bounds)
  if lead:
    calibration_lib.save(rundir.path(workdir, rundir.CALIBRATION), cal)
  run.calibration, run.temperature = cal, cal["temperature"]
  out = run.aggregate(w_test)  # what evaluate gives on these clips
  probs, d_test = out.probs, out.distance
  rep = metrics_lib.report(y_test, probs, data.classes, data.meta_of("test"))
  calib, selective = calibration_lib.summarise(
      cal, w_test.logits, y_test, d_test, w_val.logits, d_val,
      test_bounds=w_test.bounds, val_bounds=w_val.bounds)
  rep.update({
      "dataset": config.data.dataset, "protocol": config.data.protocol,
      "fold": config.data.fold, "best_step": int(result.best_step),
      "n_train": int(np.sum(data.split == "train")),
      "n_validation": int(np.sum(data.split == "validation")),
      "familiarity": familiarity.summary(fam, d_test,
                                         probs.argmax(1) == y_test),
      "calibration": calib, "selective": selective,
      "init_from": init_info,
      "baseline": baseline_of(data, config.features.normalize),
  })
  if not lead:
    return rep
  with open(rundir.path(workdir, rundir.REPORT_JSON), "w") as f:
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
  with open(rundir.path(workdir, rundir.REPORT_MD), "w") as f:
    f.write(metrics_lib.to_markdown(rep, paper=paper, extra=extra))
  pdir = plots.ensure_dir(workdir)
  plots.confusion_matrix(rep, os.path.join(pdir, "confusion_matrix.png"))
  plots.roc_curves(y_test, probs, data.classes, os.path.join(pdir, "roc.png"))
  plots.training_curves(result.history,
                        os.path.join(pdir, "training_curves.png"))
  plots.reliability(
      calibration_lib.reliability(
          calibration_lib.clip_probs(w_test.logits, 1.0, w_test.bounds),
          y_test),
      calibration_lib.reliability(probs, y_test),
      os.path.join(pdir, "reliability.png"))
  plots.risk_coverage(
      calibration_lib.scores(probs, d_test, cal),
      probs.argmax(1) == y_test, os.path.join(pdir, "risk_coverage.png"))
  return rep


def train_and_evaluate(config, workdir: str, *, overwrite: bool = False) -> dict:
  """Trains (resuming if the workdir holds a run) and writes the report."""
  config_lib.validate(config)
  rundir.prepare(config, workdir, overwrite)
  distributed.barrier("workdir prepared")  # the lead's --overwrite is done
  data = input_pipeline.load(config, norm=transfer.source_norm(config))
  if distributed.is_lead():
    rundir.write_splits_csv(rundir.path(workdir, rundir.SPLITS), data)
    plots.example_images(data.raw_images(), data.labels[data.rows()],
                         data.classes,
                         os.path.join(plots.ensure_dir(workdir), "inputs.png"))
  rundir.write_normalisation(workdir, data.norm, data.classes,
                             normalisation.normalize_mode(config.features))
  distributed.barrier("normalisation written")
  init_params, init_info = None, None
  if config.train.init_from:
    init_params, init_info = transfer.load_init(config, data.classes,
                                                data.channels)
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
               rundir.path(workdir, rundir.REPORT_MD))
  return rep


def train_or_read_back(config, workdir: str, *, overwrite: bool = False
                       ) -> dict:
  """The report of the run of `config` in `workdir`: read back when it
  finished before (after checking the config is the same), else trained
  (resuming from its checkpoint)."""
  rep = None if overwrite else rundir.read_report(workdir)
  if rep is None:
    return train_and_evaluate(config, workdir, overwrite=overwrite)
  rundir.prepare(config, workdir)  # refuses a changed config
  return rep
