"""Score a trained run on any labelled data, whatever its label names.

  python launch.py --mode evaluate --workdir RUN --data SOURCE --output_dir OUT \
      [--label_map 'frustrated=anger,bored=calm' | --label_map map.json]

SOURCE is a folder with one subfolder per label, a CSV manifest (path,label
and optional speaker,gender,corpus,language; as configs/own_data.py), or a
built TFDS name such as `fser/emodb` (`--data_dir` as usual). Every clip goes
through fser_jax.inference.TrainedRun.classify: RUN's own front-end,
normalisation and windowing, as predict does.

Data labels are mapped onto RUN's classes by fser_jax.labels (identical
names, the synonym table, the user's map). Clips whose label has no
counterpart are counted, listed and kept out of accuracy, and appear as rows
of the rectangular confusion matrix (data labels x model classes). UA and
macro-F1 average over the model classes present in the data.

OUT gets report.json / report.md / plots/ (the shape of a training run's
report, plus `label_map`, `unmapped`, `confusion_data_x_model`, `restricted`
and `familiarity`) and predictions.csv (one row per clip).
"""

from __future__ import annotations

import collections
import csv
import json
import os

import ml_collections
import numpy as np
from absl import logging

from fser_jax import familiarity
from fser_jax import input_pipeline
from fser_jax import labels as labels_lib
from fser_jax import metrics as metrics_lib
from fser_jax import plots
from fser_jax.datasets import files as files_lib
from fser_jax.errors import DataError
from fser_jax.experiments import predict as predict_lib
from fser_jax.inference import TrainedRun

META = ("speaker", "gender", "corpus", "language")


def load_labelled(source: str, run: TrainedRun, data_dir: str = ""):
  """(filenames, waveforms, data labels, meta, problems) of SOURCE at RUN's
  sample rate. Unreadable files are listed in `problems`, not fatal."""
  path = os.path.expanduser(source)
  if os.path.isdir(path) or path.lower().endswith(".csv"):
    if not os.path.exists(path):
      raise DataError(f"--data {source}: no such folder or manifest")
    entries, problems = files_lib.scan_own(path)
    names, wavs, labels = [], [], []
    meta = {k: [] for k in META}
    for e, (_, w) in zip(entries, predict_lib.load_many(
        run, [e["abspath"] for e in entries])):
      if isinstance(w, Exception):
        problems.append(f"{e['filename']}: {w.problem}")
        continue
      names.append(e["filename"])
      wavs.append(w)
      labels.append(e["label"])
      for k in META:
        meta[k].append(e[k])
    return names, wavs, labels, {k: np.array(v, object)
                                 for k, v in meta.items()}, problems
  if source.startswith("fser/") or source == "own":
    cfg = ml_collections.ConfigDict({
        "dataset": source, "data_dir": data_dir, "manual_dir": "",
        "own_path": "", "sample_rate": run.sample_rate})
    wavs, y, classes, meta = input_pipeline.load_clips(cfg)
    return (list(meta["filename"]), wavs, [classes[i] for i in y],
            {k: meta[k] for k in META}, [])
  raise DataError(f"--data {source}: expected a folder with one subfolder per "
                  "label, a .csv manifest, or a built TFDS name like fser/emodb")


