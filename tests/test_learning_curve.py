"""The learning curve's choice: made on the labelled clips alone, ties to
the simpler arm, margins against a baseline as informed as the arm, and
features recomputed when the audio changes."""

import ml_collections
import numpy as np
import pytest
from absl import logging

from fser_jax.evaluation import linear
from fser_jax.experiments.learning_curve import arms as linear_arms
from fser_jax.experiments.learning_curve import curve as lc


def _arm(cv_ua, correct):
  return {"cv_ua": cv_ua, "cv_correct": np.asarray(correct, bool),
          "report": {"unweighted_accuracy": 0.0}, "hyper": {}}


def test_se_of_the_difference_by_hand():
  # Two classes of 4 clips; d = a - b per clip: class 0 [1, 0, 0, 0],
  # class 1 [0, 0, -1, 1]. Sample variances 0.25 and 2/3, each over 4
  # clips; UA averages 2 classes: sqrt(0.25/4 + (2/3)/4) / 2.
  y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
  a = np.array([1, 1, 0, 1, 1, 0, 0, 1], bool)
  b = np.array([0, 1, 0, 1, 1, 0, 1, 0], bool)
  assert linear_arms._se_of_difference(a, b, y) == pytest.approx(
      np.sqrt(0.25 / 4 + (2 / 3) / 4) / 2)


def test_a_small_cv_lead_goes_to_the_simpler_arm_a_large_one_does_not():
  y = np.repeat([0, 1], 10)
  base = np.ones(20, bool)
  base[[0, 10]] = False  # 2 errors: CV UA 0.9
  probe = np.ones(20, bool)
  probe[[1]] = False  # 1 error, on another clip: 0.95
  cell = {"baseline": _arm(0.9, base), "probe": _arm(0.95, probe)}
  assert linear_arms.choose(cell, y, "one_se")[0] == "baseline"
  assert linear_arms.choose(cell, y, "best")[0] == "probe"
  # The baseline wrong on half of each class: 0.5 against 0.95.
  bad = np.tile([True, False], 10)
  cell = {"baseline": _arm(0.5, bad), "probe": _arm(0.95, probe)}
  arm, why = linear_arms.choose(cell, y, "one_se")
  assert arm == "probe" and why == "best cross-validated UA"
  # Equal CV UA: the simpler arm, whatever the dict's order.
  cell = {"probe": _arm(0.9, base), "baseline": _arm(0.9, base)}
  assert linear_arms.choose(cell, y, "best")[0] == "baseline"
  # No folds: the simplest arm, said so.
  cell = {"baseline": {"cv_ua": None}, "probe": {"cv_ua": None}}
  assert linear_arms.choose(cell, y)[0] == "baseline"


def _data(seed=0):
  """6 speakers x 3 classes x 4 clips; statistics with a large offset per
  speaker over a class cue; an 'embedding' with a strong cue."""
  rng = np.random.default_rng(seed)
  y = np.tile(np.repeat(np.arange(3), 4), 6)
  spk = np.repeat([f"s{i}" for i in range(6)], 12).astype(object)
  offset = rng.normal(0, 5, size=(6, 213))[np.repeat(np.arange(6), 12)]
  cue = np.zeros((3, 213))
  cue[np.arange(30) % 3, np.arange(30)] = 1.5
  stats = rng.normal(size=(72, 213)) + offset + cue[y]
  emb = rng.normal(size=(72, 64)) + 2.0 * np.eye(3, 64)[y]
  gemaps = rng.normal(size=(72, 88)) + offset[:, :88] + cue[y][:, :88]
  layers = rng.normal(size=(72, 2, 32)) + np.stack(
      [0.3 * np.eye(3, 32)[y], 2.0 * np.eye(3, 32)[y]], 1)  # layer 1 informs
  feats = {"stats": stats.astype(np.float32),
           "egemaps": gemaps.astype(np.float32),
           "encoder": layers.astype(np.float32),
           "embedding": emb.astype(np.float32),
           "embedding_speaker": emb.astype(np.float32)}
  return y, spk, linear_arms.linear_blocks(feats, spk)


