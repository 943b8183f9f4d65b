"""A trained run's report on labelled clips, whatever their label names.

`evaluate(run, waveforms, labels)` scores clips through
fser_jax.runs.trained.TrainedRun.classify (the run's own front-end,
normalisation and windowing) after mapping the data's labels onto the run's
classes (fser_jax.data.labels). Used by --mode evaluate, robustness,
generalisation's cross-corpus matrix and the learning curve's zero-shot arm.
"""

from __future__ import annotations

import collections
import os

import ml_collections
import numpy as np

from fser_jax.evaluation import familiarity
from fser_jax.runs import trained as inference
from fser_jax.data import dataset_io
from fser_jax.data import labels as labels_lib
from fser_jax.evaluation import metrics as metrics_lib
from fser_jax.datasets import files as files_lib
from fser_jax.errors import DataError
from fser_jax.runs.trained import TrainedRun

META = ("speaker", "gender", "corpus", "language")


def load_labelled(source: str, run: TrainedRun, data_dir: str = "",
                  columns: str = ""):
  """(filenames, waveforms, data labels, meta, problems) of SOURCE at RUN's
  sample rate (`columns`: a manifest's column map, files.parse_columns).
  Unreadable files are listed in `problems`, not fatal."""
  path = os.path.expanduser(source)
  if os.path.isdir(path) or path.lower().endswith(".csv"):
    if not os.path.exists(path):
      raise DataError(f"--data {source}: no such folder or manifest")
    entries, problems = files_lib.scan_own(path, columns)
    names, wavs, labels = [], [], []
    meta = {k: [] for k in META}
    for e, (_, w) in zip(entries, inference.load_many(
        run, [e["abspath"] for e in entries])):
      if w is inference.LONG:
        problems.append(f"{e['filename']}: longer than "
                        f"{inference.STREAM_SECONDS:.0f} s; cut it into clips")
        continue
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
    wavs, y, classes, meta = dataset_io.load_clips(cfg)
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
    label_map: a user map (fser_jax.data.labels.parse_user_map) or None.
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
      "degenerate": metrics_lib.dominant_class(y_pred[mapped], run.classes),
      "normalisation": normalisation_rule(run.normalize),
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


def normalisation_rule(normalize: str) -> str:
  """How a run's inputs are standardised when it scores new clips, in the
  learning curve's terms."""
  if normalize == "global":
    return ("inductive: the run's training statistics (as the curve's "
            "arms without _speaker)")
  return (f"transductive: each {normalize}'s clips with that {normalize}'s "
          "own statistics, labels unused (as the curve's _speaker arms)")


def selective_at_val80(run, probs, distance, correct) -> dict:
  """Accuracy of the clips kept by thresholds that kept 80% of the run's
  validation clips (fser_jax/evaluation/calibration.py), per score."""
  from fser_jax.evaluation import calibration
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
