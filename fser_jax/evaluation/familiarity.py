"""Does an input look like the data the model was trained on?

A classifier gives confident probabilities on anything, recordings unlike its
training corpora included. Every run therefore fits, on its training clips, a
Mahalanobis distance in the model's last hidden layer (Lee et al., 2018,
"A Simple Unified Framework for Detecting Out-of-Distribution Samples": class
means, one shared covariance, here with scikit-learn's Ledoit-Wolf shrinkage)
and sets a threshold at the 99th percentile of the validation clips'
distances: clips of held-out speakers of the same corpora. An input above it
is `unfamiliar`: its prediction deserves less trust. The report gives the
share of test clips above the threshold (under the `corpus` protocol: how much
of an unseen language the model would flag), and `--mode predict` gives each
file's distance and flag.
"""

from __future__ import annotations

import numpy as np

QUANTILE = 0.99
FILENAME = "familiarity.npz"


def fit(train_emb: np.ndarray, train_labels: np.ndarray,
        val_emb: np.ndarray, quantile: float = QUANTILE,
        val_bounds: np.ndarray | None = None) -> dict:
  """Class means and shared precision from training embeddings [N, D]; the
  threshold from the validation embeddings (the training ones if none).

  Args:
    val_bounds: [N + 1] when `val_emb` holds windows: clip i's windows are
      rows val_bounds[i]:val_bounds[i + 1], and a clip's distance is its
      windows' mean (as fser_jax.runs.trained gives it).
  """
  from sklearn.covariance import LedoitWolf
  train_emb = np.asarray(train_emb, np.float64)
  present = np.unique(train_labels)
  means = np.stack([train_emb[train_labels == k].mean(0) for k in present])
  centred = train_emb - means[np.searchsorted(present, train_labels)]
  precision = LedoitWolf(assume_centered=True).fit(centred).precision_
  fam = {"means": means, "precision": precision}
  if len(val_emb):
    d = distance(fam, val_emb)
    if val_bounds is not None:
      d = np.array([d[a:b].mean() for a, b in zip(val_bounds[:-1],
                                                 val_bounds[1:])])
  else:
    d = distance(fam, train_emb)
  fam["threshold"] = float(np.quantile(d, quantile))
  fam["quantile"] = float(quantile)
  return fam


def distance(fam: dict, emb: np.ndarray) -> np.ndarray:
  """[N] Mahalanobis distance to the nearest class mean."""
  diff = np.asarray(emb, np.float64)[:, None, :] - fam["means"][None]
  sq = np.einsum("nkd,de,nke->nk", diff, fam["precision"], diff)
  return np.sqrt(np.maximum(sq.min(1), 0.0))


def summary(fam: dict, d_test: np.ndarray,
            correct: np.ndarray | None = None) -> dict:
  """The test set's share above the threshold and, given which test clips the
  model got right, its accuracy on the familiar and the unfamiliar ones."""
  unf = d_test > fam["threshold"]
  out = {"threshold": fam["threshold"], "quantile": fam["quantile"],
         "test_median_distance": float(np.median(d_test)),
         "test_unfamiliar_fraction": float(np.mean(unf)),
         "n_familiar": int(np.sum(~unf)), "n_unfamiliar": int(np.sum(unf))}
  if correct is not None:
    acc = lambda m: float(np.mean(correct[m])) if np.any(m) else None
    out["accuracy_familiar"] = acc(~unf)
    out["accuracy_unfamiliar"] = acc(unf)
  return out


def save(path: str, fam: dict) -> None:
  np.savez(path, **{k: np.asarray(v) for k, v in fam.items()})


def load(path: str) -> dict:
  with np.load(path) as z:
    fam = {k: z[k] for k in z.files}
  fam["threshold"] = float(fam["threshold"])
  fam["quantile"] = float(fam["quantile"])
  return fam
