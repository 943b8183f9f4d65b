"""The linear baseline: its features measure what they claim, and every
report carries it."""

import json
import os

import numpy as np
import pytest

from fser_jax.evaluation import linear

from fser_jax.frontend import statistics

SR = 16000
MEL = statistics.N_MELS * 5  # band statistics come first, then energy, pitch
ENERGY_MEAN, PITCH_MEAN = MEL, MEL + 5


def _tone(f0, seconds=1.0, amp=0.3):
  t = np.arange(int(SR * seconds)) / SR
  # A harmonic tone (YIN needs a period, not only a sine) with a slow swell.
  x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
  return (amp * x / np.abs(x).max() * (0.8 + 0.2 * np.sin(2 * np.pi * t))
          ).astype(np.float32)


@pytest.mark.parametrize("f0", [110.0, 220.0, 330.0])
def test_pitch_within_a_few_percent(f0):
  f = statistics.of_clip(_tone(f0), SR)
  assert 2 ** f[PITCH_MEAN] == pytest.approx(f0, rel=0.03)


def test_loudness_survives_a_12_db_drop():
  loud = statistics.of_clip(_tone(200.0), SR)
  quiet = statistics.of_clip(_tone(200.0) * 10 ** (-12 / 20), SR)
  assert loud[ENERGY_MEAN] - quiet[ENERGY_MEAN] == pytest.approx(12.0, abs=0.3)
  # Band means shift by the same 12 dB (fixed reference, not the clip's max).
  strong = loud[0:MEL:5] > loud[0:MEL:5].max() - 40
  np.testing.assert_allclose((loud[0:MEL:5] - quiet[0:MEL:5])[strong], 12.0,
                             atol=0.3)
  assert 2 ** quiet[PITCH_MEAN] == pytest.approx(200.0, rel=0.03)


def test_duration_is_a_feature():
  a = statistics.of_clip(_tone(200.0, 1.0), SR)
  b = statistics.of_clip(_tone(200.0, 2.0), SR)
  assert a[-1] == pytest.approx(1.0) and b[-1] == pytest.approx(2.0)


def test_baseline_separates_separable_clips():
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.normal(0, 1, (40, 5)), rng.normal(3, 1, (40, 5))])
  y = np.repeat([0, 1], 40)
  s = linear.fit_and_score(x[::2], y[::2], x[1::2], y[1::2], 2)
  assert s["accuracy"] > 0.9 and s["unweighted_accuracy"] > 0.9


def test_every_report_carries_its_baseline(source_run):
  with open(os.path.join(source_run, "report.json")) as f:
    rep = json.load(f)
  b = rep["baseline"]
  for k in ("accuracy", "unweighted_accuracy", "macro_f1"):
    assert 0.0 <= b[k] <= 1.0
  with open(os.path.join(source_run, "report.md")) as f:
    head = f.read().split("\n\n")[1]
  assert "baseline" in head.lower()  # in the report's first lines


def test_the_compact_set_is_the_band_means_and_spreads_and_the_levels():
  f = statistics.of_clip(_tone(200.0, 1.5), SR)
  c = f[statistics.COMPACT]
  assert c.size == 86
  np.testing.assert_array_equal(c[0:80:2], f[0:MEL:5])  # band means
  np.testing.assert_array_equal(c[1:80:2], f[1:MEL:5])  # band stds
  assert c[80] == f[ENERGY_MEAN] and c[82] == f[PITCH_MEAN]
  assert c[-1] == pytest.approx(1.5)  # duration last


def test_speaker_standardise_uses_each_speakers_own_clips():
  rng = np.random.default_rng(0)
  spk = np.array(["a"] * 6 + ["b"] * 4 + ["c"])
  x = rng.normal(size=(11, 3)) * [1, 2, 3] + np.where(
      spk[:, None] == "a", 10.0, -5.0)
  z = linear.speaker_standardise(x, spk)
  for g in ("a", "b"):
    m = spk == g
    np.testing.assert_allclose(z[m].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[m].std(0), 1, atol=1e-5)
    # Each speaker's rows depend on that speaker's rows alone.
    np.testing.assert_allclose(z[m], (x[m] - x[m].mean(0)) / x[m].std(0),
                               rtol=1e-5)
  # One clip: its own mean (so 0), scaled by the spread of all rows.
  np.testing.assert_allclose(z[-1], 0, atol=1e-6)


def test_cv_folds_hold_out_whole_speakers():
  y = np.tile(np.arange(3), 12)
  spk = np.repeat(np.arange(6), 6)
  folds, how = linear.cv_folds(y, spk)
  assert len(folds) == 5 and "speakers held out" in how
  held = np.concatenate([va for _, va in folds])
  assert sorted(held.tolist()) == list(range(36))  # every clip once
  for tr, va in folds:
    assert not set(spk[tr]) & set(spk[va])
  folds, how = linear.cv_folds(y, None)
  assert len(folds) == 5 and "stratified" in how
  # One named speaker and clips without one: no speakers to hold out.
  folds, how = linear.cv_folds(y, np.where(spk == 0, "a", ""))
  assert len(folds) == 5 and "stratified" in how
  # One clip per class from each of 4 speakers: still whole speakers out
  # (unstratified: a class cannot fill 4 folds).
  folds, how = linear.cv_folds(np.array([0, 1, 2, 0]), list("abcd"))
  assert len(folds) >= 2 and "held out" in how
  for tr, va in folds:
    assert len(va) == 1
  # One clip per class and no speakers: no folds, said so.
  assert linear.cv_folds(np.arange(3), None)[0] == []