def test_the_choice_never_reads_the_test_labels():
  """Shuffling the test clips' labels changes their scores, never the
  cross-validation or the arm chosen."""
  y, spk, blocks = _data()
  test = spk == "s0"
  idx = np.flatnonzero(~test)[::2]
  a, how = linear_arms.linear_cell(blocks, y, idx, test, 3, spk)
  assert "whole speakers held out" in how
  y2 = y.copy()
  y2[test] = np.random.default_rng(1).permutation(y[test])[::-1]
  y2[test] = (y2[test] + 1) % 3
  b, _ = linear_arms.linear_cell(blocks, y2, idx, test, 3, spk)
  assert set(a) == set(linear_arms.LINEAR) | {"reference_speaker"}
  assert a["encoder"]["hyper"]["layer"] == 1  # the layer that carries it
  for arm in a:
    assert a[arm]["cv_ua"] == b[arm]["cv_ua"]
    assert a[arm]["hyper"] == b[arm]["hyper"]
  assert linear_arms.choose(a, y[idx]) == linear_arms.choose(b, y2[idx])
  assert any(a[arm]["report"] != b[arm]["report"] for arm in a)


def test_speaker_arms_remove_what_identifies_the_speaker():
  """Statistics drowned in per-speaker offsets: standardised per speaker,
  the same regression does far better on a new speaker."""
  y, spk, blocks = _data(seed=2)
  test = spk == "s0"
  cell, _ = linear_arms.linear_cell(blocks, y, np.flatnonzero(~test), test, 3, spk)
  ua = {a: cell[a]["report"]["unweighted_accuracy"] for a in cell}
  assert ua["baseline_speaker"] > ua["baseline"] + 0.2
  assert cell["baseline_speaker"]["cv_ua"] > cell["baseline"]["cv_ua"] + 0.2


def test_the_margin_is_against_the_baseline_with_the_same_information():
  def c(arms):
    return {a: {"report": {"unweighted_accuracy": u}, "cv_ua": 0.5}
            for a, u in arms.items()}
  cells = [c({"baseline": 0.5, "baseline_speaker": 0.7, "probe_speaker": 0.8}),
           c({"baseline": 0.6, "baseline_speaker": 0.6, "probe_speaker": 0.7})]
  rows = {a: [{"ua_mean": u}] for a, u in
          (("baseline", 0.55), ("baseline_speaker", 0.65),
           ("probe_speaker", 0.75))}
  ch = linear_arms.summarise_choice(
      5, [("probe_speaker", ""), ("baseline", "")], cells, rows, "how",
      [0.6, 0.7])
  # Draw 1 chose probe_speaker (0.8; its baseline 0.7), draw 2 the
  # baseline (0.6; itself).
  assert ch["test_ua"] == pytest.approx(0.7)
  assert ch["margin_over_matched_baseline"] == pytest.approx(0.05)
  assert ch["arm"] == "baseline"  # 1-1: the simpler
  assert ch["best_in_hindsight"] == {"arm": "probe_speaker", "ua": 0.75}
  # The nested estimate is the procedure's, beside its test UA; the fixed
  # policies are the arms' own rows, and the regret against the best.
  assert ch["cv_ua"] == pytest.approx(0.65)
  assert ch["cv_gap"] == pytest.approx(0.65 - 0.7)
  assert ch["fixed_policies"] == {"baseline_speaker": 0.65,
                                  "probe_speaker": 0.75}
  assert ch["regret_vs_best_fixed_policy"] == pytest.approx(0.7 - 0.75)
  assert ch["arm_test_ua"] == 0.55  # `baseline`'s own row, not 0.7


