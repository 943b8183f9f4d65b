"""Clips of any length through an encoder with a window: consecutive
windows, and each clip's per-layer mean and std over all its windows'
positions together."""

from __future__ import annotations

import numpy as np


def windows(wavs, window: int, min_last: int):
  """(owners, pieces): each clip cut into consecutive `window`-sample
  pieces; a last piece under `min_last` samples is left out (a clip
  shorter than that is kept whole)."""
  owners, pieces = [], []
  for i, w in enumerate(wavs):
    for s in range(0, max(1, len(w)), window):
      if s and len(w) - s < min_last:
        break
      owners.append(i)
      pieces.append(w[s:s + window])
  return np.asarray(owners, int), pieces


def combine(per: np.ndarray, counts, owners, n: int) -> np.ndarray:
  """[n, layers, 2 d] from the pieces' [P, layers, 2 d] means and stds
  over `counts` positions each: the mean and std of the owner's positions
  pooled together."""
  d = per.shape[-1] // 2
  counts = np.asarray(counts, np.float64)
  out = np.zeros((n,) + per.shape[1:], np.float32)
  for i in range(n):
    k = owners == i
    wts = counts[k] / counts[k].sum()
    mean = np.einsum("w,wld->ld", wts, per[k, :, :d])
    second = np.einsum("w,wld->ld", wts,
                       per[k, :, d:] ** 2 + per[k, :, :d] ** 2)
    out[i] = np.concatenate(
        [mean, np.sqrt(np.maximum(second - mean ** 2, 0))], axis=1)
  return out