def _signal_in(columns, seed=0, n_per=10, classes=3):
  rng = np.random.default_rng(seed)
  y = np.repeat(np.arange(classes), n_per)
  x = rng.normal(size=(y.size, 213))
  x[:, columns] += 1.5 * np.eye(classes)[y][:, np.arange(len(columns))
                                             % classes]
  return x, y


def test_tune_picks_the_feature_set_the_signal_is_in():
  """Signal in compact columns among 127 noisy others: the compact set has
  the lower out-of-fold loss; signal only outside it: the full set."""
  compact = statistics.COMPACT[:12]
  x, y = _signal_in(compact)
  folds, _ = linear.cv_folds(y)
  classes = np.unique(y)
  got = linear.search(x, y, folds, classes, tuple(linear.FEATURE_SETS))
  assert got["set"] == "compact" and got["oof"].shape == (30, 3)
  outside = np.setdiff1d(np.arange(213), statistics.COMPACT)[:12]
  x, y = _signal_in(outside)
  got = linear.search(x, y, folds, classes, tuple(linear.FEATURE_SETS))
  assert got["set"] == "full"


def test_tune_regularises_more_when_the_features_are_noise():
  rng = np.random.default_rng(1)
  y = np.repeat(np.arange(3), 10)
  classes = np.unique(y)
  folds, _ = linear.cv_folds(y)
  noise = rng.normal(size=(30, 50))
  clean = noise * 0.05 + 3 * np.eye(3, 50)[y]
  assert linear.search(noise, y, folds, classes)["C"] == min(linear.C_GRID)
  assert linear.search(clean, y, folds, classes)["C"] == max(linear.C_GRID)


def test_wide_features_fit_in_their_row_space_to_the_same_model():
  """More features than clips: the PCA rotation gives the plain
  regression's probabilities (an L2 solution lies in the rows' span)."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  rng = np.random.default_rng(2)
  y = np.repeat(np.arange(3), 8)
  x = rng.normal(size=(24, 300)) + np.eye(3, 300)[y]
  xt = rng.normal(size=(10, 300))
  wide = linear.logistic(0.3, x.shape)
  assert len(wide.steps) == 3  # the rotation is there
  wide.set_params(logisticregression__tol=1e-10)
  plain = make_pipeline(StandardScaler(), LogisticRegression(
      C=0.3, max_iter=20000, tol=1e-10))
  np.testing.assert_allclose(wide.fit(x, y).predict_proba(xt),
                             plain.fit(x, y).predict_proba(xt), atol=1e-4)


def test_egemaps_without_opensmile_says_how_to_get_it(monkeypatch):
  import sys
  from fser_jax.errors import UserError
  monkeypatch.setitem(sys.modules, "opensmile", None)  # import fails
  with pytest.raises(UserError, match=r"fser_jax\[egemaps\].*research"):
    statistics.egemaps([_tone(200.0)], SR)


def test_egemaps_pitch_is_the_tones():
  """eGeMAPS's F0 mean in semitones above 27.5 Hz: 12 log2(f0 / 27.5)."""
  opensmile = pytest.importorskip("opensmile", reason="pip install "
                                  "'fser_jax[egemaps]' (research licence)")
  names = opensmile.Smile(
      feature_set=opensmile.FeatureSet.eGeMAPSv02,
      feature_level=opensmile.FeatureLevel.Functionals).feature_names
  f = statistics.egemaps([_tone(150.0), _tone(300.0)], SR)
  assert f.shape == (2, 88)
  i = names.index("F0semitoneFrom27.5Hz_sma3nz_amean")
  for row, f0 in zip(f, (150.0, 300.0)):
    assert row[i] == pytest.approx(12 * np.log2(f0 / 27.5), abs=0.5)


def test_the_first_clip_features_call_holds_the_machine_wide_numba_lock(
    monkeypatch):
  """librosa's numba gufuncs compile and cache on the first call; that call
  holds a file lock other processes wait on (numba's cache is unsafe under
  two writers), and later calls in this process do not take it."""
  import fcntl
  import tempfile
  path = os.path.join(tempfile.gettempdir(), "fser_jax_numba.lock")
  held = []

  def probe(wav, sample_rate):
    with open(path, "a") as other:  # another open file: as another process
      try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_UN)
        held.append(False)
      except BlockingIOError:
        held.append(True)
    return np.zeros(3, np.float32)

  monkeypatch.setattr(statistics, "_NUMBA_WARM", False)
  monkeypatch.setattr(statistics, "_of_clip", probe)
  statistics.of_clip(np.zeros(10), SR)
  statistics.of_clip(np.zeros(10), SR)
  assert held == [True, False]