def test_features_are_recomputed_when_the_audio_changes(tmp_path):
  cfg = ml_collections.ConfigDict({"data": {"sample_rate": 8000}})
  t = np.arange(8000) / 8000
  waves = [(0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)
           for f in (150, 220)]
  meta = {"filename": np.array(["a.wav", "b.wav"]),
          "speaker": np.array(["", ""])}
  first = linear_arms.curve_features(cfg, waves, meta, str(tmp_path))
  again = linear_arms.curve_features(cfg, waves, meta, str(tmp_path))
  np.testing.assert_array_equal(first["stats"], again["stats"])
  # Same file names, other recordings (an octave up, 12 dB quieter).
  other = [w[::2].repeat(2) * 0.25 for w in waves]
  changed = linear_arms.curve_features(cfg, other, meta, str(tmp_path))
  assert not np.allclose(changed["stats"], first["stats"])
  cfg.data.sample_rate = 16000  # same samples, another rate
  rate = linear_arms.curve_features(cfg, other, meta, str(tmp_path))
  assert not np.allclose(rate["stats"], changed["stats"])


def test_features_are_recomputed_when_the_speakers_change(tmp_path,
                                                          monkeypatch):
  """The per-speaker embedding depends on who spoke each clip: the cache
  is keyed by the speakers too (same audio, same rate)."""
  from fser_jax.frontend import statistics
  calls = []
  real = statistics.of_clips
  monkeypatch.setattr(statistics, "of_clips",
                      lambda w, r: calls.append(1) or real(w, r))
  cfg = ml_collections.ConfigDict({"data": {"sample_rate": 8000}})
  t = np.arange(8000) / 8000
  waves = [(0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)
           for f in (150, 220)]
  meta = {"filename": np.array(["a.wav", "b.wav"]),
          "speaker": np.array(["s1", "s2"], object)}
  linear_arms.curve_features(cfg, waves, meta, str(tmp_path))
  linear_arms.curve_features(cfg, waves, meta, str(tmp_path))
  assert len(calls) == 1  # read back
  meta["speaker"] = np.array(["s1", "s1"], object)
  linear_arms.curve_features(cfg, waves, meta, str(tmp_path))
  assert len(calls) == 2


def test_a_k_beyond_a_class_pool_is_logged(monkeypatch):
  said = []
  monkeypatch.setattr(logging, "warning", lambda *a: said.append(a[0] % a[1:]))
  y = np.array([0] * 10 + [1] * 3)
  d = lc.draws(y, np.arange(13), [2, 5], 1, 0, classes=["calm", "sad"])
  assert np.bincount(y[d[(5, 0)]]).tolist() == [5, 3]
  assert len(said) == 1 and "k=5" in said[0] and "sad" in said[0]


def test_a_pretrained_encoder_is_an_arm_of_the_curve(tfds_dir, user_recordings,
                                                     tmp_path):
  """--config.encoder.path=DIR (a tiny Whisper in a Hugging Face folder):
  the curve gains 'encoder' and 'encoder+baseline' with their per-speaker
  twins, the layer chosen by cross-validation, scored and chosen like the
  others."""
  import os
  from conftest import own_tiny_config
  c = own_tiny_config(tfds_dir, user_recordings)
  with c.unlocked():
    c.encoder.path = os.path.join(os.path.dirname(__file__), "fixtures",
                                  "whisper_tiny")
    c.data.protocol = "speaker"
    c.learning_curve.shots = (2,)
    c.learning_curve.repeats = 2
    c.learning_curve.arms = ("baseline",)
  out = lc.run(c, str(tmp_path))
  assert out["encoder"]["layers"] == 3 and out["encoder"]["family"] == "whisper"
  for arm in ("encoder", "encoder_speaker", "encoder+baseline",
              "encoder+baseline_speaker"):
    row = out["arms"][arm][0]
    assert row["n_train"] == 10 and len(row["ua"]) == 2
    assert all(h["layer"] in (0, 1, 2, "mix") for h in row["hyper"])
  assert out["encoder"]["candidates"] == [0, 1, 2, "mix"]
  assert set(out["choice"][0]["arms"]) <= set(linear_arms.LINEAR)
  # The states live per clip in the encoder's store, not in features.npz.
  from fser_jax import encoders
  from fser_jax.encoders import extract
  store = extract.Store(str(tmp_path / "encoder_states"),
                        encoders.load(c.encoder.path))
  assert len(store.index()) == 60  # 60 clips, each once
  assert "encoder" not in np.load(tmp_path / "features.npz").files
  x = store.read(sorted(store.index()))
  assert x.shape == (60, 3, 128)  # every layer's mean and std