def evaluate(run: TrainedRun, waveforms, data_labels, meta=None, *,
             label_map=None, names=None) -> tuple[dict, list[dict]]:
  """The report dict and per-clip rows of RUN on labelled waveforms.

  Args:
    run: the trained run.
    waveforms: clips at the run's rate.
    data_labels: each clip's label, in the data's own names.
    meta: optional per-clip arrays (speaker, gender, corpus, language).
    label_map: a user map (fser_jax.labels.parse_user_map) or None.
    names: clip names for the rows.
  """
  data_labels = [str(x) for x in data_labels]
  if not waveforms:
    raise DataError("no clips to evaluate")
  present = sorted(set(data_labels))
  resolved = labels_lib.resolve(present, run.classes,
                                labels_lib.parse_user_map(label_map))
  mapping = resolved["map"]
  out = run.classify(list(waveforms),
                     groups=run.groups_for(meta, len(waveforms)))
  probs = out.probs
  idx = {c: i for i, c in enumerate(run.classes)}
  y = np.array([-1 if mapping[l] is None else idx[mapping[l]]
                for l in data_labels])
  mapped = y >= 0
  counts = collections.Counter(data_labels)
  unmapped = {l: counts[l] for l in present if mapping[l] is None}
  if not mapped.any():
    raise DataError(
        "none of the data's labels (" + ", ".join(present) + ") maps to a "
        f"class of the run ({', '.join(run.classes)}); pass --label_map "
        "'data_label=class,...'")
  meta = {k: np.asarray(v, object) for k, v in (meta or {}).items()}
  meta_m = {k: v[mapped] for k, v in meta.items()}
  rep = metrics_lib.report(y[mapped], probs[mapped], run.classes, meta_m)
  y_pred = probs.argmax(1)
  # The model's answer restricted to the classes the data has (a user whose
  # recordings hold 5 emotions may ignore the other 3).
  kept = sorted({int(v) for v in y[mapped]})
  restricted_pred = np.array(kept)[probs[:, kept].argmax(1)]
  rs = metrics_lib.summary(y[mapped], restricted_pred[mapped], len(run.classes))
  rect = np.zeros((len(present), len(run.classes)), int)
  for l, p in zip(data_labels, y_pred):
    rect[present.index(l), p] += 1
  correct = (y_pred == y)[mapped]
  fam = None
  if out.distance is not None:
    fam = familiarity.summary(run.familiarity, out.distance[mapped], correct)
    fam["all_clips_unfamiliar_fraction"] = float(
        np.mean(out.distance > run.familiarity["threshold"]))
  rep["selective"] = selective_at_val80(run, probs[mapped],
                                        None if out.distance is None
                                        else out.distance[mapped], correct)
  rep.update({
      "run": os.path.abspath(run.workdir), "checkpoint_step": run.step,
      "n_clips": len(data_labels), "n_mapped": int(mapped.sum()),
      "n_unmapped": int((~mapped).sum()),
      "label_map": mapping, "label_map_how": resolved["how"],
      "unmapped": unmapped,
      "classes_absent_from_data": [c for i, c in enumerate(run.classes)
                                   if i not in kept],
      "confusion_data_x_model": {"rows": present, "columns": run.classes,
                                 "counts": rect.tolist()},
      "restricted": {k: rs[k] for k in ("accuracy", "unweighted_accuracy",
                                        "macro_f1")},
      "familiarity": fam,
      "degenerate": metrics_lib.dominant_class(y_pred, run.classes),
  })
  rows = []
  for i, l in enumerate(data_labels):
    r = {"file": names[i] if names else str(i), "label": l,
         "mapped_to": mapping[l] or "",
         "prediction": run.classes[int(y_pred[i])],
         "correct": ("" if y[i] < 0 else "yes" if y_pred[i] == y[i] else "no")}
    r.update({c: float(p) for c, p in zip(run.classes, probs[i])})
    if out.distance is not None:
      r["distance"] = float(out.distance[i])
      r["familiar"] = ("yes" if out.distance[i] <= run.familiarity["threshold"]
                       else "no")
    rows.append(r)
  return rep, rows


def selective_at_val80(run, probs, distance, correct) -> dict:
  """Accuracy of the clips kept by thresholds that kept 80% of the run's
  validation clips (fser_jax/calibration.py), per score."""
  from fser_jax import calibration
  cal = getattr(run, "calibration", None)
  if not cal or not cal.get("val_confidence"):
    return {}
  out = {}
  sc = calibration.scores(probs, distance, cal)
  refs = {k: v for k, v in calibration.validation_scores(cal).items()
          if k in sc}
  for name, ref in refs.items():
    keep = sc[name] >= calibration.threshold_for(ref, 0.8)
    out[name] = {"coverage": float(keep.mean()),
                 "accuracy": float(correct[keep].mean()) if keep.any()
                 else None}
  return out


