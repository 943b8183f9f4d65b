"""PNG plots: confusion matrix (Table 3), ROC curves (Figure 6), training
curves, generalisation bars, and an example of the model's input images."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from fser_jax.evaluation import metrics  # noqa: E402


def _matrix(rows, cols, pct, text, path, *, title, xlabel, ylabel,
            cbar_label: str = "% of the row") -> None:
  """Row-% colours with `text[i, j]` written in each cell."""
  fig, ax = plt.subplots(figsize=(1.5 + 0.8 * len(cols), 1 + 0.7 * len(rows)))
  im = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
  ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
  ax.set_yticks(range(len(rows)), rows)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  for i in range(len(rows)):
    for j in range(len(cols)):
      ax.text(j, i, text[i][j], ha="center", va="center", fontsize=8,
              color="white" if pct[i, j] > 60 else "black")
  fig.colorbar(im, ax=ax, label=cbar_label)
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def confusion_matrix(rep: dict, path: str) -> None:
  """The paper's Table 3 as a picture: row-normalised %."""
  classes, cm = rep["classes"], np.asarray(rep["confusion_matrix"]) * 100
  _matrix(classes, classes, cm, [[f"{v:.0f}" for v in r] for r in cm], path,
          title=f"Normalised confusion matrix (acc {rep['accuracy']:.1%})",
          xlabel="predicted", ylabel="expected")


def confusion_counts(rows, cols, counts, path: str, *, title: str = "") -> None:
  """A rectangular confusion matrix (e.g. a dataset's labels x a run's
  classes): colours by % of the row, counts written in."""
  counts = np.asarray(counts, float)
  pct = 100 * counts / np.maximum(counts.sum(1, keepdims=True), 1)
  _matrix(rows, cols, pct, [[f"{v:.0f}" for v in r] for r in counts], path,
          title=title, xlabel="predicted (run class)", ylabel="data label")


