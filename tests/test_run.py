"""End to end: a tiny run writes every output, resumes, refuses a changed
config, names bad keys and files; predictions; the generalisation mode."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from fser_jax.frontend import audio
from fser_jax.experiments import generalisation
from fser_jax.experiments import predict
from fser_jax.runs import cnn
from fser_jax.train import rundir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tfds_dir, source_run):
  """conftest's `source_run` (a tiny run on fser/synthetic_small, 2 epochs),
  which no test here modifies: a test that trains on copies it first."""
  from conftest import tiny_config
  c = tiny_config(tfds_dir, **{"train.num_epochs": 2, "baseline": True})
  with open(os.path.join(source_run, "report.json")) as f:
    return source_run, c, json.load(f)


def test_run_writes_every_output(trained):
  workdir, c, rep = trained
  for name in ("config.json", "splits.csv", "metrics.jsonl", "report.json",
               "report.md", "plots/confusion_matrix.png", "plots/roc.png",
               "plots/training_curves.png"):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  with open(os.path.join(workdir, "report.json")) as f:
    saved = json.load(f)
  for k in ("classes", "n_test", "accuracy", "unweighted_accuracy",
            "macro_f1", "weighted_f1", "per_class", "confusion_matrix",
            "by_corpus", "by_gender"):
    assert k in saved, k
  assert len(saved["classes"]) == 8
  cm = np.asarray(saved["confusion_matrix"])
  np.testing.assert_allclose(cm.sum(1), 1.0, atol=1e-9)
  for k in ("accuracy", "unweighted_accuracy", "macro_f1", "weighted_f1"):
    assert 0.0 <= saved[k] <= 1.0
  # Accuracy equals the confusion matrix's diagonal weighted by support.
  support = np.array([saved["per_class"][n]["support"] for n in saved["classes"]])
  assert saved["n_test"] == support.sum() == 48  # 3 of 12 speakers x 16 clips
  np.testing.assert_allclose(saved["accuracy"],
                             (np.diag(cm) * support).sum() / support.sum())
  assert set(saved["by_corpus"]) == {"synth_alpha", "synth_beta"}
  fam = saved["familiarity"]
  assert os.path.exists(os.path.join(workdir, "familiarity.npz"))
  assert 0.0 <= fam["test_unfamiliar_fraction"] <= 1.0 and fam["quantile"] == 0.99
  assert fam["threshold"] > 0
  lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
  train_lines = [x for x in lines if "train_loss" in x]
  assert train_lines[-1]["step"] == 2 * (96 // 16)  # 2 epochs of 96 clips


def test_splits_csv_is_speaker_independent(trained):
  workdir, _, _ = trained
  with open(os.path.join(workdir, "splits.csv")) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 192
  spk = {s: {r["speaker"] for r in rows if r["split"] == s}
         for s in ("train", "validation", "test")}
  assert spk["train"] and spk["test"] and spk["validation"]
  assert not spk["train"] & spk["test"]
  assert not spk["train"] & spk["validation"]
  assert not spk["validation"] & spk["test"]


def test_resume_continues_from_the_saved_step(trained, tmp_path):
  import shutil
  workdir = str(tmp_path / "copy")  # the shared run stays as it was
  shutil.copytree(trained[0], workdir)
  c = trained[1]
  c2 = c.copy_and_resolve_references()
  with c2.unlocked():
    c2.train.num_epochs = 3
  cnn.run(c2, workdir)
  lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
  steps = [x["step"] for x in lines if "train_loss" in x]
  # Steps 1..12 from the first run, then 13..18: no step trained twice.
  assert steps == sorted(set(steps)) and steps[-1] == 18
  assert 16 in steps and 12 in steps


def test_changed_config_is_refused_naming_the_key(trained):
  workdir, c, _ = trained
  c2 = c.copy_and_resolve_references()
  with c2.unlocked():
    c2.train.learning_rate = 0.5
  with pytest.raises(rundir.WorkdirConflict, match="train.learning_rate"):
    cnn.run(c2, workdir)


def test_unknown_config_key_is_named(tmp_path):
  r = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch.py"), "--config",
       os.path.join(ROOT, "configs/fser_fast.py"), "--config.train.bogus_key=3",
       "--workdir", str(tmp_path / "w")], capture_output=True, text=True,
      timeout=300)
  assert r.returncode != 0
  assert "bogus_key" in r.stderr


def test_unreadable_audio_is_named(tmp_path):
  bad = tmp_path / "broken.wav"
  bad.write_bytes(b"RIFF....WAVEfmt nonsense")
  with pytest.raises(audio.AudioError, match="broken.wav.*cannot be decoded"):
    audio.load_audio(bad, 16000)
  with pytest.raises(audio.AudioError, match="is a directory"):
    audio.load_audio(tmp_path, 16000)
  (tmp_path / "empty.wav").write_bytes(b"")
  with pytest.raises(audio.AudioError, match="empty.wav.*0 bytes"):
    audio.load_audio(tmp_path / "empty.wav", 16000)
  sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 8000)
  with pytest.raises(audio.AudioError, match="silent"):
    audio.load_audio(tmp_path / "silent.wav", 16000)
  sf.write(tmp_path / "short.wav", np.ones(100, np.float32) * 0.1, 16000)
  with pytest.raises(audio.AudioError, match="too short"):
    audio.load_audio(tmp_path / "short.wav", 16000, min_samples=512)


def _tone(path, sr, seconds, channels=1):
  t = np.arange(int(sr * seconds)) / sr
  x = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
  if channels > 1:
    x = np.stack([x * (0.5 + 0.5 * k) for k in range(channels)], -1)
  sf.write(path, x.astype(np.float32), sr)


def test_predict_on_own_files(trained, tmp_path, capsys):
  workdir, _, _ = trained
  _tone(tmp_path / "mono8k.wav", 8000, 1.5)
  _tone(tmp_path / "stereo48k.wav", 48000, 2.0, channels=2)
  _tone(tmp_path / "long.flac", 22050, 11.0)  # > 4 s windows every 2 s
  (tmp_path / "bad.wav").write_bytes(b"garbage")
  out = tmp_path / "pred.csv"
  rows = predict.run(None, workdir, [str(tmp_path / "*.wav"),
                                str(tmp_path / "long.flac")], output=str(out))
  by_file = {}
  for r in rows:
    by_file.setdefault(os.path.basename(r["file"]), []).append(r)
  assert set(by_file) == {"mono8k.wav", "stereo48k.wav", "long.flac", "bad.wav"}
  assert "cannot be decoded" in by_file["bad.wav"][0]["error"]
  other = ("file", "window", "start_s", "end_s", "prediction", "error",
           "distance", "familiar")
  classes = sorted({k for r in rows for k in r if k not in other})
  assert len(classes) == 8
  # A file's row is its windows' mean, class by class.
  for c in classes:
    np.testing.assert_allclose(
        by_file["long.flac"][-1][c],
        np.mean([r[c] for r in by_file["long.flac"][:-1]]), atol=1e-6)
  assert [r["window"] for r in by_file["mono8k.wav"]] == ["all"]
  threshold = predict.TrainedRun(workdir).familiarity["threshold"]
  for rows_ in by_file.values():
    for r in rows_:
      if not r["error"]:  # 'familiar' is the saved threshold's verdict
        assert r["familiar"] == ("yes" if r["distance"] <= threshold else "no")
  np.testing.assert_allclose(  # the file's distance: its windows' mean
      by_file["long.flac"][-1]["distance"],
      np.mean([r["distance"] for r in by_file["long.flac"][:-1]]))
  long_rows = by_file["long.flac"]
  # 11 s, windows of 4 s every 2 s: starts 0,2,4,6 and 7 (end-aligned) + 'all'.
  assert [r["window"] for r in long_rows] == ["0", "1", "2", "3", "4", "all"]
  assert long_rows[-2]["end_s"] == "11.00"
  with open(out) as f:
    assert len(list(csv.DictReader(f))) == len(rows)
  assert "long.flac" in capsys.readouterr().out


def test_inputs_are_standardised_with_training_statistics_only(trained):
  from fser_jax.data import input_pipeline
  _, c, _ = trained
  data = input_pipeline.load(c, progress=False)
  train, _ = data.subset("train")
  # Per channel (RGB: 3), zero mean and unit variance over the training split.
  np.testing.assert_allclose(train.mean((0, 1, 2), dtype=np.float64), 0.0,
                             atol=1e-5)
  np.testing.assert_allclose(train.std((0, 1, 2), dtype=np.float64), 1.0,
                             atol=1e-4)
  assert len(data.norm[0]) == 3
  raw = data.raw_images()
  assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5  # the [0, 1] image
  # The statistics are the training split's own, and test clips played no
  # part: with them included, the mean would be measurably different.
  train_raw = raw[data.split == "train"]
  np.testing.assert_allclose(data.norm[0],
                             train_raw.mean((0, 1, 2), dtype=np.float64),
                             atol=1e-5)
  with_test = raw[data.split != "validation"].mean((0, 1, 2), dtype=np.float64)
  assert np.abs(with_test - data.norm[0]).max() > 1e-3
  plain = input_pipeline.load(_with(c, standardize=False), progress=False)
  np.testing.assert_allclose(plain.images, raw, atol=1e-5)


def test_predict_matches_evaluation_on_the_same_clips(trained):
  """No train/serve skew: the run loaded for inference, from waveforms, gives
  the same probabilities as the run's model on the run's (standardised) test
  images, which came from the TFDS int16 audio."""
  from fser_jax.evaluation import calibration
  from fser_jax.data import input_pipeline
  from fser_jax.data import dataset_io
  from fser_jax.evaluation import metrics
  from fser_jax.model import forward
  from fser_jax.runs.trained import TrainedRun
  workdir, c, _ = trained
  waveforms, _, _, _ = dataset_io.load_clips(c.data)
  data = input_pipeline.load(c, progress=False)
  test = np.flatnonzero(data.split == "test")[:8]
  p = TrainedRun(workdir)
  out = p.classify([waveforms[i] for i in test])
  eval_fn = forward.make_eval_fn(p.graphdef)
  logits = forward.predict_logits(eval_fn, p.params, data.images[test], 16)
  # Served probabilities are calibrated: softmax(logits / T), T from
  # the run's validation split.
  direct = calibration.softmax(logits, p.temperature)
  np.testing.assert_allclose(out.probs, direct, atol=1e-5)
  assert np.array_equal(out.probs.argmax(1), calibration.softmax(logits).argmax(1))
  # A clip's probabilities are its windows' mean (one window here).
  for wp, pr in zip(out.window_probs, out.probs):
    np.testing.assert_allclose(wp.mean(0), pr, atol=1e-7)
  # Familiarity: the same distances from waveforms as from the run's images,
  # and the report's share of unfamiliar test clips is recomputed exactly.
  np.testing.assert_allclose(out.distance, p.forward(data.images[test])[1],
                             rtol=1e-4)
  all_test = data.images[data.split == "test"]
  with open(os.path.join(workdir, "report.json")) as f:
    fam = json.load(f)["familiarity"]
  probs, d = p.forward(all_test)
  assert fam["test_unfamiliar_fraction"] == pytest.approx(
      np.mean(d > fam["threshold"]))
  assert fam["test_median_distance"] == pytest.approx(np.median(d), rel=1e-4)
  _, y_test = data.subset("test")
  right = probs.argmax(1) == y_test
  unf = d > fam["threshold"]
  if (~unf).any():
    assert fam["accuracy_familiar"] == pytest.approx(right[~unf].mean())


def _with(c, **features):
  c = c.copy_and_resolve_references()
  for k, v in features.items():
    c.features[k] = v
  return c


def test_predict_without_checkpoint_is_a_clear_error(tmp_path):
  from fser_jax.errors import CheckpointError
  from fser_jax.runs.trained import TrainedRun
  with pytest.raises(CheckpointError, match="no config.json"):
    TrainedRun(str(tmp_path))


def test_generalisation_mode(tfds_dir, tmp_path, monkeypatch):
  from conftest import tiny_config
  c = tiny_config(tfds_dir, **{"data.num_folds": 2, "train.num_epochs": 1})
  out = generalisation.run(c, str(tmp_path))
  assert set(out["protocols"]) == {"paper", "speaker", "corpus"}
  assert len(out["protocols"]["speaker"]["folds"]) == 2
  assert set(out["per_held_out_corpus"]) == {"synth_alpha", "synth_beta"}
  for p, res in out["protocols"].items():
    accs = []
    for f in res["folds"]:
      with open(tmp_path / p / f"fold_{f['fold']}" / "report.json") as fh:
        rep = json.load(fh)
      for k in ("accuracy", "unweighted_accuracy", "macro_f1"):
        assert f[k] == rep[k]
      assert f["unfamiliar"] == rep["familiarity"]["test_unfamiliar_fraction"]
      assert f["accuracy_familiar"] == rep["familiarity"]["accuracy_familiar"]
      accs.append(rep["accuracy"])
    assert res["accuracy"]["mean"] == pytest.approx(np.mean(accs))
    assert res["accuracy"]["std"] == pytest.approx(np.std(accs))
  for name in ("generalisation.json", "generalisation.md", "generalisation.png"):
    assert (tmp_path / name).exists()
  # Running it again reads the finished folds back instead of retraining.
  def no_training(*a, **k):
    raise AssertionError("a finished fold was trained again")
  monkeypatch.setattr(generalisation.run_lib, "run",
                      no_training)
  again = generalisation.run(c, str(tmp_path))
  assert again["protocols"] == out["protocols"]


def test_cross_corpus_matrix(tfds_dir, tmp_path, monkeypatch):
  """--protocols cross: one run per corpus; the diagonal is that run's own
  (speaker-independent) test split, the other cells its UA on every clip of
  the other corpus; a rerun reads the rows back."""
  from conftest import tiny_config
  c = tiny_config(tfds_dir, **{"train.num_epochs": 1, "baseline": True})
  out = generalisation.run(c, str(tmp_path), ["cross"])
  cross = out["cross"]
  assert cross["corpora"] == ["synth_alpha", "synth_beta"]
  for i, src in enumerate(cross["corpora"]):
    with open(tmp_path / "cross" / f"fold_{i}" / "report.json") as f:
      rep = json.load(f)
    assert cross["ua"][i][i] == rep["unweighted_accuracy"]
    assert cross["baseline_ua"][i][i] == rep["baseline"]["unweighted_accuracy"]
    assert set(rep["by_corpus"]) == {src}  # trained and tested on src only
    for j in range(2):
      assert 0 <= cross["ua"][i][j] <= 1 and 0 <= cross["baseline_ua"][i][j] <= 1
  with open(tmp_path / "cross.json") as f:
    assert json.load(f)["ua"] == cross["ua"]
  assert (tmp_path / "cross.png").exists()
  monkeypatch.setattr(generalisation.run_lib, "run",
                      lambda *a, **k: (_ for _ in ()).throw(AssertionError))
  assert generalisation.run(c, str(tmp_path), ["cross"])["cross"] == cross


def _small(c, tmp_path, epochs: int):
  """An own-data config shrunk for tests, its dataset built under tmp_path."""
  c.data.data_dir = str(tmp_path / "tfds")
  c.model.filters = (8, 8, 16, 16)
  c.model.dense = (32, 16)
  c.train.batch_size = 8
  c.train.num_epochs = epochs
  return c


def test_own_data_trains_end_to_end(tmp_path):
  """A generated folder with 3 labels through configs/own_data.py."""
  import importlib.util
  rng = np.random.default_rng(0)
  for li, lab in enumerate(("angry", "calm", "happy")):
    (tmp_path / "data" / lab).mkdir(parents=True)
    for k in range(8):
      sr = (8000, 22050, 44100)[k % 3]
      t = np.arange(int(sr * 0.6)) / sr
      wav = 0.3 * np.sin(2 * np.pi * (120 + 150 * li) * t * (1 + 0.1 * k))
      sf.write(tmp_path / "data" / lab / f"c{k}.wav",
               (wav + 0.01 * rng.standard_normal(t.size)).astype(np.float32), sr)
  spec = importlib.util.spec_from_file_location(
      "own", os.path.join(ROOT, "configs", "own_data.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = _small(mod.get_config(str(tmp_path / "data")), tmp_path, epochs=2)
  rep = cnn.run(c, str(tmp_path / "run"))
  assert rep["classes"] == ["angry", "calm", "happy"]
  assert rep["n_test"] == 6  # 20% of 24, stratified
  with open(tmp_path / "run" / "splits.csv") as f:
    assert len(list(csv.DictReader(f))) == 24


def test_generalisation_on_own_manifest_with_speakers(tmp_path):
  """A CSV manifest with a speaker column: the speaker protocol runs one fold
  per speaker (leave-one-speaker-out) and the corpus protocol is skipped."""
  rng = np.random.default_rng(1)
  rows = []
  (tmp_path / "clips").mkdir()
  for spk in ("ann", "bob", "cyd", "dan"):
    for li, lab in enumerate(("angry", "calm")):
      for k in range(4):
        sr = 16000
        t = np.arange(int(sr * 0.5)) / sr
        f0 = (110 if spk in ("bob", "dan") else 200) * (1 + 0.6 * li)
        wav = 0.3 * np.sin(2 * np.pi * f0 * t * (1 + 0.05 * k))
        name = f"clips/{spk}_{lab}_{k}.wav"
        sf.write(tmp_path / name,
                 (wav + 0.01 * rng.standard_normal(t.size)).astype(np.float32), sr)
        rows.append(f"{name},{lab},{spk}")
  (tmp_path / "m.csv").write_text("path,label,speaker\n" + "\n".join(rows) + "\n")
  from fser_jax import config as config_lib
  c = config_lib.base()
  c.data.dataset = "own"
  c.data.own_path = str(tmp_path / "m.csv")
  c = _small(c, tmp_path, epochs=1)
  out = generalisation.run(c, str(tmp_path / "gen"))
  res = out["protocols"]
  assert set(res) == {"paper", "speaker"}  # one corpus: no corpus protocol
  folds = res["speaker"]["folds"]
  assert sorted(f["test"].split("_")[-1] for f in folds) == ["ann", "bob", "cyd", "dan"]
  assert all(f["n_test"] == 8 for f in folds)
  for f in folds:
    with open(tmp_path / "gen" / "speaker" / f"fold_{f['fold']}" / "splits.csv") as fh:
      split = list(csv.DictReader(fh))
    test_spk = {r["speaker"] for r in split if r["split"] == "test"}
    train_spk = {r["speaker"] for r in split if r["split"] == "train"}
    assert len(test_spk) == 1 and not test_spk & train_spk


def test_overwrite_starts_anew_even_with_the_same_config(tiny, tmp_path):
  c = tiny()
  rundir.prepare(c, str(tmp_path))
  for d in rundir.DIRS:
    (tmp_path / d).mkdir()
  for f in rundir.FILES[1:]:  # all but config.json
    (tmp_path / f).write_text("old")
  rundir.prepare(c, str(tmp_path))  # same config: kept, to resume
  assert all((tmp_path / d).exists() for d in rundir.DIRS)
  rundir.prepare(c, str(tmp_path), overwrite=True)
  assert not any((tmp_path / d).exists() for d in rundir.DIRS)
  assert [f for f in rundir.FILES if (tmp_path / f).exists()] == ["config.json"]
  assert json.loads((tmp_path / "config.json").read_text()) == rundir.config_dict(c)


def test_launch_predict_takes_several_paths_after_one_audio_flag(trained,
                                                                 tmp_path):
  """`--audio a.wav b.wav` is what a shell glob expands to."""
  workdir, _, _ = trained
  _tone(tmp_path / "a.wav", 16000, 1.0)
  _tone(tmp_path / "b.wav", 22050, 1.2)
  out = tmp_path / "p.csv"
  r = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch.py"), "--mode", "predict",
       "--workdir", workdir, "--audio", str(tmp_path / "a.wav"),
       str(tmp_path / "b.wav"), "--output", str(out)],
      capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  with open(out) as f:
    files = [os.path.basename(row["file"]) for row in csv.DictReader(f)]
  assert files == ["a.wav", "b.wav"]
  r = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch.py"), "--config",
       os.path.join(ROOT, "configs/fser_fast.py"), "--workdir",
       str(tmp_path / "w"), "stray.wav"], capture_output=True, text=True,
      timeout=300)
  assert r.returncode != 0 and "Unexpected arguments: stray.wav" in r.stderr


def test_long_recording_is_streamed_in_bounded_memory(trained, tmp_path):
  """A 30-minute recording (8 kHz: resampled to the run's 16 kHz on the way)
  goes through predict block by block: the Python-side peak stays far below
  what the whole file would take (its 16 kHz float32 samples alone: 115 MB),
  and the rows are those of 4 s windows every 2 s over the whole file."""
  import tracemalloc
  workdir, _, _ = trained
  path = tmp_path / "hour.wav"
  sr, minutes = 8000, 30
  t = np.arange(sr * 60) / sr
  minute = (0.3 * np.sin(2 * np.pi * 180 * t)
            * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
  with sf.SoundFile(path, "w", sr, 1, "PCM_16") as f:
    for _ in range(minutes):
      f.write(minute)
  run_ = predict.TrainedRun(workdir)
  tracemalloc.start()
  try:
    rows = predict.predict_files(run_, [str(path)], progress=False)
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  # One block of 64 windows of 4 s (16 MB of samples) and its copies; the
  # old whole-file path held 57 MB (8 kHz) + 115 MB (16 kHz) before windowing.
  assert peak < 64e6, f"peak {peak / 1e6:.0f} MB"
  windows = [r for r in rows if r["window"] != "all"]
  n = (minutes * 60 - 4) // 2 + 1  # starts 0, 2, ..., 1796 s
  assert len(windows) == n and windows[-1]["end_s"] == f"{minutes * 60:.2f}"
  assert rows[-1]["window"] == "all" and not rows[-1]["error"]


def test_streamed_classification_equals_the_whole_file(trained, tmp_path):
  from fser_jax.runs.trained import TrainedRun
  workdir, _, _ = trained
  _tone(tmp_path / "a.wav", 22050, 13.0)
  run_ = TrainedRun(workdir)
  whole = run_.load_audio(str(tmp_path / "a.wav"))
  for own, groups in ((False, None), (True, [0])):
    ref = run_.classify([whole], groups=groups)
    got = run_.classify_stream(str(tmp_path / "a.wav"), own_statistics=own)
    assert got.window_starts == ref.window_starts  # 0, 2, 4, 6, 8, 9 s
    np.testing.assert_allclose(got.window_probs[0], ref.window_probs[0],
                               atol=1e-5)
    np.testing.assert_allclose(got.probs, ref.probs, atol=1e-5)


def test_time_keeping_front_end_end_to_end(tiny, tmp_path):
  """features.kind='logmel_time' with statistics pooling and SpecAugment
  masks: trains, reports, and serves audio with the same probabilities as
  the run's own stored images (no train/serve skew through tiling or
  cropping)."""
  from fser_jax.data import input_pipeline
  from fser_jax.data import dataset_io
  from fser_jax.runs.trained import TrainedRun
  c = tiny(**{"features.kind": "logmel_time", "model.time_pool": "mean_std", "augment.horizontal_flip": False,
              "augment.zoom": 0.0, "augment.time_masks": 1,
              "augment.freq_masks": 1, "train.num_epochs": 2})
  workdir = str(tmp_path / "run")
  cnn.run(c, workdir)
  with open(os.path.join(workdir, "report.json")) as f:
    assert 0.0 <= json.load(f)["accuracy"] <= 1.0
  data = input_pipeline.load(c, progress=False)
  assert data.images.shape[1:] == (64, 128, 1)
  waveforms, _, _, _ = dataset_io.load_clips(c.data)
  test = np.flatnonzero(data.split == "test")[:6]
  p = TrainedRun(workdir)
  out = p.classify([waveforms[i] for i in test])
  np.testing.assert_allclose(out.probs, p.forward(data.images[test])[0],
                             atol=1e-5)


def test_report_and_evaluate_agree_on_clips_longer_than_the_window(
    tiny, tmp_path):
  """One way from a clip to probabilities: with windows shorter than the
  clips (every test clip is cut into several), the run's report and
  `--mode evaluate`'s scoring of the same test clips give the same numbers;
  scoring the whole-clip training images instead would not."""
  from fser_jax.data import input_pipeline
  from fser_jax.runs import scoring
  from fser_jax.runs.trained import TrainedRun
  c = tiny(**{"train.num_epochs": 1, "predict.window_seconds": 0.5,
              "predict.hop_seconds": 0.25})
  workdir = str(tmp_path / "run")
  rep = cnn.run(c, workdir)
  data = input_pipeline.load(c, progress=False)
  test = np.flatnonzero(data.split == "test")
  wavs = input_pipeline.waveforms(c, data)
  tr = TrainedRun(workdir)
  ev, _ = scoring.evaluate(tr, [wavs[i] for i in test],
                           [data.classes[data.labels[i]] for i in test],
                           data.meta_of("test"))
  out = tr.classify([wavs[i] for i in test])
  assert min(len(w) for w in out.window_probs) >= 2  # every clip windowed
  for k in ("accuracy", "unweighted_accuracy", "macro_f1", "macro_auc",
            "confusion_counts"):
    assert ev[k] == rep[k], k
  assert (ev["familiarity"]["test_unfamiliar_fraction"]
          == rep["familiarity"]["test_unfamiliar_fraction"])
  # Scoring the whole-clip images (what training saw) instead would give
  # other outputs: the parity above is not true of any two ways.
  _, whole_d = tr.forward(data.images[test])
  assert np.abs(whole_d - out.distance).max() > 0.01 * out.distance.mean()


def test_a_run_saved_by_0_2_0_loads_and_predicts_the_same():
  """tests/fixtures/run_0_2_0 was written by fser_jax 0.2.0, before the
  library moved into packages (a tiny run on fser/synthetic_small, one
  epoch; made_with.json). Today's code completes its config over the base,
  restores its best checkpoint, and gives the probabilities and embedding
  0.2.0 gave on the same three clips (expected.npz, written by 0.2.0)."""
  from fser_jax.runs import trained
  d = os.path.join(os.path.dirname(__file__), "fixtures", "run_0_2_0")
  want = np.load(os.path.join(d, "expected.npz"))
  run = trained.load_run(d)
  sr = int(want["sample_rate"])
  assert run.sample_rate == sr and run.step > 0
  rng = np.random.default_rng(0)
  t = np.arange(int(1.5 * sr)) / sr
  wavs = [(0.3 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
           + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
          for f in (140.0, 230.0, 320.0)]
  out = run.classify(wavs, groups=None)
  np.testing.assert_allclose(out.probs, want["probs"], rtol=0, atol=1e-6)
  np.testing.assert_allclose(out.embedding, want["embedding"], rtol=1e-5,
                             atol=1e-5)
  assert out.probs.shape == (3, 8) and not np.allclose(
      out.embedding[0], out.embedding[1])