def to_markdown(rep: dict, source: str, problems: list[str]) -> str:
  pct = metrics_lib.pct
  first = metrics_lib.dominant_line(rep.get("degenerate"), rep["n_clips"])
  lines = ([first, ""] if first else []) + [f"Run `{rep['run']}` (checkpoint step {rep['checkpoint_step']}) on "
           f"`{source}`: {rep['n_clips']} clips, {rep['n_mapped']} with a label "
           f"that maps to a class of the run, {rep['n_unmapped']} without.", "",
           "Label map (data label -> run class):", "",
           "| data label | clips | run class | how |", "|---|---|---|---|"]
  counts = {r: sum(row) for r, row in zip(
      rep["confusion_data_x_model"]["rows"],
      rep["confusion_data_x_model"]["counts"])}
  for l, c in rep["label_map"].items():
    lines.append(f"| {l} | {counts.get(l, 0)} | {c or '(none: not scored)'} | "
                 f"{rep['label_map_how'][l]} |")
  if rep["classes_absent_from_data"]:
    lines += ["", "Run classes absent from the data (no recall for them; UA "
              "averages over the classes present): "
              + ", ".join(rep["classes_absent_from_data"]) + "."]
  r = rep["restricted"]
  lines += ["", f"Restricted to the run classes the data has (argmax over "
            f"those only): accuracy {pct(r['accuracy'])}%, UA "
            f"{pct(r['unweighted_accuracy'])}%, macro-F1 {pct(r['macro_f1'])}%."]
  sel = rep.get("selective") or {}
  if sel:
    lines += ["", "Abstaining (thresholds that kept 80% of the run's validation "
              "clips): " + "; ".join(
                  f"{k}: keeps {100 * v['coverage']:.1f}% of the mapped clips, "
                  f"accuracy {pct(v['accuracy'])}%" for k, v in sel.items())
              + "."]
  fam = rep.get("familiarity")
  if fam:
    acc = lambda k: "-" if fam.get(k) is None else f"{100 * fam[k]:.1f}%"
    lines += ["", f"Familiarity: {100 * fam['all_clips_unfamiliar_fraction']:.1f}"
              f"% of all clips lie farther from the run's training data than "
              f"{100 * fam['quantile']:.0f}% of its validation clips; accuracy "
              f"on the familiar mapped clips {acc('accuracy_familiar')}, on the "
              f"unfamiliar ones {acc('accuracy_unfamiliar')}."]
  rect = rep["confusion_data_x_model"]
  lines += ["", "## What the run calls each data label (counts)", "",
            "| data label \\ predicted | " + " | ".join(rect["columns"]) + " |",
            "|---|" + "---|" * len(rect["columns"])]
  for name, row in zip(rect["rows"], rect["counts"]):
    lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
  if problems:
    lines += ["", f"Skipped {len(problems)} file(s):", ""]
    lines += [f"- {p}" for p in problems]
  return metrics_lib.to_markdown(rep, title="FSER evaluation report",
                                 extra="\n".join(lines))


def main(workdir: str, data: str, output_dir: str, *, label_map=None,
         data_dir: str = "") -> dict:
  if not data:
    raise DataError("--mode evaluate needs --data (a label-folder, a .csv "
                    "manifest or a built TFDS name like fser/emodb)")
  if not output_dir:
    raise DataError("--mode evaluate needs --output_dir (where the report goes)")
  run = TrainedRun(workdir)
  names, wavs, data_labels, meta, problems = load_labelled(data, run, data_dir)
  if problems:
    logging.warning("Skipped %d file(s):\n  %s", len(problems),
                    "\n  ".join(problems))
  resolved = labels_lib.resolve(sorted(set(data_labels)), run.classes,
                                labels_lib.parse_user_map(label_map))
  logging.info("Label map (data label -> run class):\n%s",
               labels_lib.describe(resolved))
  logging.info("Classifying %d clip(s) with %s.", len(wavs), workdir)
  rep, rows = evaluate(run, wavs, data_labels, meta, label_map=label_map,
                       names=names)
  rep["data"] = data
  rep["skipped_files"] = problems
  os.makedirs(output_dir, exist_ok=True)
  write_outputs(rep, rows, run.classes, output_dir, data, problems)
  logging.info("Evaluation on %s: %d mapped clips, accuracy %.4f, UA %.4f, "
               "macro-F1 %.4f; %d unmapped. Report: %s", data, rep["n_mapped"],
               rep["accuracy"], rep["unweighted_accuracy"], rep["macro_f1"],
               rep["n_unmapped"], os.path.join(output_dir, "report.md"))
  return rep


def write_outputs(rep, rows, classes, output_dir, source, problems) -> None:
  with open(os.path.join(output_dir, "report.json"), "w") as f:
    json.dump(rep, f, indent=2)
  with open(os.path.join(output_dir, "report.md"), "w") as f:
    f.write(to_markdown(rep, source, problems))
  with open(os.path.join(output_dir, "label_map.json"), "w") as f:
    json.dump({"map": rep["label_map"], "how": rep["label_map_how"]}, f,
              indent=2)
  cols = ["file", "label", "mapped_to", "prediction", "correct", *classes,
          "distance", "familiar"]
  with open(os.path.join(output_dir, "predictions.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=cols)
    w.writeheader()
    for r in rows:
      w.writerow({k: r.get(k, "") for k in cols})
  pdir = plots.ensure_dir(output_dir)
  rect = rep["confusion_data_x_model"]
  plots.confusion_counts(rect["rows"], rect["columns"], rect["counts"],
                         os.path.join(pdir, "confusion_matrix.png"),
                         title=f"Data labels x run classes "
                         f"(acc {rep['accuracy']:.1%} on mapped clips)")