def roc_curves(y_true: np.ndarray, probs: np.ndarray, classes, path: str) -> None:
  fig, ax = plt.subplots(figsize=(6, 5))
  for c, name in enumerate(classes):
    if not metrics.auc_defined(y_true, c):
      continue
    pos = y_true == c
    fpr, tpr, _ = skm.roc_curve(pos, probs[:, c])
    ax.plot(fpr, tpr, label=f"{name} (AUC {skm.auc(fpr, tpr):.3f})")
  ax.plot([0, 1], [0, 1], "k--", lw=0.8)
  ax.set_xlabel("false positive rate")
  ax.set_ylabel("true positive rate")
  ax.set_title("ROC, one class vs rest")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def training_curves(history: list[dict], path: str) -> None:
  train = [h for h in history if "train_loss" in h]
  val = [h for h in history if "val_accuracy" in h]
  fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
  if train:
    a1.plot([h["epoch"] for h in train], [h["train_loss"] for h in train],
            label="train")
    a2.plot([h["epoch"] for h in train], [h["train_accuracy"] for h in train],
            label="train (augmented, dropout)")
  if val:
    a1.plot([h["epoch"] for h in val], [h["val_loss"] for h in val],
            label="validation")
    a2.plot([h["epoch"] for h in val], [h["val_accuracy"] for h in val],
            label="validation")
  a1.set_xlabel("epoch")
  a1.set_ylabel("cross-entropy")
  a2.set_xlabel("epoch")
  a2.set_ylabel("accuracy")
  a1.legend()
  a2.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def example_images(images: np.ndarray, labels: np.ndarray, classes,
                   path: str) -> None:
  """One model input per class, as the network sees it (an RGB picture as
  it is; any other image by its first channel)."""
  cols = len(classes)
  fig, axes = plt.subplots(1, cols, figsize=(1.6 * cols, 2))
  for c, ax in enumerate(np.atleast_1d(axes)):
    idx = np.flatnonzero(labels == c)
    ax.axis("off")
    if idx.size:
      img = images[idx[0]]
      if img.shape[-1] == 3:
        ax.imshow(np.clip(img, 0, 1))
      else:
        ax.imshow(img[..., 0], cmap="magma")
    ax.set_title(classes[c], fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def generalisation_bars(summary: dict, path: str) -> None:
  """Mean +- std of WA / UA / macro-F1 per protocol."""
  protocols = list(summary)
  keys = [("accuracy", "WA"), ("unweighted_accuracy", "UA"),
          ("macro_f1", "macro-F1")]
  x = np.arange(len(protocols))
  fig, ax = plt.subplots(figsize=(2 + 1.8 * len(protocols), 4))
  for i, (k, label) in enumerate(keys):
    means = [summary[p][k]["mean"] for p in protocols]
    stds = [summary[p][k]["std"] for p in protocols]
    ax.bar(x + (i - 1) * 0.27, means, 0.27, yerr=stds, capsize=3, label=label)
  ax.set_xticks(x, protocols)
  ax.set_ylim(0, 1)
  ax.set_ylabel("fraction")
  ax.set_title("Same model, three protocols: does it generalise?")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def learning_curve(out: dict, path: str) -> None:
  """UA against labelled clips per class (log x): mean and spread per arm
  (dashed: standardised per speaker), the arm chosen without the test set
  as a thick line, zero-shot as a horizontal line."""
  fig, ax = plt.subplots(figsize=(7, 4.8))
  n_classes = len(out["classes"])
  styles = {"baseline": "k^-", "baseline_speaker": "k^--",
            "egemaps": "C5v-", "egemaps_speaker": "C5v--",
            "probe_embedding": "C2d-", "probe_embedding_speaker": "C2d--",
            "probe": "C0D-", "probe_speaker": "C0D--", "scratch": "C3o:",
            "finetune": "C1s:", "encoder": "C6p-", "encoder_speaker": "C6p--",
            "encoder+baseline": "C7h-", "encoder+baseline_speaker": "C7h--"}
  for arm, style in styles.items():
    rows = [r for r in out["arms"].get(arm) or [] if r["ua_mean"] is not None]
    if not rows:
      continue
    x = np.array([r["n_train"] / n_classes for r in rows])
    m = np.array([r["ua_mean"] for r in rows])
    s = np.array([r["ua_std"] for r in rows])
    line, = ax.plot(x, m, style, label=arm, lw=1, ms=4)
    ax.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.08)
  choice = out.get("choice") or []
  base = {r["shots"]: r["n_train"] for r in out["arms"].get("baseline") or []}
  if choice:
    x = np.array([base[c["shots"]] / n_classes for c in choice])
    ax.plot(x, [c["test_ua"] for c in choice], "-", color="C4", lw=3,
            alpha=0.6, label="chosen without the test set")
  z = out["arms"].get("zero_shot")
  if z:
    ax.axhline(z["ua"], color="gray", ls="--",
               label=f"zero-shot ({len(z['mapped_classes'])} mapped classes)")
  ax.axhline(1 / n_classes, color="k", lw=0.6, ls=":", label="chance")
  ax.set_xscale("log")
  ticks = sorted({n / n_classes for n in base.values()})
  ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
  ax.minorticks_off()
  ax.set_xlabel("labelled training clips per class (log)")
  ax.set_ylabel("unweighted accuracy (test)")
  ax.set_ylim(0, 1)
  ax.set_title(f"How many clips to label? ({out['test_clips']} test clips)")
  ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def reliability(before: dict, after: dict, path: str) -> None:
  """Reliability diagram: accuracy per confidence bin, before and after
  temperature scaling (fser_jax/evaluation/calibration.py)."""
  fig, ax = plt.subplots(figsize=(5.5, 5))
  edges = np.asarray(before["edges"])
  centres = (edges[:-1] + edges[1:]) / 2
  w = (edges[1] - edges[0]) * 0.45
  for off, rel, name in ((-w / 2, before, "before"), (w / 2, after,
                                                      "after (temperature)")):
    acc = np.array([np.nan if a is None else a for a in rel["accuracy"]])
    ax.bar(centres + off, np.nan_to_num(acc), w, label=name, alpha=0.8)
  ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
  ax.set_xlabel("confidence (max probability)")
  ax.set_ylabel("accuracy in the bin")
  ax.set_title("Reliability diagram (test split)")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def risk_coverage(scores: dict, correct: np.ndarray, path: str) -> None:
  """Accuracy of the kept clips against the share kept, one line a score."""
  from fser_jax.evaluation import calibration
  fig, ax = plt.subplots(figsize=(6, 4.5))
  for name, s in scores.items():
    cov, acc = calibration.risk_coverage(s, correct)
    ax.plot(cov, acc, label=f"{name} (AURC {calibration.aurc(s, correct):.3f})")
  ax.set_xlabel("coverage (share of clips kept)")
  ax.set_ylabel("accuracy of the kept clips")
  ax.set_xlim(0, 1)
  ax.set_title("Selective prediction (test split)")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def cross_heatmap(cross: dict, path: str) -> None:
  """The cross-corpus UA matrix (rows trained on, columns tested on)."""
  names = cross["corpora"]
  ua = np.array([[np.nan if v is None else 100 * v for v in r]
                 for r in cross["ua"]])
  text = [["-" if np.isnan(v) else f"{v:.0f}" for v in r] for r in ua]
  _matrix(names, names, np.nan_to_num(ua), text, path,
          title="Cross-corpus UA % (diagonal: unseen speakers)",
          xlabel="tested on", ylabel="trained on", cbar_label="UA %")


def ensure_dir(workdir: str) -> str:
  d = os.path.join(workdir, "plots")
  os.makedirs(d, exist_ok=True)
  return d
