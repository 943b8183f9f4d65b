"""PNG plots: confusion matrix (Table 3), ROC curves (Figure 6), training
curves, generalisation bars, and an example of the model's input images."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as skm  # noqa: E402


def confusion_matrix(rep: dict, path: str) -> None:
  classes, cm = rep["classes"], np.asarray(rep["confusion_matrix"]) * 100
  fig, ax = plt.subplots(figsize=(1 + 0.8 * len(classes), 0.8 * len(classes)))
  im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=100)
  ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
  ax.set_yticks(range(len(classes)), classes)
  ax.set_xlabel("predicted")
  ax.set_ylabel("expected")
  for i in range(len(classes)):
    for j in range(len(classes)):
      ax.text(j, i, f"{cm[i, j]:.0f}", ha="center", va="center", fontsize=8,
              color="white" if cm[i, j] > 60 else "black")
  fig.colorbar(im, ax=ax, label="% of the row")
  ax.set_title(f"Normalised confusion matrix (acc {rep['accuracy']:.1%})")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def roc_curves(y_true: np.ndarray, probs: np.ndarray, classes, path: str) -> None:
  fig, ax = plt.subplots(figsize=(6, 5))
  for c, name in enumerate(classes):
    pos = y_true == c
    if pos.all() or not pos.any():
      continue
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
  """One model input per class, as the network sees it."""
  cols = len(classes)
  fig, axes = plt.subplots(1, cols, figsize=(1.6 * cols, 2))
  for c, ax in enumerate(np.atleast_1d(axes)):
    idx = np.flatnonzero(labels == c)
    ax.axis("off")
    if idx.size:
      img = images[idx[0]]
      if img.shape[-1] == 1:
        ax.imshow(img[..., 0], cmap="magma")
      else:
        ax.imshow(np.clip(img, 0, 1))
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


def ensure_dir(workdir: str) -> str:
  d = os.path.join(workdir, "plots")
  os.makedirs(d, exist_ok=True)
  return d
