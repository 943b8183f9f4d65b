"""Does it generalise? One config under the three protocols, side by side.

  python launch.py --mode generalisation --config configs/fser_fast.py --workdir DIR

Each fold is an ordinary run in DIR/<protocol>/fold_<k> (so an interrupted
experiment resumes where it stopped: finished folds are read back from their
report.json, the unfinished one resumes from its checkpoint). Writes
DIR/generalisation.json, DIR/generalisation.md and DIR/generalisation.png:
WA, UA and macro-F1 per protocol (mean, std and per fold), the drop from the
random split (`paper`) to the others, and per held-out corpus (language).
"""

from __future__ import annotations

import copy
import json
import os

import numpy as np
from absl import logging

from fser_jax.evaluation import metrics as metrics_lib
from fser_jax.data import dataset_io
from fser_jax.evaluation import plots
from fser_jax.runs import cnn as run_lib
from fser_jax.runs import report
from fser_jax.train import rundir
from fser_jax.runs import scoring
from fser_jax.data import splits as splits_lib

KEYS = ("accuracy", "unweighted_accuracy", "macro_f1")


def fold_configs(config, protocol: str) -> list:
  """The config of every fold of `protocol` on this dataset."""
  meta = dataset_io.load_metadata(config.data)
  n = splits_lib.num_folds(protocol, meta, folds=config.data.num_folds)
  out = []
  for k in range(n):
    c = copy.deepcopy(config)
    with c.unlocked():
      c.data.protocol = protocol
      c.data.fold = k
    out.append(c)
  return out


def _trust(rep: dict) -> dict:
  """Calibration and selective-prediction figures of a fold's report."""
  cal, sel = rep.get("calibration"), rep.get("selective") or {}
  if not cal:
    return {}
  return {"ece_before": cal["ece_before"], "ece_after": cal["ece_after"],
          "aurc": {k: v["aurc"] for k, v in sel.items()},
          "acc_at_val80": {k: (v.get("val_threshold_80") or {}).get(
              "test_accuracy") for k, v in sel.items()},
          "coverage_at_val80": {k: (v.get("val_threshold_80") or {}).get(
              "test_coverage") for k, v in sel.items()}}


def _stats(values: list[float]) -> dict:
  a = np.asarray(values, np.float64)
  return {"mean": float(a.mean()), "std": float(a.std()), "n": int(a.size)}


def run(config, workdir: str, protocols=("paper", "speaker", "corpus"),
            *, overwrite: bool = False) -> dict:
  os.makedirs(workdir, exist_ok=True)
  meta = dataset_io.load_metadata(config.data)
  corpora = sorted(set(meta["corpus"].tolist()))
  results = {}
  for protocol in protocols:
    if protocol in ("corpus", "cross") and len(corpora) < 2:
      logging.warning("Skipping the corpus protocol: one corpus only (%s).",
                      corpora)
      continue
    if protocol == "speaker" and len(set(meta["speaker"].tolist()) - {""}) < 2:
      logging.warning("Skipping the speaker protocol: no speaker ids.")
      continue
    folds, cfgs = [], fold_configs(config, protocol)
    for c in cfgs:
      fdir = os.path.join(workdir, protocol, f"fold_{c.data.fold}")
      name = splits_lib.fold_name(protocol, meta, c.data.fold,
                                  folds=c.data.num_folds)
      logging.info("=== %s fold %d/%d: test on %s ===", protocol,
                   c.data.fold + 1, len(cfgs), name)
      rep = run_lib.train_or_read_back(c, fdir, overwrite=overwrite)
      fam = rep.get("familiarity", {})
      folds.append({"fold": c.data.fold, "test": name, "n_test": rep["n_test"],
                    **{k: rep[k] for k in KEYS},
                    "unfamiliar": fam.get("test_unfamiliar_fraction"),
                    "accuracy_familiar": fam.get("accuracy_familiar"),
                    "accuracy_unfamiliar": fam.get("accuracy_unfamiliar"),
                    "by_corpus": rep.get("by_corpus", {}),
                    "by_gender": rep.get("by_gender", {}),
                    "baseline": rep.get("baseline"),
                    **_trust(rep)})
    results[protocol] = {
        "folds": folds, **{k: _stats([f[k] for f in folds]) for k in KEYS}}
    if all(f.get("baseline") for f in folds):
      results[protocol]["baseline"] = {
          k: _stats([f["baseline"][k] for f in folds]) for k in KEYS}
  cross = None
  if "cross" in results:
    cross = cross_matrix(config, workdir, corpora)
    results.pop("cross")
  summary = {p: {k: results[p][k] for k in KEYS} for p in results}
  out = {"dataset": config.data.dataset, "protocols": results,
         "drop_from_paper": {}}
  if "paper" in results:
    for p in results:
      if p != "paper":
        out["drop_from_paper"][p] = {
            k: results["paper"][k]["mean"] - results[p][k]["mean"] for k in KEYS}
  if "corpus" in results:
    out["per_held_out_corpus"] = {
        f["test"]: {k: f[k] for k in KEYS} for f in results["corpus"]["folds"]}
  if cross is not None:
    out["cross"] = cross
  if results:
    with open(os.path.join(workdir, "generalisation.json"), "w") as f:
      json.dump(out, f, indent=2)
    with open(os.path.join(workdir, "generalisation.md"), "w") as f:
      f.write(to_markdown(out))
    plots.generalisation_bars(summary, os.path.join(workdir,
                                                    "generalisation.png"))
    print(to_markdown(out))
  if cross is not None:
    print(cross_markdown(cross))
  return out