def test_one_training_speaker_is_said_to_be_cross_validated_within_itself():
  y = np.tile([0, 1, 2], 6)
  folds, how = linear.cv_folds(y, np.array(["ann"] * 18, object))
  assert len(folds) == 5  # 6 clips a class: MAX_FOLDS stratified folds
  assert how.startswith("5-fold stratified within the one training speaker (ann)")
  assert "no other voice is held out" in how
  folds, how = linear.cv_folds(y, None)
  assert how == "5-fold stratified (no speakers)"


def test_a_dropped_fold_scores_none_of_its_clips_and_is_counted():
  """Holding out s1 leaves class 0 alone to train on: that fold cannot
  run, its clips get no out-of-fold score (they were scored as class 0
  before), and `how` counts the folds that ran."""
  y = np.array([1] * 4 + [0] * 8)
  spk = np.array(["s1"] * 4 + ["s2"] * 4 + ["s3"] * 4, object)
  folds, how = linear.cv_folds(y, spk)
  assert "2 of 3 folds ran" in how and "8 of 12 clips are scored" in how
  cov = linear.covered(folds, 12)
  np.testing.assert_array_equal(cov, spk != "s1")
  x = np.random.default_rng(0).normal(size=(12, 4)) + y[:, None]
  oof = linear.oof_log_proba(x, y, folds, 1.0, np.array([0, 1]))
  assert np.isnan(oof[spk == "s1"]).all() and not np.isnan(oof[cov]).any()
  # The arms' CV UA is over the scored clips only: a cell on these clips.
  blocks = {"stats": x.astype(np.float32)}
  test = np.zeros(12, bool)
  test[[8, 9]] = True  # scored only
  idx = np.flatnonzero(~test)
  cell, how = linear_arms.linear_cell(blocks, y, idx, test, 2, spk)
  assert "of 3 folds ran" in how
  c = cell["baseline"]
  assert c["cv_covered"].sum() < idx.size
  right = c["cv_correct"][c["cv_covered"]]
  y_cov = y[idx][c["cv_covered"]]
  ua = np.mean([right[y_cov == k].mean() for k in np.unique(y_cov)])
  assert c["cv_ua"] == pytest.approx(ua)


def test_below_search_from_nothing_is_searched():
  """Fixed settings (one tried per arm, C and the compact statistics) on
  small cells; the search over feature sets and C above."""
  y, spk, blocks = _data()
  test = spk == "s0"
  idx = np.flatnonzero(~test)[::2]
  fixed, _ = linear_arms.linear_cell(blocks, y, idx, test, 3, spk,
                                     search=False)
  searched, _ = linear_arms.linear_cell(blocks, y, idx, test, 3, spk,
                                        search=True)
  for a in linear_arms.LINEAR:
    assert fixed[a]["tried"] == 1, a
    assert searched[a]["tried"] > 1, a
  assert fixed["baseline"]["hyper"] == {"features": "compact",
                                        "C": linear.FIXED_C}
  assert fixed["encoder"]["hyper"]["layer"] == "mix" or \
      fixed["encoder"]["hyper"]["layer"] == 1  # no names given: middle
  assert fixed["probe"]["hyper"]["weight"] == 1.0
  # The fixed reference is the same regression whatever is searched.
  assert fixed["reference_speaker"]["report"] == \
      searched["reference_speaker"]["report"]
  assert fixed["reference_speaker"]["report"] == \
      fixed["baseline_speaker"]["report"]


