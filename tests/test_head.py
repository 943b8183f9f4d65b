"""A linear head on a pretrained encoder as a run directory: trained by
--mode train with configs/encoder_head.py, then used by evaluate, predict
and robustness like any run (a tiny random Whisper as the encoder)."""

import csv
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest

from fser_jax.runs import head as head_lib
from fser_jax.runs import trained as inference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures", "whisper_tiny")


@pytest.mark.parametrize("n_features,n_rows,k", [(5, 60, 3), (40, 20, 3),
                                                 (6, 30, 2)])
def test_the_heads_linear_map_is_the_fitted_regression(n_features, n_rows, k):
  """Scaler, PCA (more features than rows) and the regression folded into
  one map give the pipeline's own probabilities; binary included."""
  from fser_jax.evaluation import linear
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n_rows, n_features)) * rng.uniform(0.1, 10, n_features)
  y = np.arange(n_rows) % k
  x[:, 0] += y
  w, b, _ = head_lib._fit(x, y, 0.3, np.arange(k))  # noqa: SLF001
  pipe = linear.logistic(0.3, x.shape).fit(x, y)  # noqa: SLF001
  z = x @ w + b
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  assert np.abs(p - pipe.predict_proba(x)).max() <= 1e-6


def test_a_clips_windows_never_straddle_a_fold():
  """With one training speaker, folds hold out whole clips: every clip's
  windows fall in the same held-out fold."""
  from fser_jax.evaluation import linear
  clips = np.repeat(np.arange(12), 3)  # 12 clips of 3 windows
  y = clips % 3
  groups, unit = head_lib.fold_groups(["ana"] * 36, clips)
  assert unit == "clips"
  folds, how = linear.cv_folds(y, groups, unit=unit)
  assert "whole clips held out (12 clips)" in how
  for _, held in folds:
    for c in set(clips[held].tolist()):
      assert set(np.flatnonzero(clips == c)) <= set(held.tolist())
  groups, unit = head_lib.fold_groups(["ana", "ben"] * 18, clips)
  assert unit == "speakers" and set(groups) == {"ana", "ben"}


def _config(tfds_dir, manifest, **kw):
  spec = importlib.util.spec_from_file_location(
      "encoder_head", os.path.join(ROOT, "configs", "encoder_head.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config(manifest)
  c.data.data_dir = tfds_dir
  c.encoder.path = kw.get("path", FIX)
  return c


@pytest.fixture(scope="module")
def head_run(tfds_dir, user_recordings, tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("head"))
  rep = head_lib.run(_config(tfds_dir, user_recordings), wd)
  return wd, rep


def test_a_head_run_reports_like_any_run(head_run):
  wd, rep = head_run
  assert rep["head"]["candidates"] == [0, 1, 2, "mix"]
  assert rep["head"]["layer"] in rep["head"]["candidates"]
  assert rep["head"]["C"] in (0.03, 0.1, 0.3, 1.0)
  assert "whole speakers held out" in rep["head"]["cv"]
  assert rep["n_test"] > 0 and rep["baseline"]["normalisation"] == "speaker"
  for f in ("report.md", "report.json", "splits.csv", "encoder_head.npz",
            "calibration.json", "familiarity.npz", "normalisation.json"):
    assert os.path.exists(os.path.join(wd, f)), f
  assert "A linear head on the frozen whisper encoder" in open(
      os.path.join(wd, "report.md")).read()
  # Read back, not retrained.
  assert head_lib.run(_config(*_cfg_args(wd)), wd) == json.load(
      open(os.path.join(wd, "report.json")))


def _cfg_args(wd):
  c = json.load(open(os.path.join(wd, "config.json")))
  return c["data"]["data_dir"], c["data"]["own_path"]


def test_evaluate_predict_and_robustness_use_the_head_run(head_run, tmp_path):
  """evaluate on the run's own test clips gives the report's numbers (one
  way from audio to probabilities); predict gives per-file probabilities in
  the run's classes; robustness scores the test split, its clean row the
  report's UA."""
  from fser_jax.experiments import evaluate, predict, robustness
  wd, rep = head_run
  run = inference.load_run(wd)
  assert isinstance(run, inference.EncoderHeadRun)
  _, own = _cfg_args(wd)
  base = os.path.dirname(own)
  rows = [r for r in csv.DictReader(open(os.path.join(wd, "splits.csv")))
          if r["split"] == "test"]
  manifest = tmp_path / "test.csv"
  with open(manifest, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["path", "label", "speaker"])
    for r in rows:
      w.writerow([os.path.join(base, r["filename"]), r["label"], r["speaker"]])
  ev = evaluate.run(None, wd, str(manifest), str(tmp_path / "ev"))
  assert ev["n_mapped"] == rep["n_test"] == len(rows)
  assert ev["unweighted_accuracy"] == pytest.approx(rep["unweighted_accuracy"])
  assert ev["accuracy"] == pytest.approx(rep["accuracy"])
  files = [os.path.join(base, r["filename"]) for r in rows[:3]]
  out = predict.run(None, wd, files, output=str(tmp_path / "p.csv"))
  assert {r["file"] for r in out} >= set(files)
  for r in out:
    assert sum(r[c] for c in run.classes) == pytest.approx(1.0, abs=1e-4)
  rb = robustness.run(None, wd, output_dir=str(tmp_path / "rb"),
                                 conditions=["clean", "snr_10"])
  clean = rb["conditions"][0]
  assert clean["name"] == "clean"
  assert clean["ua"] == pytest.approx(rep["unweighted_accuracy"])


def test_a_head_refuses_an_encoder_other_than_its_own(head_run, tmp_path):
  from safetensors.numpy import load_file, save_file
  from fser_jax.errors import CheckpointError
  wd, _ = head_run
  run_copy = tmp_path / "run"
  shutil.copytree(wd, run_copy)
  other = tmp_path / "other"
  shutil.copytree(FIX, other)
  p = load_file(str(other / "model.safetensors"))
  p["encoder.layer_norm.bias"] = p["encoder.layer_norm.bias"] + 1
  save_file(p, str(other / "model.safetensors"))
  cfg = json.load(open(run_copy / "config.json"))
  cfg["encoder"]["path"] = str(other)
  json.dump(cfg, open(run_copy / "config.json", "w"))
  with pytest.raises(CheckpointError, match="not the one this head was "
                     "trained on"):
    inference.load_run(str(run_copy))
