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
Standardised with the training clips' mean and std, into scikit-learn's
multinomial LogisticRegression (L2, C=1). Seconds to train.
"""

from __future__ import annotations

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


def clip_features(wav: np.ndarray, sample_rate: int) -> np.ndarray:
  """The baseline's feature vector of one clip (float32)."""
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


FUSION_WEIGHTS = (0.0, 0.25, 0.5, 1.0)  # the extra blocks' weight, by CV


def _logistic():
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  return make_pipeline(StandardScaler(),
                       LogisticRegression(C=1.0, max_iter=3000))


def _log_proba(clf, x, classes) -> np.ndarray:
  """log p [N, len(classes)] (classes a model never saw: ~0)."""
  out = np.full((len(x), len(classes)), np.log(1e-12))
  out[:, np.searchsorted(classes, clf.classes_)] = np.log(
      np.maximum(clf.predict_proba(x), 1e-12))
  return out


def fusion_weight(xs, y, groups=None) -> float:
  """The weight of the blocks after the first (w in FUSION_WEIGHTS) whose
  fused out-of-fold predictions have the lowest log loss on the training
  clips; 1.0 when a class has one clip.

  Folds hold out whole `groups` (speakers) when there are at least two, as
  the test does: within a speaker, statistics that identify the speaker
  look better than they are on a new one."""
  from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
  classes = np.unique(y)
  n_groups = 0 if groups is None else len(set(np.asarray(groups).tolist()))
  smallest = int(np.bincount(np.searchsorted(classes, y)).min())
  folds = min(5, smallest, n_groups if n_groups >= 2 else smallest)
  if folds < 2:
    return 1.0
  if n_groups >= 2:
    split = StratifiedGroupKFold(folds, shuffle=True, random_state=0).split(
        xs[0], y, np.asarray(groups))
  else:
    split = StratifiedKFold(folds, shuffle=True,
                            random_state=0).split(xs[0], y)
  oof = np.zeros((len(xs), len(y), len(classes)))
  for tr, va in split:
    for b, x in enumerate(xs):
      oof[b, va] = _log_proba(_logistic().fit(x[tr], y[tr]), x[va], classes)
  yi = np.searchsorted(classes, y)

  def loss(w):
    z = oof[0] + w * oof[1:].sum(0)
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -logp[np.arange(len(y)), yi].mean()
  return min(FUSION_WEIGHTS, key=loss)  # ties: the smaller weight


def fit_and_score(x_train, y_train, x_test, y_test, num_classes: int,
                  groups_train=None, fusion: str = "product") -> dict:
  """Trains the baseline and returns its summary on the test clips.

  `x_train` / `x_test` may also be lists of feature blocks (the baseline's
  statistics first, then e.g. a trained run's embedding): one standardised
  logistic regression per block, their log-probabilities summed (a product
  of experts, `fusion='product'`), or with the later blocks weighted by
  `fusion_weight` (`fusion='cv'`: chosen by cross-validation on the training
  clips, by speaker when `groups_train` gives them; 0 falls back to the
  first block alone). Separate regressions keep a large block from drowning
  a small one, as one regression over the concatenation would."""
  from fser_jax import metrics
  if len(np.unique(y_train)) < 2 or len(y_test) == 0:
    return None
  blocks = isinstance(x_train, (list, tuple))
  xs_train = list(x_train) if blocks else [x_train]
  xs_test = list(x_test) if blocks else [x_test]
  classes = np.unique(y_train)
  if fusion not in ("product", "cv"):
    raise ValueError(f"fusion must be 'product' or 'cv', got {fusion!r}")
  w = (fusion_weight(xs_train, y_train, groups_train)
       if len(xs_train) > 1 and fusion == "cv" else 1.0)
  log_p = sum((1.0 if b == 0 else w)
              * _log_proba(_logistic().fit(a, y_train), t, classes)
              for b, (a, t) in enumerate(zip(xs_train, xs_test)))
  pred = classes[np.argmax(log_p, 1)]
  s = metrics.summary(y_test, pred, num_classes)
  dims = " + ".join(str(a.shape[1]) for a in xs_train)
  out = {"accuracy": s["accuracy"],
         "unweighted_accuracy": s["unweighted_accuracy"],
         "macro_f1": s["macro_f1"], "model": "logistic regression on "
         f"{dims} per-clip features (fser_jax/baseline.py)"}
  if fusion == "cv" and len(xs_train) > 1:
    out["fusion_weight"] = w
  return out
