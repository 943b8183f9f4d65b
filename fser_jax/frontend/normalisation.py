"""How a run's inputs are standardised, one affine map per channel: with the
training split's statistics (features.normalize='global'), or each
speaker's (corpus') own, computed from that group's clips alone, never
their labels ('speaker' / 'corpus'). Training (input_pipeline), every
trained run (inference) and the encoder heads use these.
"""

from __future__ import annotations

import numpy as np


NORMALIZE = ("global", "speaker", "corpus")


def normalize_mode(features_cfg) -> str:
  return features_cfg.normalize


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
  """Per-channel (mean, std) of images [N, H, W, C] (float64 sums)."""
  flat = images.reshape(-1, images.shape[-1])
  return (flat.mean(0, dtype=np.float64).tolist(),
          (flat.std(0, dtype=np.float64) + 1e-6).tolist())


def norm_groups(meta: dict, mode: str) -> np.ndarray:
  """Each clip's normalisation group: its speaker (clips without one: their
  corpus) or its corpus."""
  corpus = np.asarray(meta["corpus"], object)
  if mode == "corpus":
    return np.array([f"corpus:{c}" for c in corpus], object)
  return np.array([f"speaker:{s}" if s else f"corpus:{c}"
                   for s, c in zip(meta["speaker"], corpus)], object)


def group_norms(images: np.ndarray, groups, stats=channel_stats
                ) -> np.ndarray:
  """[N, 2, C]: each clip's group's per-channel (mean, std), computed from
  that group's images alone (`stats(images[group])`; streamed: the group's
  per-clip sums, stream.stats_from_sums)."""
  groups = np.asarray(groups, object)
  out = np.zeros((len(groups), 2, images.shape[-1]), np.float32)
  for g in sorted(set(groups.tolist())):
    m = groups == g
    out[m] = np.asarray(stats(images[m]), np.float32)
  return out


def standardise_clips(images: np.ndarray, clip_norm: np.ndarray) -> np.ndarray:
  """(image - mean) / std per clip and channel, clip_norm [N, 2, C]
  (images [N, ..., C]: images, or feature vectors [N, C])."""
  c = clip_norm.reshape(clip_norm.shape[:2] + (1,) * (images.ndim - 2)
                        + clip_norm.shape[-1:])
  return ((images - c[:, 0]) / c[:, 1]).astype(np.float32)


def standardise(images: np.ndarray, norm) -> np.ndarray:
  """(images - mean) / std per channel: the one map training and predict use."""
  return ((images - np.asarray(norm[0], np.float32))
          / np.asarray(norm[1], np.float32))


def uses_standardisation(features_cfg) -> bool:
  """Whether images are standardised (configs saved before the key: logmel;
  normalize 'speaker' / 'corpus' always standardise)."""
  return (normalize_mode(features_cfg) != "global"
          or bool(features_cfg.standardize))
