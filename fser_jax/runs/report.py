"""One report writer for every kind of run (the CNN, an encoder head).

`assess` fits what a run needs to be trusted on new clips, from the run's
own windows: familiarity (training windows; threshold from validation) and
calibration (validation windows), then scores the test clips the one way
every mode does (`trained.TrainedRun.aggregate`). `write` puts the result
in the run directory: report.json, report.md (the baseline's verdict
first, then what the run is, familiarity, calibration) and the plots.
`baseline_of` fits the linear baseline on the same split, normalised as the
run's inputs are.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from fser_jax.evaluation import calibration as calibration_lib
from fser_jax.evaluation import familiarity
from fser_jax.evaluation import linear
from fser_jax.evaluation import metrics as metrics_lib
from fser_jax.evaluation import plots
from fser_jax.frontend import normalisation
from fser_jax.train import distributed
from fser_jax.train import rundir


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
  """fser_jax.evaluation.linear fitted on the training clips, scored on the
  test clips of the same split (None when the data has no clip statistics).
  It sees what the model sees: under features.normalize='speaker' /
  'corpus' its statistics are standardised per group with the group's own
  clips, as the model's inputs are; its choices are cross-validated by
  speaker."""
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
  lines = [f"Calibration (fser_jax/evaluation/calibration.py; temperature "
           f"fitted on the validation split): T = {c['temperature']:.3f}; ECE "
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
  return (f"Familiarity (fser_jax/evaluation/familiarity.py): "
          f"{fam['n_unfamiliar']} of "
          f"{fam['n_familiar'] + fam['n_unfamiliar']} test clips "
          f"({100 * fam['test_unfamiliar_fraction']:.1f}%) lie farther from the "
          f"training data than {100 * fam['quantile']:.0f}% of the validation "
          f"clips (last hidden layer, Mahalanobis distance > "
          f"{fam['threshold']:.1f}). Accuracy on the familiar clips "
          f"{acc('accuracy_familiar')}, on the unfamiliar ones "
          f"{acc('accuracy_unfamiliar')}.")


@dataclasses.dataclass
class Assessment:
  """What `assess` found: the report's figures and what the plots need."""
  report: dict
  probs: np.ndarray  # [N_test, K] calibrated clip probabilities
  distance: np.ndarray | None  # [N_test] familiarity distances
  calibration: dict
  w_test: object  # the test clips' window outputs (raw logits, bounds)
  y_test: np.ndarray


def assess(run, workdir: str, windows: dict, labels: dict, classes,
           meta_test: dict) -> Assessment:
  """Fits familiarity on the training windows (threshold from validation;
  without validation clips, from the training windows) and calibration on
  the validation windows, saves both in `workdir` (the first process
  only), sets them on `run` and scores the test clips.

  windows / labels: {'train', 'validation', 'test'} -> the split's window
  outputs / clip labels."""
  w_tr, w_val, w_te = (windows[s] for s in ("train", "validation", "test"))
  y_tr, y_val, y_te = (labels[s] for s in ("train", "validation", "test"))
  fam = familiarity.fit(w_tr.hidden, y_tr[w_tr.clip_of_window()],
                        w_val.hidden if y_val.size else w_tr.hidden,
                        val_bounds=w_val.bounds if y_val.size else None)
  lead = distributed.is_lead()  # the one process that writes
  if lead:
    familiarity.save(rundir.path(workdir, rundir.FAMILIARITY), fam)
  run.familiarity = fam
  d_val = run.aggregate(w_val).distance if y_val.size else None
  cal = calibration_lib.fit(w_val.logits, y_val, d_val, bounds=w_val.bounds)
  if lead:
    calibration_lib.save(rundir.path(workdir, rundir.CALIBRATION), cal)
  run.calibration, run.temperature = cal, cal["temperature"]
  out = run.aggregate(w_te)  # what evaluate gives on these clips
  rep = metrics_lib.report(y_te, out.probs, classes, meta_test)
  calib, selective = calibration_lib.summarise(
      cal, w_te.logits, y_te, out.distance, w_val.logits, d_val,
      test_bounds=w_te.bounds, val_bounds=w_val.bounds)
  rep.update({
      "n_train": int(y_tr.size), "n_validation": int(y_val.size),
      "familiarity": familiarity.summary(fam, out.distance,
                                         out.probs.argmax(1) == y_te),
      "calibration": calib, "selective": selective})
  return Assessment(rep, out.probs, out.distance, cal, w_te, y_te)


def write(workdir: str, a: Assessment, about: str, *, classes,
          history: list | None = None, paper: bool = False) -> None:
  """report.json, report.md and plots/ of an assessed run (the first
  process only). `about`: the paragraph saying what the run is."""
  if not distributed.is_lead():
    return
  rep = a.report
  with open(rundir.path(workdir, rundir.REPORT_JSON), "w") as f:
    json.dump(rep, f, indent=2)
  extra = baseline_line(rep) + "\n\n" if rep.get("baseline") else ""
  extra += about
  extra += "\n\n" + familiarity_line(rep["familiarity"])
  extra += "\n\n" + calibration_md(rep)
  with open(rundir.path(workdir, rundir.REPORT_MD), "w") as f:
    f.write(metrics_lib.to_markdown(rep, paper=paper, extra=extra))
  pdir = plots.ensure_dir(workdir)
  plots.confusion_matrix(rep, os.path.join(pdir, "confusion_matrix.png"))
  plots.roc_curves(a.y_test, a.probs, classes,
                   os.path.join(pdir, "roc.png"))
  if history is not None:
    plots.training_curves(history, os.path.join(pdir, "training_curves.png"))
  plots.reliability(
      calibration_lib.reliability(
          calibration_lib.clip_probs(a.w_test.logits, 1.0, a.w_test.bounds),
          a.y_test),
      calibration_lib.reliability(a.probs, a.y_test),
      os.path.join(pdir, "reliability.png"))
  plots.risk_coverage(
      calibration_lib.scores(a.probs, a.distance, a.calibration),
      a.probs.argmax(1) == a.y_test, os.path.join(pdir, "risk_coverage.png"))
