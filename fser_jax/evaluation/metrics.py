"""Stage 7: the paper's tables from predictions.

Table 2 (classification report with per-class ROC-AUC), Table 3 (row-normalised
confusion matrix), plus what SER benchmarks report beside accuracy (WA):
unweighted accuracy (UA, mean per-class recall), macro and weighted F1, and the
breakdowns by corpus/language and gender that test the paper's claim that FSER
"stays reliable, independently of the language, sex identity".
Computed with scikit-learn; every value is a fraction in [0, 1].
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

# The paper's figures (Tables 2 and 3), to print beside ours.
PAPER = {
    "accuracy": 0.95, "macro_f1": 0.95, "weighted_f1": 0.95,
    "macro_auc": 0.9979, "n_test": 609,
    "per_class": {  # precision, recall, f1, support, auc
        "anger": (0.96, 0.96, 0.96, 91, 0.9984),
        "anxiety": (0.94, 0.97, 0.95, 80, 0.9985),
        "calm": (0.93, 0.97, 0.95, 54, 0.9992),
        "disgust": (0.97, 0.92, 0.94, 77, 0.9972),
        "happiness": (0.95, 0.93, 0.94, 83, 0.9975),
        "neutral": (0.94, 0.94, 0.94, 77, 0.9974),
        "sadness": (0.95, 0.94, 0.94, 78, 0.9976),
        "surprise": (0.94, 0.95, 0.94, 69, 0.9982),
    },
}


def summary(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
  """Accuracy, UA and F1s of a subset (classes absent from it are ignored)."""
  labels = np.unique(y_true)
  return {
      "n": int(y_true.size),
      "accuracy": float(np.mean(y_true == y_pred)) if y_true.size else 0.0,
      "unweighted_accuracy": float(skm.recall_score(
          y_true, y_pred, labels=labels, average="macro", zero_division=0)),
      "macro_f1": float(skm.f1_score(y_true, y_pred, labels=labels,
                                     average="macro", zero_division=0)),
  }


def auc_defined(y_true: np.ndarray, c: int) -> bool:
  """One-vs-rest ROC-AUC of class c needs both positives and negatives."""
  pos = y_true == c
  return bool(pos.any() and not pos.all())


def _auc(y_true: np.ndarray, probs: np.ndarray, c: int) -> float | None:
  pos = y_true == c
  if not auc_defined(y_true, c):
    return None  # undefined with one class only
  return float(skm.roc_auc_score(pos, probs[:, c]))


def report(y_true: np.ndarray, probs: np.ndarray, classes,
           meta: dict[str, np.ndarray] | None = None) -> dict:
  """The report.json dict of a test set.

  Args:
    y_true: [N] int labels.
    probs: [N, C] class probabilities.
    classes: C class names.
    meta: optional per-clip arrays; 'corpus' and 'gender' give breakdowns.
  """
  classes = list(classes)
  k = len(classes)
  y_pred = probs.argmax(-1)
  ids = np.arange(k)
  p, r, f, s = skm.precision_recall_fscore_support(
      y_true, y_pred, labels=ids, zero_division=0)
  cm = skm.confusion_matrix(y_true, y_pred, labels=ids).astype(np.float64)
  cm_norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
  per_class = {}
  for c, name in enumerate(classes):
    per_class[name] = {"precision": float(p[c]), "recall": float(r[c]),
                       "f1": float(f[c]), "support": int(s[c]),
                       "auc": _auc(y_true, probs, c)}
  present = s > 0
  aucs = [v["auc"] for v in per_class.values() if v["auc"] is not None]
  out = {
      "classes": classes,
      "n_test": int(y_true.size),
      "accuracy": float(np.mean(y_pred == y_true)),
      "unweighted_accuracy": float(np.mean(r[present])) if present.any() else 0.0,
      "macro_f1": float(np.mean(f[present])) if present.any() else 0.0,
      "weighted_f1": float(np.sum(f * s) / max(s.sum(), 1)),
      "macro_auc": float(np.mean(aucs)) if aucs else None,
      "per_class": per_class,
      "confusion_matrix": cm_norm.tolist(),
      "confusion_counts": cm.astype(int).tolist(),
  }
  for key, field in (("by_corpus", "corpus"), ("by_language", "language"),
                     ("by_gender", "gender")):
    if meta is not None and field in meta:
      values = np.asarray(meta[field])
      groups = sorted(set(values.tolist()) - {""})
      if groups:
        out[key] = {g: summary(y_true[values == g], y_pred[values == g], k)
                    for g in groups}
  return out


DOMINANT_SHARE = 0.8  # one class taking more of the predictions: degenerate


def dominant_class(pred: np.ndarray, classes) -> dict | None:
  """{'class', 'share'} when one class takes more than DOMINANT_SHARE of the
  predictions `pred` (class indices), else None: a run that calls almost
  every clip one thing is not usable on that data as it is."""
  pred = np.asarray(pred)
  if pred.size == 0:
    return None
  counts = np.bincount(pred, minlength=len(classes))
  top = int(counts.argmax())
  share = float(counts[top] / pred.size)
  return ({"class": str(classes[top]), "share": share, "n": int(pred.size)}
          if share > DOMINANT_SHARE else None)


def dominant_line(d: dict | None) -> str | None:
  """The report's first line for a degenerate run (`dominant_class`'s
  dict: the share of the `n` clips it scored), or None."""
  if d is None:
    return None
  return (f"**Not usable on this data as it is**: {100 * d['share']:.0f}% of "
          f"the {d['n']} scored clips are called '{d['class']}'. Label a "
          "few clips per class and run `--mode learning_curve` (it chooses, "
          "without your test speaker, between the baseline, a linear probe "
          "on this run's embedding and their per-speaker forms).")


def pct(x, digits: int = 2) -> str:
  """A fraction as a percentage for a table ('-' for None)."""
  return "-" if x is None else f"{100 * x:.{digits}f}"


def to_markdown(rep: dict, *, title: str = "FSER test report",
                paper: bool = False, extra: str = "") -> str:
  """Tables 2 and 3 of the paper, for our run (and the paper's beside them)."""
  classes = rep["classes"]
  lines = [f"# {title}", ""]
  if extra:
    lines += [extra, ""]
  lines += [
      f"Test clips: {rep['n_test']}. Accuracy (WA) {pct(rep['accuracy'])}%, "
      f"unweighted accuracy (UA) {pct(rep['unweighted_accuracy'])}%, macro-F1 "
      f"{pct(rep['macro_f1'])}%, weighted-F1 {pct(rep['weighted_f1'])}%, "
      f"macro ROC-AUC {pct(rep['macro_auc'])}%.", "",
      "## Classification report (paper Table 2)", "",
      "| class | precision | recall | F1 | support | AUC |"
      + (" paper P / R / F1 / AUC |" if paper else ""),
      "|---|---|---|---|---|---|" + ("---|" if paper else "")]
  for name in classes:
    v = rep["per_class"][name]
    row = (f"| {name} | {pct(v['precision'])} | {pct(v['recall'])} | "
           f"{pct(v['f1'])} | {v['support']} | {pct(v['auc'])} |")
    if paper and name in PAPER["per_class"]:
      q = PAPER["per_class"][name]
      row += f" {q[0]*100:.0f} / {q[1]*100:.0f} / {q[2]*100:.0f} / {q[4]*100:.2f} |"
    elif paper:
      row += " |"
    lines.append(row)
  lines += ["", "## Row-normalised confusion matrix, % (paper Table 3)", "",
            "| expected \\ predicted | " + " | ".join(classes) + " |",
            "|---|" + "---|" * len(classes)]
  for name, row in zip(classes, rep["confusion_matrix"]):
    lines.append(f"| {name} | " + " | ".join(f"{100 * x:.1f}" for x in row)
                 + " |")
  for key, label in (("by_corpus", "corpus"), ("by_language", "language"),
                     ("by_gender", "gender")):
    if rep.get(key):
      lines += ["", f"## By {label}", "",
                f"| {label} | clips | WA | UA | macro-F1 |", "|---|---|---|---|---|"]
      for g, v in rep[key].items():
        lines.append(f"| {g} | {v['n']} | {pct(v['accuracy'])} | "
                     f"{pct(v['unweighted_accuracy'])} | {pct(v['macro_f1'])} |")
  if paper:
    lines += ["", f"Paper (random split, {PAPER['n_test']} clips): accuracy "
              f"95%, macro-F1 95%, macro AUC 99.79%."]
  return "\n".join(lines) + "\n"
