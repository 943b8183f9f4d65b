"""Know when to trust a prediction: calibration and selective prediction.

Calibration (every run's report):
- temperature scaling (Guo et al., 2017): one scalar T dividing the logits,
  fitted after training by minimising the validation split's negative
  log-likelihood (a bounded 1-D search over log T, scipy's
  `minimize_scalar`). It never changes the argmax, so accuracy is identical;
  predict and evaluate use it.
- expected calibration error over 15 equal-width confidence bins (the usual
  reliability diagram's bins), the multiclass Brier score, and the NLL.

Selective prediction: for a confidence score (higher = more trusted), sort
the clips, keep the top share, and measure the kept clips' accuracy. The
risk-coverage curve's area (AURC: the mean selective risk over every
coverage, lower is better; Geifman & El-Yaniv) and the accuracy at 80% and
50% coverage summarise it. Scores:
  confidence   max calibrated probability;
  entropy      minus the entropy of the calibrated probabilities;
  familiarity  minus the fser_jax.evaluation.familiarity distance;
  combined     the mean of confidence's and familiarity's ranks among the
               validation clips (each an empirical CDF of validation scores,
               so neither scale dominates).
Thresholds a user can pick ("keep 80% of clips") are fixed on the
validation split, never on the test split; reports show what they give on
test.
"""

from __future__ import annotations

import json
import os

import numpy as np