def test_ties_go_to_the_per_speaker_family_then_baseline_speaker():
  y = np.repeat([0, 1], 10)
  same = np.ones(20, bool)
  cell = {a: _arm(0.9, same) for a in
          ("baseline", "probe", "baseline_speaker", "probe_speaker")}
  assert linear_arms.candidates(cell)[:2] == ["baseline_speaker",
                                              "probe_speaker"]
  assert linear_arms.choose(cell, y, "one_se")[0] == "baseline_speaker"
  assert linear_arms.choose(cell, y, "best")[0] == "baseline_speaker"
  # The order before the per-speaker family led (the policy experiment's
  # `legacy`): the inductive baseline first.
  assert linear_arms.choose(cell, y, speaker_first=False)[0] == "baseline"


def test_the_nested_estimate_is_not_the_best_of_what_was_tried():
  """Labels that carry nothing: the best arm's own CV UA is the best of
  twelve arms' noise, above chance; the nested estimate makes the choice
  again inside every fold and lands near chance."""
  rng = np.random.default_rng(5)
  _, spk, blocks = _data(seed=3)
  y = rng.integers(0, 3, size=72)
  test = spk == "s0"
  idx = np.flatnonzero(~test)
  cell, _ = linear_arms.linear_cell(blocks, y, idx, test, 3, spk,
                                    search=False)
  best = max(cell[a]["cv_ua"] for a in linear_arms.LINEAR)
  nested = linear_arms.nested_cv_ua(blocks, y, idx, 3, spk, search=False)
  assert nested < best - 0.05
  assert abs(nested - 1 / 3) < 0.12


def test_the_recommendation_names_the_arm_with_its_own_ua():
  row = lambda u: [{"shots": 5, "ua_mean": u}]
  out = {"arms": {"baseline": row(0.4), "probe_speaker": row(0.8),
                  "baseline_speaker": row(0.6)},
         "choice": [{"shots": 5, "arm": "probe_speaker",
                     "arms": ["probe_speaker", "probe_speaker",
                              "baseline_speaker"], "draws": 3,
                     "test_ua": 0.7, "arm_test_ua": 0.8,
                     "margin_over_matched_baseline": 0.1}]}
  rec = lc.recommend(out)[0]
  assert rec["arm"] == "probe_speaker" and rec["ua_mean"] == 0.8
  assert rec["procedure_ua"] == 0.7
  assert rec["margin_over_baseline"] == pytest.approx(0.4)
  assert "`probe_speaker`" in rec["text"] and "80.0%" in rec["text"]
  assert "+40.0 points against the baseline (40.0%)" in rec["text"]
  assert "70.0%" in rec["text"]  # the procedure's, said as such


def test_below_choose_from_the_default_arm_is_used_and_said():
  y = np.repeat([0, 1], 10)
  worse = np.ones(20, bool)
  worse[:6] = False
  cell = {"baseline_speaker": _arm(0.7, worse),
          "probe_speaker": _arm(1.0, np.ones(20, bool))}
  assert linear_arms.choose(cell, y)[0] == "probe_speaker"
  arm, why = linear_arms.choose(cell, y, default_only=True)
  assert arm == "baseline_speaker" and "learning_curve.choose_from" in why
  # Without speakers the default is the inductive baseline.
  cell = {"baseline": _arm(0.7, worse), "probe": _arm(1.0, np.ones(20, bool))}
  assert linear_arms.choose(cell, y, default_only=True)[0] == "baseline"
  # The nested estimate of "no choice" is the default arm's own CV.
  _, spk, blocks = _data()
  yy = np.tile(np.repeat(np.arange(3), 4), 6)
  idx = np.flatnonzero(spk != "s0")
  test = spk == "s0"
  c, _ = linear_arms.linear_cell(blocks, yy, idx, test, 3, spk, search=False)
  nested = linear_arms.nested_cv_ua(blocks, yy, idx, 3, spk, search=False,
                                    default_only=True)
  # Same folds, fixed settings, no choice: exactly the arm's own CV UA.
  assert nested == pytest.approx(c["baseline_speaker"]["cv_ua"])
