"""The linear baseline: its features measure what they claim, and every
report carries it."""

import json
import os

import numpy as np
import pytest

from fser_jax import baseline

SR = 16000
MEL = baseline.N_MELS * 5  # band statistics come first, then energy, pitch
ENERGY_MEAN, PITCH_MEAN = MEL, MEL + 5


def _tone(f0, seconds=1.0, amp=0.3):
  t = np.arange(int(SR * seconds)) / SR
  # A harmonic tone (YIN needs a period, not only a sine) with a slow swell.
  x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
  return (amp * x / np.abs(x).max() * (0.8 + 0.2 * np.sin(2 * np.pi * t))
          ).astype(np.float32)


@pytest.mark.parametrize("f0", [110.0, 220.0, 330.0])
def test_pitch_within_a_few_percent(f0):
  f = baseline.clip_features(_tone(f0), SR)
  assert 2 ** f[PITCH_MEAN] == pytest.approx(f0, rel=0.03)


def test_loudness_survives_a_12_db_drop():
  loud = baseline.clip_features(_tone(200.0), SR)
  quiet = baseline.clip_features(_tone(200.0) * 10 ** (-12 / 20), SR)
  assert loud[ENERGY_MEAN] - quiet[ENERGY_MEAN] == pytest.approx(12.0, abs=0.3)
  # Band means shift by the same 12 dB (fixed reference, not the clip's max).
  strong = loud[0:MEL:5] > loud[0:MEL:5].max() - 40
  np.testing.assert_allclose((loud[0:MEL:5] - quiet[0:MEL:5])[strong], 12.0,
                             atol=0.3)
  assert 2 ** quiet[PITCH_MEAN] == pytest.approx(200.0, rel=0.03)


def test_duration_is_a_feature():
  a = baseline.clip_features(_tone(200.0, 1.0), SR)
  b = baseline.clip_features(_tone(200.0, 2.0), SR)
  assert a[-1] == pytest.approx(1.0) and b[-1] == pytest.approx(2.0)


def test_baseline_separates_separable_clips():
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.normal(0, 1, (40, 5)), rng.normal(3, 1, (40, 5))])
  y = np.repeat([0, 1], 40)
  s = baseline.fit_and_score(x[::2], y[::2], x[1::2], y[1::2], 2)
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


def _blocks(seed=0, n_per=12, classes=3):
  """A weak statistics block, a block that separates the classes and a block
  of pure noise, for the same clips."""
  rng = np.random.default_rng(seed)
  y = np.repeat(np.arange(classes), n_per)
  weak = rng.normal(size=(y.size, 5)) + 0.3 * y[:, None]
  strong = rng.normal(size=(y.size, 40)) + 3.0 * np.eye(classes, 40)[y]
  noise = rng.normal(size=(y.size, 200))
  return y, weak, strong, noise


def test_fusion_weight_leaves_out_a_block_of_noise_and_keeps_a_good_one():
  y, weak, strong, noise = _blocks()
  assert baseline.fusion_weight([weak, noise], y) == 0.0
  assert baseline.fusion_weight([weak, strong], y) >= 0.5


def test_fused_blocks_score_what_each_regression_predicts():
  y, weak, strong, noise = _blocks(seed=1)
  yt, wt, st, nt = _blocks(seed=2)
  alone = baseline.fit_and_score(weak, y, wt, yt, 3)
  with_noise = baseline.fit_and_score([weak, noise], y, [wt, nt], yt, 3,
                                      fusion="cv")
  with_good = baseline.fit_and_score([weak, strong], y, [wt, st], yt, 3,
                                      fusion="cv")
  # Weight 0: exactly the first block's regression.
  assert with_noise["fusion_weight"] == 0.0
  assert with_noise["unweighted_accuracy"] == alone["unweighted_accuracy"]
  assert with_good["unweighted_accuracy"] > alone["unweighted_accuracy"] + 0.2
  good_alone = baseline.fit_and_score(strong, y, st, yt, 3)
  assert with_good["unweighted_accuracy"] >= \
      good_alone["unweighted_accuracy"] - 0.1


def test_fusion_weight_folds_hold_out_speakers():
  """Statistics that identify each speaker's class look perfect within
  speakers and fail on a new one; folds by speaker see it."""
  rng = np.random.default_rng(3)
  y = np.tile(np.repeat([0, 1], 10), 4)
  spk = np.repeat(np.arange(4), 20)
  # Speaker-specific cue: a direction per speaker that flips with the class.
  cue = rng.normal(size=(4, 30))
  stats = cue[spk] * (2 * y[:, None] - 1) * 3 + rng.normal(size=(80, 30))
  emb = rng.normal(size=(80, 20)) + 0.5 * y[:, None]  # the same for everyone
  assert baseline.fusion_weight([stats, emb], y) < \
      baseline.fusion_weight([stats, emb], y, spk)


def test_product_fusion_is_the_sum_of_each_regressions_log_probabilities():
  from fser_jax import metrics
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  y, weak, strong, _ = _blocks(seed=4)
  yt, wt, st, _ = _blocks(seed=5)
  logp = 0
  for a, t in ((weak, wt), (strong, st)):
    clf = make_pipeline(StandardScaler(),
                        LogisticRegression(C=1.0, max_iter=3000)).fit(a, y)
    logp = logp + np.log(clf.predict_proba(t))
  want = metrics.summary(yt, logp.argmax(1), 3)["unweighted_accuracy"]
  got = baseline.fit_and_score([weak, strong], y, [wt, st], yt, 3)
  assert got["unweighted_accuracy"] == pytest.approx(want)
  assert "fusion_weight" not in got


def test_fusion_weight_with_one_clip_per_class_falls_back_to_the_product():
  y, weak, strong, _ = _blocks(n_per=1)
  assert baseline.fusion_weight([weak, strong], y, np.arange(3)) == 1.0
  y, weak, strong, _ = _blocks(n_per=2)  # 2 per class: 2 folds
  assert baseline.fusion_weight([weak, strong], y,
                                np.tile(np.arange(2), 3)) in \
      baseline.FUSION_WEIGHTS
