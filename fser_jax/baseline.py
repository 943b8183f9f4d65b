"""The simple baseline beside every number: per-clip statistics into a linear
model.

A CNN that loses to a logistic regression on a handful of per-clip
statistics is not worth its compute, so every run also fits this baseline on
the same training clips and scores it on the same test clips
(`report.json["baseline"]`; `report.md` flags a model below it in its first
lines; the generalisation table has a baseline column per protocol).

Features of a clip (computed once when the data is loaded, from the
waveform at the dataset's rate):
- log-mel, 40 bands (n_fft 1024, hop 256), dB with a *fixed* reference (1.0),
  so a recording's loudness survives: per band the mean, std, 10th and 90th
  percentiles and the slope over time;
- frame energy (RMS, dB): mean, std, percentiles, slope;
- pitch from librosa's YIN (60-500 Hz) on frames within 30 dB of the clip's
  loudest frame: mean, std, 10th/90th percentiles, range and slope of log2 f0,
  and the voiced share. YIN rather than pYIN: pYIN's HMM decoding is ~100x
  slower, and the statistics need a robust level and spread, not a clean
  voicing track;
- duration in seconds.
Standardised with the training clips' mean and std (or, for the
transductive variant, each speaker's own: `speaker_standardise`), into
scikit-learn's multinomial LogisticRegression (L2). Its two choices, the
feature set (all 213 above, or the `compact` 86: band means and spreads,
energy and pitch level and spread, voiced share, duration) and the
regularisation C in C_GRID, are made by cross-validation on the training
clips that holds out whole speakers when they have speakers (`tune`): on
25-100 clips either choice moves the baseline by several points, so it is
made on purpose, never on the test clips. Seconds to train.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np

N_MELS = 40
N_FFT = 1024
HOP = 256


def _stats(x: np.ndarray) -> np.ndarray:
  """Per row of x [R, T]: mean, std, p10, p90 and the least-squares slope
  over normalised time [0, 1] -> [R * 5]."""
  x = np.atleast_2d(np.asarray(x, np.float64))
  if x.shape[1] == 0:
    return np.zeros(x.shape[0] * 5)
  t = np.linspace(0.0, 1.0, x.shape[1])
  tc = t - t.mean()
  var = float(np.sum(tc ** 2))
  slope = (x - x.mean(1, keepdims=True)) @ tc / var if var else \
      np.zeros(x.shape[0])
  p10, p90 = np.percentile(x, [10, 90], axis=1)
  return np.stack([x.mean(1), x.std(1), p10, p90, slope], 1).reshape(-1)


_NUMBA_WARM = False  # this process has made its first clip_features call


@contextlib.contextmanager
def numba_first_call_lock():
  """Held around this process's first `clip_features` call. librosa's STFT,
  YIN and zero crossings compile numba gufuncs on first use and cache them
  on disk; two processes writing one gufunc's cache at once can leave a
  wrapper calling a kernel another process compiled, which then crashes
  every process that loads it (numba issue #10128; seen with two test
  workers). A machine-wide file lock makes the first compile one process
  at a time; later calls skip it. Without POSIX locks (fcntl), numba's own
  behaviour."""
  global _NUMBA_WARM
  try:
    import fcntl
  except ImportError:
    fcntl = None
  if _NUMBA_WARM or fcntl is None:
    yield
    return
  with open(os.path.join(tempfile.gettempdir(), "fser_jax_numba.lock"),
            "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)
  _NUMBA_WARM = True


def clip_features(wav: np.ndarray, sample_rate: int) -> np.ndarray:
  """The baseline's feature vector of one clip (float32)."""
  with numba_first_call_lock():
    return _clip_features(wav, sample_rate)