def cross_matrix(config, workdir: str, corpora: list[str]) -> dict:
  """The N x N cross-corpus UA matrix of the `cross` folds in
  WORKDIR/cross/fold_<i> (trained on corpus i alone): the diagonal is the
  fold's own speaker-independent test split, cell (i, j) the run on every
  clip of corpus j, through --mode evaluate's path. The baseline is fitted
  on the same training clips and scored on the same clips. Each fold's row
  is kept in its folder (cross_row.json), so a rerun reads it back."""
  from fser_jax.evaluation import linear
  from fser_jax.frontend import statistics
  from fser_jax.runs.trained import TrainedRun
  loaded = None
  n = len(corpora)
  ua = [[None] * n for _ in range(n)]
  base = [[None] * n for _ in range(n)]
  unfamiliar = [[None] * n for _ in range(n)]
  for i, src in enumerate(corpora):
    fdir = os.path.join(workdir, "cross", f"fold_{i}")
    row_path = os.path.join(fdir, "cross_row.json")
    if os.path.exists(row_path):
      with open(row_path) as f:
        row = json.load(f)
    else:
      if loaded is None:  # every clip once, with its baseline statistics
        wavs, y, classes, meta = dataset_io.load_clips(config.data)
        stats = (statistics.of_clips(wavs, config.data.sample_rate)
                 if config.baseline else None)
        if stats is not None:  # normalised as the runs' inputs are
          stats = report.baseline_features(stats, meta,
                                            config.features.normalize)
        loaded = (wavs, y, classes, meta, stats)
      wavs, y, classes, meta, stats = loaded
      rep = rundir.read_report(fdir)
      run = TrainedRun(fdir)
      tr = rundir.split_of(fdir, meta["filename"]) == splits_lib.TRAIN
      row = {"train_on": src, "cells": {}}
      fam = rep.get("familiarity") or {}
      row["cells"][src] = {
          "ua": rep["unweighted_accuracy"], "acc": rep["accuracy"],
          "unfamiliar": fam.get("test_unfamiliar_fraction"),
          "baseline_ua": (rep.get("baseline") or {}).get(
              "unweighted_accuracy"), "n": rep["n_test"]}
      for dst in corpora:
        if dst == src:
          continue
        m = np.asarray(meta["corpus"]) == dst
        ids = np.flatnonzero(m)
        r, _ = scoring.evaluate(
            run, [wavs[k] for k in ids], [classes[y[k]] for k in ids],
            {k: meta[k][m] for k in scoring.META})
        b = (linear.fit_and_score(
            stats[tr], y[tr], stats[m], y[m], len(classes),
            groups_train=np.asarray(meta["speaker"], object)[tr])
             if stats is not None else {})
        row["cells"][dst] = {
            "ua": r["unweighted_accuracy"], "acc": r["accuracy"],
            "unfamiliar": (r.get("familiarity") or {}).get(
                "all_clips_unfamiliar_fraction"),
            "baseline_ua": b.get("unweighted_accuracy"), "n": int(m.sum())}
        logging.info("cross: trained on %s, tested on %s: UA %.3f (baseline "
                     "%s).", src, dst, r["unweighted_accuracy"],
                     b.get("unweighted_accuracy"))
      with open(row_path, "w") as f:
        json.dump(row, f, indent=2)
    for j, dst in enumerate(corpora):
      cell = row["cells"][dst]
      ua[i][j], base[i][j] = cell["ua"], cell["baseline_ua"]
      unfamiliar[i][j] = cell["unfamiliar"]
  out = {"corpora": corpora, "ua": ua, "baseline_ua": base,
         "unfamiliar": unfamiliar,
         "rows": "trained on", "columns": "tested on",
         "diagonal": "the training corpus' own speaker-independent test split"}
  with open(os.path.join(workdir, "cross.json"), "w") as f:
    json.dump(out, f, indent=2)
  with open(os.path.join(workdir, "cross.md"), "w") as f:
    f.write(cross_markdown(out))
  plots.cross_heatmap(out, os.path.join(workdir, "cross.png"))
  return out


