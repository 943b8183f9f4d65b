"""Score a trained run on any labelled data, whatever its label names.

  python launch.py --mode evaluate --workdir RUN --data SOURCE --output_dir OUT \
      [--label_map 'frustrated=anger,bored=calm' | --label_map map.json]

SOURCE is a folder with one subfolder per label, a CSV manifest (path,label
and optional speaker,gender,corpus,language; as configs/own_data.py), or a
built TFDS name such as `fser/emodb` (`--data_dir` as usual). Every clip goes
through fser_jax.runs.scoring.evaluate and so TrainedRun.classify: RUN's own front-end,
normalisation and windowing, as predict does.

Data labels are mapped onto RUN's classes by fser_jax.data.labels (identical
names, the synonym table, the user's map). Clips whose label has no
counterpart are counted, listed and kept out of accuracy, and appear as rows
of the rectangular confusion matrix (data labels x model classes). UA and
macro-F1 average over the model classes present in the data.

OUT gets report.json / report.md / plots/ (the shape of a training run's
report, plus `label_map`, `unmapped`, `confusion_data_x_model`, `restricted`
and `familiarity`) and predictions.csv (one row per clip).
"""

from __future__ import annotations

import csv
import json
import os

from absl import logging

from fser_jax.data import labels as labels_lib
from fser_jax.evaluation import metrics as metrics_lib
from fser_jax.evaluation import plots
from fser_jax.runs import scoring
from fser_jax.errors import DataError
from fser_jax.runs import trained as inference
from fser_jax.runs.trained import TrainedRun

def to_markdown(rep: dict, source: str, problems: list[str]) -> str:
  pct = metrics_lib.pct
  first = metrics_lib.dominant_line(rep.get("degenerate"))
  lines = ([first, ""] if first else []) + [f"Run `{rep['run']}` (checkpoint step {rep['checkpoint_step']}) on "
           f"`{source}`: {rep['n_clips']} clips, {rep['n_mapped']} with a label "
           f"that maps to a class of the run, {rep['n_unmapped']} without. "
           f"Inputs standardised {rep['normalisation']}.", "",
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


def run(config, workdir: str, data: str, output_dir: str, *, label_map=None,
        data_dir: str = "", columns: str = "") -> dict:
  """The trained run in `workdir` scored on the labelled clips of `data`
  (label names mapped to its classes); the report goes to `output_dir`.
  `config` is None: this mode reads the trained run's own config from
  `workdir` (every mode's entry point is `run(config, workdir, ...)`)."""
  if not data:
    raise DataError("--mode evaluate needs --data (a label-folder, a .csv "
                    "manifest or a built TFDS name like fser/emodb)")
  if not output_dir:
    raise DataError("--mode evaluate needs --output_dir (where the report goes)")
  run = inference.load_run(workdir)
  names, wavs, data_labels, meta, problems = scoring.load_labelled(
      data, run, data_dir, columns)
  if problems:
    logging.warning("Skipped %d file(s):\n  %s", len(problems),
                    "\n  ".join(problems))
  resolved = labels_lib.resolve(sorted(set(data_labels)), run.classes,
                                labels_lib.parse_user_map(label_map))
  logging.info("Label map (data label -> run class):\n%s",
               labels_lib.describe(resolved))
  logging.info("Classifying %d clip(s) with %s.", len(wavs), workdir)
  rep, rows = scoring.evaluate(run, wavs, data_labels, meta, label_map=label_map,
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
