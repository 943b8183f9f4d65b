"""Calibration and selective prediction: hand-computed values, the fitted
temperature, thresholds from validation only, predict's abstain column."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from fser_jax.evaluation import calibration


def test_temperature_recovers_a_known_overconfidence():
  rng = np.random.default_rng(0)
  z = rng.normal(0, 1.5, (4000, 6))
  p = calibration.softmax(z)
  y = np.array([rng.choice(6, p=row) for row in p])  # calibrated by design
  t = calibration.fit_temperature(3.0 * z, y)  # logits 3x too confident
  assert t == pytest.approx(3.0, rel=0.08)
  over, fixed = calibration.softmax(3.0 * z), calibration.softmax(3.0 * z, t)
  assert np.array_equal(over.argmax(1), fixed.argmax(1))  # accuracy unchanged
  assert calibration.ece(fixed, y) < calibration.ece(over, y) / 2
  assert calibration.nll(fixed, y) < calibration.nll(over, y)


def test_ece_brier_aurc_by_hand():
  probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
  y = np.array([0, 1, 1, 1])
  # Bins of width 1/15: 0.9 and 0.8 fall in different bins, 0.7 and 0.6 too.
  # Each clip its own bin: |acc - conf| = 0.1, 0.8, 0.3, 0.4; ECE = mean.
  assert calibration.ece(probs, y) == pytest.approx((0.1 + 0.8 + 0.3 + 0.4) / 4)
  brier = np.mean([0.01 + 0.01, 0.64 + 0.64, 0.09 + 0.09, 0.16 + 0.16])
  assert calibration.brier(probs, y) == pytest.approx(brier)
  scores = np.array([0.9, 0.8, 0.7, 0.6])
  correct = np.array([1, 0, 1, 0], bool)
  # Kept accuracies 1, 1/2, 2/3, 1/2 -> risks 0, 1/2, 1/3, 1/2.
  assert calibration.aurc(scores, correct) == pytest.approx((0 + .5 + 1 / 3 + .5) / 4)
  assert calibration.acc_at(scores, correct, 0.5) == pytest.approx(0.5)
  assert calibration.acc_at(scores, correct, 0.75) == pytest.approx(2 / 3)


def test_thresholds_come_from_validation_only():
  val = np.linspace(0, 1, 101)
  assert calibration.threshold_for(val, 0.8) == pytest.approx(0.2)
  cal = {"temperature": 1.0, "val_confidence": [0.5, 0.6, 0.7, 0.8, 0.9],
         "val_distance": [1.0, 2.0, 3.0, 4.0, 5.0]}
  rng = np.random.default_rng(1)
  z = rng.normal(size=(50, 4))
  y = rng.integers(0, 4, 50)
  _, a = calibration.summarise(cal, z, y, rng.uniform(0, 6, 50),
                               z[:5], np.array(cal["val_distance"]))
  _, b = calibration.summarise(cal, z * 0.5, y, rng.uniform(0, 6, 50),
                               z[:5], np.array(cal["val_distance"]))
  # Other test logits, same validation: the same threshold.
  assert a["confidence"]["val_threshold_80"]["threshold"] == \
      b["confidence"]["val_threshold_80"]["threshold"]


def test_every_run_reports_calibration(source_run):
  with open(os.path.join(source_run, "report.json")) as f:
    rep = json.load(f)
  c = rep["calibration"]
  for k in ("temperature", "ece_before", "ece_after", "nll_before",
            "nll_after", "brier"):
    assert np.isfinite(c[k]), k
  assert c["nll_after"] <= c["nll_before"] + 1e-9 or c["temperature"] == 1.0
  assert set(rep["selective"]) == {"confidence", "entropy", "familiarity",
                                   "combined"}
  with open(os.path.join(source_run, "calibration.json")) as f:
    saved = json.load(f)
  assert len(saved["val_confidence"]) == rep["n_validation"]
  assert os.path.exists(os.path.join(source_run, "plots", "reliability.png"))


def test_predict_abstains_on_a_tone_and_says_why(source_run, tmp_path):
  from fser_jax.experiments import predict
  from fser_jax.runs.trained import TrainedRun
  sr = 16000
  t = np.arange(int(1.5 * sr)) / sr
  sf.write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t), sr)
  rows = predict.run(None, source_run, [str(tmp_path / "tone.wav")],
                      abstain_below="prob=0.999")
  (row,) = rows
  assert row["abstained"] == "yes"  # a tiny run is never 99.9% sure
  assert row["reason"] in ("low confidence", "both")
  run = TrainedRun(source_run)
  thr = run.confidence_threshold(0.8)
  rows = predict.run(None, source_run, [str(tmp_path / "tone.wav")],
                      abstain_below="coverage=0.8")
  (row,) = rows
  low = max(row[c] for c in run.classes) < thr
  unf = row["familiar"] == "no"
  assert (row["abstained"] == "yes") == (low or unf)
  assert row["reason"] == ("both" if low and unf else "low confidence" if low
                           else "unfamiliar" if unf else "")
  from fser_jax.errors import DataError
  with pytest.raises(DataError, match="coverage=C or prob=P"):
    predict.run(None, source_run, [str(tmp_path / "tone.wav")],
                 abstain_below="keep=0.8")


def test_predict_abstain_on_a_training_clip(source_run, tfds_dir, tmp_path):
  """A clip of the run's own training data at a negligible probability
  threshold: it abstains exactly when familiarity calls it unfamiliar."""
  from conftest import tiny_config
  from fser_jax.data import dataset_io
  from fser_jax.experiments import predict
  waveforms, _, _, meta = dataset_io.load_clips(tiny_config(tfds_dir).data)
  with open(os.path.join(source_run, "splits.csv")) as f:
    train = {l.split(",")[0] for l in f if l.rstrip().endswith(",train")}
  i = next(k for k, n in enumerate(meta["filename"]) if n in train)
  sf.write(tmp_path / "clip.wav", waveforms[i], 16000)
  (row,) = predict.run(None, source_run, [str(tmp_path / "clip.wav")],
                        abstain_below="prob=0.000001")
  assert row["abstained"] == ("yes" if row["familiar"] == "no" else "no")
  assert row["reason"] == ("unfamiliar" if row["familiar"] == "no" else "")
