"""The linear classifier beside every number: a standardised L2 logistic
regression, its cross-validation and the search of its settings.

A CNN that loses to a logistic regression on a handful of per-clip
statistics (fser_jax/frontend/statistics.py) is not worth its compute, so every
run also fits this baseline on the same training clips and scores it on the
same test clips (`report.json["baseline"]`; `report.md` flags a model below it
in its first lines; the generalisation table has a baseline column per
protocol). Features are standardised with the training clips' mean and std
(or, for the transductive variant, each speaker's own: `speaker_standardise`).
Its two settings, the feature set (`FEATURE_SETS`) and the regularisation C in
`C_GRID`, are chosen by `search` on out-of-fold log loss over folds that hold
out whole speakers when they have speakers (`cv_folds`), never on test clips.
"""

from __future__ import annotations

import numpy as np

from fser_jax.frontend import statistics

FEATURE_SETS = {"full": None, "compact": statistics.COMPACT}
C_GRID = (0.03, 0.1, 0.3, 1.0)
# The settings used where nothing is searched (`fixed`): a moderate L2
# penalty on standardised features, and for the per-clip statistics their
# compact set (level and spread, not percentiles and slopes).
FIXED_C = 0.5
FIXED_FEATURES = "compact"
FUSION_WEIGHTS = (0.5, 1.0, 2.0)  # a probe's embedding weight, by CV

MAX_FOLDS = 5


def logistic(c: float = 1.0, shape=(0, 0)):
  """Standardise, then an L2 logistic regression. With more features than
  clips (`shape` = the training matrix's) the standardised features are
  first rotated onto their principal axes (PCA keeping every component):
  an L2-penalised solution lies in the span of the training rows, so the
  fit is the same model with at most N coefficients per class, ~10x faster
  for a 1152-wide embedding on 250 clips."""
  from sklearn.decomposition import PCA
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  steps = [StandardScaler()]
  if shape[1] > shape[0]:
    steps.append(PCA(svd_solver="full"))
  return make_pipeline(*steps, LogisticRegression(C=c, max_iter=3000))


def log_proba(clf, x, classes) -> np.ndarray:
  """log p [N, len(classes)] (classes a model never saw: ~0)."""
  out = np.full((len(x), len(classes)), np.log(1e-12))
  out[:, np.searchsorted(classes, clf.classes_)] = np.log(
      np.maximum(clf.predict_proba(x), 1e-12))
  return out


def speaker_standardise(x: np.ndarray, groups) -> np.ndarray:
  """x standardised per group (speaker) with that group's own rows: the
  transductive use of a speaker's unlabelled clips. A group of one clip, or
  a feature constant within a group, keeps the spread of all rows."""
  x = np.asarray(x, np.float64)
  groups = np.asarray(groups, object)
  scale = x.std(0) + 1e-8
  out = np.empty_like(x)
  for g in set(groups.tolist()):
    m = groups == g
    mu = x[m].mean(0)
    sd = x[m].std(0) if m.sum() > 1 else scale
    out[m] = (x[m] - mu) / np.where(sd > 1e-8, sd, scale)
  return out.astype(np.float32)


def cv_folds(y, groups=None, max_folds: int = MAX_FOLDS,
             unit: str = "speakers") -> tuple[list, str]:
  """([(train idx, held-out idx)], how): whole speakers held out when
  `groups` names at least two ('' is no speaker; one fold per speaker up to
  `max_folds`), else stratified folds (within the one speaker, when one is
  named: `how` says so); [] when fewer than two folds can be made. A fold
  whose training part holds one class cannot fit a classifier and is
  dropped: its held-out clips get no out-of-fold score, and `how` counts
  the folds that ran."""
  from sklearn.model_selection import (GroupKFold, StratifiedGroupKFold,
                                       StratifiedKFold)
  y = np.asarray(y)
  smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
  g = None if groups is None else np.asarray(groups, object)
  named = [] if g is None else sorted(set(g.tolist()) - {""})
  if len(named) >= 2:
    n_groups = len(set(g.tolist()))
    k = min(max_folds, n_groups)
    # Stratified where every class can fill the folds (scikit-learn's rule).
    split = (StratifiedGroupKFold(k, shuffle=True, random_state=0)
             if smallest >= k else GroupKFold(k)).split(y, y, g)
    how = f"{k}-fold, whole {unit} held out ({n_groups} {unit})"
  else:
    k = min(max_folds, smallest)
    if k < 2:
      return [], "no fold: a class has one clip"
    split = StratifiedKFold(k, shuffle=True, random_state=0).split(y, y)
    how = (f"{k}-fold stratified within the one training {unit[:-1]} "
           f"({named[0]}): no other voice is held out" if named else
           f"{k}-fold stratified (no {unit})")
  split = list(split)
  folds = [(tr, va) for tr, va in split if len(np.unique(y[tr])) >= 2]
  if len(folds) < 2:
    return [], "fewer than two folds"
  if len(folds) < len(split):
    how += (f"; {len(folds)} of {len(split)} folds ran (the others' "
            "training part held one class), so "
            f"{sum(len(va) for _, va in folds)} of {len(y)} clips are scored")
  return folds, how