FILENAME = "calibration.json"
BINS = 15
SCORES = ("confidence", "entropy", "familiarity", "combined")


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
  z = np.asarray(logits, np.float64) / temperature
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def clip_probs(logits: np.ndarray, temperature: float = 1.0,
               bounds: np.ndarray | None = None) -> np.ndarray:
  """softmax(logits / T) per row; with `bounds` ([N + 1]: clip i's windows
  are rows bounds[i]:bounds[i + 1]), each clip's windows' mean, as
  fser_jax.runs.trained aggregates a clip longer than its window."""
  p = softmax(logits, temperature)
  if bounds is None:
    return p
  if len(bounds) < 2:
    return np.zeros((0, p.shape[-1]))
  return np.stack([p[a:b].mean(0) for a, b in zip(bounds[:-1], bounds[1:])])


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
  p = probs[np.arange(labels.size), labels]
  return float(-np.mean(np.log(np.maximum(p, 1e-12))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray,
                    bounds: np.ndarray | None = None) -> float:
  """T minimising the NLL of softmax(logits / T) over [0.05, 20] (of each
  clip's windows' mean with `bounds`, see clip_probs)."""
  from scipy.optimize import minimize_scalar
  if labels.size == 0:
    return 1.0
  res = minimize_scalar(lambda lt: nll(clip_probs(logits, np.exp(lt), bounds),
                                       labels),
                        bounds=(np.log(0.05), np.log(20.0)), method="bounded",
                        options={"xatol": 1e-4})
  return float(np.exp(res.x))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
  """Expected calibration error over equal-width confidence bins."""
  conf = probs.max(1)
  right = probs.argmax(1) == labels
  edges = np.linspace(0.0, 1.0, bins + 1)
  which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
  total = 0.0
  for b in range(bins):
    m = which == b
    if m.any():
      total += m.mean() * abs(right[m].mean() - conf[m].mean())
  return float(total)


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
  onehot = np.eye(probs.shape[1])[labels]
  return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def reliability(probs, labels, bins: int = BINS) -> dict:
  """Per-bin mean confidence, accuracy and count (the diagram's bars)."""
  conf = probs.max(1)
  right = probs.argmax(1) == labels
  edges = np.linspace(0.0, 1.0, bins + 1)
  which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
  out = {"edges": edges.tolist(), "confidence": [], "accuracy": [], "count": []}
  for b in range(bins):
    m = which == b
    out["count"].append(int(m.sum()))
    out["confidence"].append(float(conf[m].mean()) if m.any() else None)
    out["accuracy"].append(float(right[m].mean()) if m.any() else None)
  return out


# --- selective prediction ------------------------------------------------------
def risk_coverage(scores: np.ndarray, correct: np.ndarray):
  """(coverage [N], accuracy of the kept clips [N]) keeping the top-k by
  score for k = 1..N (ties broken by order, stable)."""
  order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
  kept = np.cumsum(np.asarray(correct, np.float64)[order])
  k = np.arange(1, order.size + 1)
  return k / order.size, kept / k


def aurc(scores, correct) -> float:
  """Area under the risk-coverage curve: mean selective risk over k."""
  if len(correct) == 0:
    return float("nan")
  _, acc = risk_coverage(scores, correct)
  return float(np.mean(1.0 - acc))


def acc_at(scores, correct, coverage: float) -> float:
  """Accuracy of the top `coverage` share of clips by score."""
  n = len(correct)
  if n == 0:
    return float("nan")
  k = max(1, int(round(coverage * n)))
  order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
  return float(np.mean(np.asarray(correct)[order[:k]]))


def entropy(probs: np.ndarray) -> np.ndarray:
  return -np.sum(probs * np.log(np.maximum(probs, 1e-12)), axis=1)


def _cdf(reference: np.ndarray, x: np.ndarray) -> np.ndarray:
  ref = np.sort(np.asarray(reference, np.float64))
  if ref.size == 0:
    return np.full(np.shape(x), 0.5)
  return np.searchsorted(ref, x, side="right") / ref.size


def scores(probs: np.ndarray, distance: np.ndarray | None,
           cal: dict | None = None) -> dict:
  """Every confidence score (higher = more trusted) of clips, from their
  calibrated probabilities and familiarity distances. `combined` needs the
  validation references in `cal`."""
  out = {"confidence": probs.max(1), "entropy": -entropy(probs)}
  if distance is not None:
    out["familiarity"] = -np.asarray(distance, np.float64)
    if (cal is not None and cal.get("val_confidence")
        and cal.get("val_distance") is not None):
      out["combined"] = 0.5 * (
          _cdf(cal["val_confidence"], out["confidence"])
          + _cdf(-np.asarray(cal["val_distance"]), out["familiarity"]))
  return out


def validation_scores(cal: dict) -> dict:
  """The saved validation clips' confidence, familiarity and combined
  scores (entropy needs their full probabilities, which are not saved)."""
  conf = np.asarray(cal.get("val_confidence") or [], np.float64)
  out = {"confidence": conf}
  if cal.get("val_distance") is not None and conf.size:
    fam = -np.asarray(cal["val_distance"], np.float64)
    out["familiarity"] = fam
    out["combined"] = 0.5 * (_cdf(conf, conf) + _cdf(fam, fam))
  return out


def threshold_for(val_scores: np.ndarray, coverage: float) -> float:
  """The score that keeps `coverage` of the validation clips."""
  if len(val_scores) == 0:
    return float("-inf")
  return float(np.quantile(np.asarray(val_scores, np.float64), 1 - coverage))


def fit(val_logits, val_labels, val_distance=None, bounds=None) -> dict:
  """Temperature and the validation references selective thresholds need
  (`val_logits` of windows grouped by `bounds`, see clip_probs)."""
  t = fit_temperature(val_logits, val_labels, bounds)
  probs = clip_probs(val_logits, t, bounds)
  return {"temperature": t,
          "val_confidence": probs.max(1).tolist(),
          "val_distance": (None if val_distance is None
                           else np.asarray(val_distance).tolist()),
          "n_validation": int(np.asarray(val_labels).size)}


def summarise(cal: dict, test_logits, test_labels, test_distance=None,
              val_logits=None, val_distance=None, *, test_bounds=None,
              val_bounds=None) -> tuple[dict, dict]:
  """(report['calibration'], report['selective']) on the test split
  (logits of windows grouped by `*_bounds`, see clip_probs)."""
  t = cal["temperature"]
  before = clip_probs(test_logits, 1.0, test_bounds)
  after = clip_probs(test_logits, t, test_bounds)
  calib = {"temperature": t, "bins": BINS, "binning": "equal-width",
           "ece_before": ece(before, test_labels),
           "ece_after": ece(after, test_labels),
           "nll_before": nll(before, test_labels),
           "nll_after": nll(after, test_labels),
           "brier": brier(after, test_labels),
           "brier_before": brier(before, test_labels)}
  correct = after.argmax(1) == test_labels
  sc = scores(after, test_distance, cal)
  val_sc = (scores(clip_probs(val_logits, t, val_bounds), val_distance, cal)
            if val_logits is not None and len(val_logits) else {})
  selective = {}
  for name, s in sc.items():
    entry = {"aurc": aurc(s, correct), "acc_at_80": acc_at(s, correct, 0.8),
             "acc_at_50": acc_at(s, correct, 0.5)}
    if name in val_sc:
      thr = threshold_for(val_sc[name], 0.8)
      keep = s >= thr
      entry["val_threshold_80"] = {
          "threshold": thr, "test_coverage": float(keep.mean()),
          "test_accuracy": float(correct[keep].mean()) if keep.any() else None}
    selective[name] = entry
  return calib, selective


def save(path: str, cal: dict) -> None:
  with open(path, "w") as f:
    json.dump(cal, f)


def load(workdir: str) -> dict | None:
  path = os.path.join(workdir, FILENAME)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)