def cross_markdown(c: dict) -> str:
  names = c["corpora"]
  cell = lambda v, b: ("-" if v is None else f"{100 * v:.1f}"
                       + ("" if b is None else f" ({100 * b:.1f})"))
  lines = ["# Cross-corpus UA % (baseline in brackets)", "",
           "Rows: trained on one corpus alone; columns: tested on. The "
           "diagonal is the training corpus' own speaker-independent test "
           "split (speakers never heard in training), so in-corpus and "
           "cross-corpus figures compare like with like.", "",
           "| trained on \\ tested on | " + " | ".join(names) + " |",
           "|---|" + "---|" * len(names)]
  for i, src in enumerate(names):
    lines.append(f"| {src} | " + " | ".join(
        cell(c["ua"][i][j], c["baseline_ua"][i][j])
        for j in range(len(names))) + " |")
  return "\n".join(lines) + "\n"


def _pm(s: dict) -> str:
  return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}"


def to_markdown(out: dict) -> str:
  res = out["protocols"]
  lines = [f"# Generalisation report: `{out['dataset']}`", "",
           "| protocol | folds | WA % | UA % | macro-F1 % | baseline UA % "
           "| WA drop vs paper | unfamiliar % |",
           "|---|---|---|---|---|---|---|---|"]
  for p, r in res.items():
    drop = out["drop_from_paper"].get(p)
    unf = [f["unfamiliar"] for f in r["folds"] if f.get("unfamiliar") is not None]
    b = r.get("baseline")
    flag = (" (model below)" if b and r["unweighted_accuracy"]["mean"]
            < b["unweighted_accuracy"]["mean"] else "")
    lines.append(f"| {p} | {r['accuracy']['n']} | {_pm(r['accuracy'])} | "
                 f"{_pm(r['unweighted_accuracy'])} | {_pm(r['macro_f1'])} | "
                 + (f"{_pm(b['unweighted_accuracy'])}{flag}" if b else "-")
                 + " | " + (f"{100 * drop['accuracy']:.1f} pts" if drop else "-")
                 + f" | {metrics_lib.pct(np.mean(unf), 1) if unf else '-'} |")
  lines += ["", "`paper`: random split (speakers and sentences in train and "
            "test); `speaker`: test speakers never heard in training; "
            "`corpus`: the test corpus (language) never heard in training. "
            "`baseline`: a logistic regression on per-clip statistics "
            "(fser_jax/evaluation/linear.py) on the same splits. "
            "`unfamiliar`: test clips farther from the training data than 99% "
            "of the validation clips (fser_jax/evaluation/familiarity.py); per fold, the "
            "accuracy on the familiar and on the unfamiliar test clips.", ""]
  trust = [(p, r) for p, r in res.items()
           if all("ece_before" in f for f in r["folds"])]
  if trust:
    scores = ("confidence", "entropy", "familiarity", "combined")
    lines += ["## Trust: calibration and abstention (fser_jax/evaluation/calibration.py)",
              "", "Means over folds. ECE before -> after temperature scaling "
              "(fitted on validation); AURC per score (lower is better); "
              "WA / coverage of the test clips kept by the threshold that kept "
              "80% of the validation clips (confidence; combined = "
              "confidence + familiarity).", "",
              "| protocol | WA % | ECE % | " + " | ".join(
                  f"AURC {s}" for s in scores)
              + " | WA @val-80% conf. (cov.) | WA @val-80% comb. (cov.) |",
              "|---|---|---|" + "---|" * len(scores) + "---|---|"]
    for p, r in trust:
      fs = r["folds"]
      m = lambda xs: (float(np.mean([x for x in xs if x is not None]))
                      if any(x is not None for x in xs) else None)
      aurc = [m([f["aurc"].get(s) for f in fs]) for s in scores]
      cells = []
      for s in ("confidence", "combined"):
        a_, c_ = (m([f["acc_at_val80"].get(s) for f in fs]),
                  m([f["coverage_at_val80"].get(s) for f in fs]))
        cells.append("-" if a_ is None else f"{100 * a_:.1f} ({100 * c_:.0f}%)")
      lines.append(
          f"| {p} | {100 * r['accuracy']['mean']:.1f} | "
          f"{100 * m([f['ece_before'] for f in fs]):.1f} -> "
          f"{100 * m([f['ece_after'] for f in fs]):.1f} | "
          + " | ".join("-" if a is None else f"{a:.3f}" for a in aurc)
          + " | " + " | ".join(cells) + " |")
    lines.append("")
  for p, r in res.items():
    lines += [f"## {p}: per fold", "", "| fold | test set | clips | WA % | UA % "
              "| macro-F1 % | unfamiliar % | WA familiar / unfamiliar % |",
              "|---|---|---|---|---|---|---|---|"]
    for f in r["folds"]:
      lines.append(f"| {f['fold']} | {f['test']} | {f['n_test']} | "
                   f"{100 * f['accuracy']:.1f} | "
                   f"{100 * f['unweighted_accuracy']:.1f} | "
                   f"{100 * f['macro_f1']:.1f} | "
                   f"{metrics_lib.pct(f.get('unfamiliar'), 1)} | "
                   f"{metrics_lib.pct(f.get('accuracy_familiar'), 1)} / "
                   f"{metrics_lib.pct(f.get('accuracy_unfamiliar'), 1)} |")
    lines.append("")
  return "\n".join(lines)