def _clip_features(wav: np.ndarray, sample_rate: int) -> np.ndarray:
  import librosa
  wav = np.asarray(wav, np.float32)
  if wav.size < N_FFT:
    wav = np.pad(wav, (0, N_FFT - wav.size))
  from fser_jax.features import mel_filterbank  # cached per rate
  power = np.abs(librosa.stft(wav, n_fft=N_FFT, hop_length=HOP)) ** 2
  mel = mel_filterbank(sample_rate, N_FFT, N_MELS) @ power
  db = 10.0 * np.log10(np.maximum(mel, 1e-10))  # fixed reference: 1.0
  feats = list(_stats(db))
  frames = librosa.util.frame(np.pad(wav, (N_FFT // 2, N_FFT // 2)),
                              frame_length=N_FFT, hop_length=HOP)
  energy = 10.0 * np.log10(np.maximum(np.mean(frames ** 2, axis=0), 1e-10))
  feats += list(_stats(energy))
  f0 = librosa.yin(wav, fmin=60, fmax=500, sr=sample_rate,
                   frame_length=N_FFT, hop_length=HOP)
  n = min(f0.size, energy.size)
  voiced = energy[:n] > energy.max() - 30.0
  lf0 = np.log2(f0[:n][voiced]) if voiced.any() else np.zeros(0)
  feats += list(_stats(lf0)) + [float(np.ptp(lf0)) if lf0.size else 0.0,
                 float(voiced.mean())]
  feats.append(wav.size / sample_rate)
  return np.asarray(feats, np.float32)


def features(waveforms, sample_rate: int) -> np.ndarray:
  """[N, F] for a list of clips. Serial on purpose: librosa's YIN calls a
  numba gufunc whose first (compiling) call crashed with a segmentation
  fault when two threads made it at once (seen in a CI run)."""
  return np.stack([clip_features(w, sample_rate) for w in waveforms])


# The compact set: per band the mean and std (80), energy and log f0 mean
# and std, the voiced share and the duration (86 of the 213).
COMPACT = np.array([5 * b + j for b in range(N_MELS) for j in (0, 1)]
                   + [200, 201, 205, 206, 211, 212])
FEATURE_SETS = {"full": None, "compact": COMPACT}
C_GRID = (0.03, 0.1, 0.3, 1.0)
FUSION_WEIGHTS = (0.5, 1.0, 2.0)  # a probe's embedding weight, by CV


def egemaps(waveforms, sample_rate: int) -> np.ndarray:
  """[N, 88] eGeMAPS v02 functionals (Eyben et al., 2016), the field's
  standard small acoustic feature set, computed by audEERING's openSMILE
  (`pip install fser_jax[egemaps]`; its binary is under audEERING's research
  licence, free for research and education, not for commercial use).

  openSMILE runs in a fresh Python process: its library corrupts the heap
  ("malloc(): corrupted top size") in a process that has TensorFlow loaded,
  as every launch.py mode has."""
  try:
    import opensmile  # noqa: F401  (only to say how to get it)
  except ImportError:
    from fser_jax.errors import UserError
    raise UserError("eGeMAPS features need the opensmile package: pip install "
                    "'fser_jax[egemaps]' (audEERING's research licence: "
                    "research and education only)") from None
  import subprocess
  import sys
  import tempfile
  with tempfile.TemporaryDirectory() as tmp:
    src, dst = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npy")
    np.savez(src, *[np.asarray(w, np.float32) for w in waveforms])
    r = subprocess.run([sys.executable, "-c", _EGEMAPS_CHILD, src, dst,
                        str(int(sample_rate))], capture_output=True,
                       text=True)
    if r.returncode:
      raise RuntimeError("openSMILE's eGeMAPS extraction failed: "
                         + r.stderr.strip()[-500:])
    return np.load(dst)


# Run by `egemaps` in a child with nothing else loaded.
_EGEMAPS_CHILD = """
import sys
import numpy as np
import opensmile
smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                        feature_level=opensmile.FeatureLevel.Functionals)
clips = np.load(sys.argv[1])
rate = int(sys.argv[3])
out = [smile.process_signal(clips[f"arr_{i}"], rate).to_numpy()[0]
       for i in range(len(clips.files))]
np.save(sys.argv[2], np.stack(out).astype(np.float32))
"""


MAX_FOLDS = 5


def _logistic(c: float = 1.0, shape=(0, 0)):
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


def _log_proba(clf, x, classes) -> np.ndarray:
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
  `max_folds`), else stratified folds; [] when fewer than two folds can be
  made."""
  from sklearn.model_selection import (GroupKFold, StratifiedGroupKFold,
                                       StratifiedKFold)
  y = np.asarray(y)
  smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
  g = None if groups is None else np.asarray(groups, object)
  n_groups = 0 if g is None else len(set(g.tolist()))
  if g is not None and len(set(g.tolist()) - {""}) < 2:
    g, n_groups = None, 0
  if n_groups >= 2:
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
    how = f"{k}-fold stratified (no speakers)"
  folds = [(tr, va) for tr, va in split if len(np.unique(y[tr])) >= 2]
  return (folds, how) if len(folds) >= 2 else ([], "fewer than two folds")


def oof_log_proba(x, y, folds, c: float, classes) -> np.ndarray:
  """Out-of-fold log-probabilities [N, K] of a regression with C=c."""
  out = np.zeros((len(y), len(classes)))
  for tr, va in folds:
    out[va] = _log_proba(_logistic(c, x[tr].shape).fit(x[tr], y[tr]), x[va],
                         classes)
  return out


def log_loss(logp: np.ndarray, y, classes) -> float:
  z = logp - logp.max(1, keepdims=True)
  z = z - np.log(np.exp(z).sum(1, keepdims=True))
  return float(-z[np.arange(len(y)), np.searchsorted(classes, y)].mean())


def tune(x, y, folds, classes, feature_sets=("full",)) -> dict:
  """The regression's hyperparameters chosen by out-of-fold log loss:
  {'columns': feature subset or None, 'set': name, 'C': c, 'oof': [N, K]
  log-probabilities (None without folds)}. Without folds: the full set and
  C=1."""
  if not folds:
    return {"columns": None, "set": feature_sets[0], "C": 1.0, "oof": None}
  best = None
  for name in feature_sets:
    cols = FEATURE_SETS.get(name)
    if cols is not None and cols.max() >= x.shape[1]:
      continue  # not the baseline's statistics: the set does not apply
    xs = x if cols is None else x[:, cols]
    for c in C_GRID:
      oof = oof_log_proba(xs, y, folds, c, classes)
      loss = log_loss(oof, y, classes)
      if best is None or loss < best[0] - 1e-9:  # ties: the earlier choice
        best = (loss, {"columns": cols, "set": name, "C": c, "oof": oof})
  return best[1]


def tune_block(blocks, y, folds, classes) -> tuple[int, dict, list[float]]:
  """(the index of the block [N, K, D] `tune` fits best, by out-of-fold log
  loss, ties to the earlier; its hyperparameters; every block's loss).
  Without folds: the first block, C=1."""
  losses, best = [], None
  for b in range(blocks.shape[1]):
    h = tune(blocks[:, b], y, folds, classes)
    loss = log_loss(h["oof"], y, classes) if h["oof"] is not None else 0.0
    losses.append(loss)
    if best is None or loss < best[0] - 1e-9:
      best = (loss, b, h)
  return best[1], best[2], losses


def fit_log_proba(x_train, y_train, x_test, hyper: dict, classes):
  """log p [N_test, K] of the regression `tune` chose, fitted on all the
  training clips."""
  cols = hyper["columns"]
  sel = (lambda a: a) if cols is None else (lambda a: a[:, cols])
  xs = sel(x_train)
  return _log_proba(_logistic(hyper["C"], xs.shape).fit(xs, y_train),
                    sel(x_test), classes)


def fit_and_score(x_train, y_train, x_test, y_test, num_classes: int,
                  groups_train=None) -> dict | None:
  """The baseline trained on the training clips, its feature set and C
  chosen by `tune` (whole speakers held out when `groups_train` has two or
  more), and its summary on the test clips."""
  from fser_jax import metrics
  if len(np.unique(y_train)) < 2 or len(y_test) == 0:
    return None
  classes = np.unique(y_train)
  folds, how = cv_folds(y_train, groups_train)
  hyper = tune(x_train, y_train, folds, classes, tuple(FEATURE_SETS))
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
          "fser_jax/baseline.py)"}