def covered(folds, n: int) -> np.ndarray:
  """[n] bool: the clips some fold holds out (every clip unless a fold was
  dropped)."""
  m = np.zeros(n, bool)
  for _, va in folds:
    m[va] = True
  return m


def oof_log_proba(x, y, folds, c: float, classes) -> np.ndarray:
  """Out-of-fold log-probabilities [N, K] of a regression with C=c; NaN
  rows for clips no fold held out."""
  out = np.full((len(y), len(classes)), np.nan)
  for tr, va in folds:
    out[va] = log_proba(logistic(c, x[tr].shape).fit(x[tr], y[tr]), x[va],
                        classes)
  return out


def log_loss(logp: np.ndarray, y, classes) -> float:
  """Mean negative log-likelihood over the rows that have scores."""
  keep = ~np.isnan(logp).any(1)
  logp, y = logp[keep], np.asarray(y)[keep]
  z = logp - logp.max(1, keepdims=True)
  z = z - np.log(np.exp(z).sum(1, keepdims=True))
  return float(-z[np.arange(len(y)), np.searchsorted(classes, y)].mean())


def search(x, y, folds, classes, feature_sets=("full",)) -> dict:
  """The regression's hyperparameters chosen by out-of-fold log loss:
  {'columns': feature subset or None, 'set': name, 'C': c, 'oof': [N, K]
  log-probabilities (None without folds)}. Without folds: the full set and
  C=1."""
  if not folds:
    return {"columns": None, "set": feature_sets[0], "C": 1.0, "oof": None,
            "tried": 1}
  best, tried = None, 0
  for name in feature_sets:
    cols = FEATURE_SETS.get(name)
    if cols is not None and cols.max() >= x.shape[1]:
      continue  # not the baseline's statistics: the set does not apply
    xs = x if cols is None else x[:, cols]
    for c in C_GRID:
      oof = oof_log_proba(xs, y, folds, c, classes)
      loss = log_loss(oof, y, classes)
      tried += 1
      if best is None or loss < best[0] - 1e-9:  # ties: the earlier choice
        best = (loss, {"columns": cols, "set": name, "C": c, "oof": oof})
  return {**best[1], "tried": tried}


def fixed(x, y, folds, classes, feature_set: str = "full",
          c: float = FIXED_C) -> dict:
  """The regression at fixed settings, nothing searched (the shape of
  `search`'s result, `tried` 1): what a few dozen clips can afford, since
  choosing C or the feature set on them fits their noise. A feature set
  that does not apply to x (not the baseline's statistics) falls back to
  every column."""
  cols = FEATURE_SETS.get(feature_set)
  if cols is not None and cols.max() >= x.shape[1]:
    cols, feature_set = None, "full"
  xs = x if cols is None else x[:, cols]
  return {"columns": cols, "set": feature_set, "C": c, "tried": 1,
          "oof": oof_log_proba(xs, y, folds, c, classes) if folds else None}


def search_block(blocks, y, folds, classes) -> tuple[int, dict, list[float]]:
  """(the index of the block [N, K, D] `search` fits best, by out-of-fold log
  loss, ties to the earlier; its hyperparameters; every block's loss).
  Without folds: the first block, C=1."""
  losses, best = [], None
  for b in range(blocks.shape[1]):
    h = search(blocks[:, b], y, folds, classes)
    loss = log_loss(h["oof"], y, classes) if h["oof"] is not None else 0.0
    losses.append(loss)
    if best is None or loss < best[0] - 1e-9:
      best = (loss, b, h)
  return best[1], best[2], losses


def fit_log_proba(x_train, y_train, x_test, hyper: dict, classes):
  """log p [N_test, K] of the regression `search` chose, fitted on all the
  training clips."""
  cols = hyper["columns"]
  sel = (lambda a: a) if cols is None else (lambda a: a[:, cols])
  xs = sel(x_train)
  return log_proba(logistic(hyper["C"], xs.shape).fit(xs, y_train),
                    sel(x_test), classes)


def fit_and_score(x_train, y_train, x_test, y_test, num_classes: int,
                  groups_train=None) -> dict | None:
  """The baseline trained on the training clips, its feature set and C
  chosen by `search` (whole speakers held out when `groups_train` has two or
  more), and its summary on the test clips."""
  from fser_jax.evaluation import metrics
  if len(np.unique(y_train)) < 2 or len(y_test) == 0:
    return None
  classes = np.unique(y_train)
  folds, how = cv_folds(y_train, groups_train)
  hyper = search(x_train, y_train, folds, classes, tuple(FEATURE_SETS))
  pred = classes[np.argmax(fit_log_proba(x_train, y_train, x_test, hyper,
                                         classes), 1)]
  s = metrics.summary(y_test, pred, num_classes)
  dims = x_train.shape[1] if hyper["columns"] is None else len(
      hyper["columns"])
  return {"accuracy": s["accuracy"],
          "unweighted_accuracy": s["unweighted_accuracy"],
          "macro_f1": s["macro_f1"], "C": hyper["C"],
          "feature_set": hyper["set"], "chosen_by": how,
          "model": f"logistic regression on {dims} per-clip statistics "
          f"(C={hyper['C']}, chosen by cross-validation: {how}; "
          "fser_jax/evaluation/linear.py)"}
