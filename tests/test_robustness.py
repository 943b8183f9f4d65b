"""--mode robustness: fixed JSON shape, deterministic, resumable."""

import json
import os
import subprocess
import sys

import numpy as np

from fser_jax.frontend import wave_augment
from fser_jax.experiments import robustness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_degrade_is_deterministic_and_keeps_what_the_condition_says():
  rng = np.random.default_rng(0)
  wavs = [0.1 * rng.standard_normal(n).astype(np.float32)
          for n in (8000, 12345, 20000)]
  a = robustness.degrade(wavs, "speed_1.1", 16000)
  assert [w.size for w in a] == [int(n / 1.1) for n in (8000, 12345, 20000)]
  b1 = robustness.degrade(wavs, "snr_0", 16000, seed=3)
  b2 = robustness.degrade(wavs, "snr_0", 16000, seed=3)
  b3 = robustness.degrade(wavs, "snr_0", 16000, seed=4)
  for x, y, z, w in zip(b1, b2, b3, wavs):
    np.testing.assert_array_equal(x, y)
    assert not np.allclose(x, z)
    snr = 10 * np.log10(np.mean(w.astype(np.float64) ** 2)
                        / np.mean((x - w).astype(np.float64) ** 2))
    assert abs(snr) < 0.5  # snr_0: noise as loud as the clip
  clean = robustness.degrade(wavs, "clean", 16000)
  for x, w in zip(clean, wavs):
    np.testing.assert_array_equal(x, w)


def test_robustness_report_shape_determinism_and_resume(source_run, tmp_path,
                                                        monkeypatch):
  out = str(tmp_path / "rob")
  first = robustness.run(None, source_run, output_dir=out,
                                    conditions=["snr_10"])
  with open(os.path.join(out, "robustness.json")) as f:
    saved = json.load(f)
  assert [c["name"] for c in saved["conditions"]] == ["clean", "snr_10"]
  for c in saved["conditions"]:
    assert {"name", "ua", "acc", "unfamiliar"} <= set(c)
    assert 0 <= c["ua"] <= 1 and 0 <= c["acc"] <= 1
    assert 0 <= c["unfamiliar"] <= 1
  assert saved["conditions"][0]["drop_ua"] == 0
  assert os.path.exists(os.path.join(out, "robustness.png"))
  assert "| snr_10 |" in open(os.path.join(out, "robustness.md")).read()
  # Resume: conditions already scored are read back, not recomputed.
  calls = []
  real = robustness.score_condition
  monkeypatch.setattr(robustness, "score_condition",
                      lambda run, name, *a, **k: (calls.append(name),
                                                  real(run, name, *a, **k))[1])
  second = robustness.run(None, source_run, output_dir=out,
                                     conditions=["snr_10", "gain_+10"])
  assert calls == ["gain_+10"]
  assert second["conditions"][:2] == first["conditions"][:2]
  # Deterministic: a fresh folder gives the same figures.
  again = robustness.run(None, source_run, output_dir=str(tmp_path / "b"),
                                    conditions=["snr_10"])
  assert again["conditions"] == first["conditions"]


def test_robustness_mode_from_the_command_line(source_run, tmp_path):
  out = str(tmp_path / "cli")
  r = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch.py"), "--mode",
       "robustness", "--workdir", source_run, "--output_dir", out,
       "--conditions", "gain_-20"], capture_output=True, text=True,
      timeout=600)
  assert r.returncode == 0, r.stderr[-2000:]
  with open(os.path.join(out, "robustness.json")) as f:
    names = [c["name"] for c in json.load(f)["conditions"]]
  assert names == ["clean", "gain_-20"]
  # An unknown condition is a UserError (launch.py: one line, exit 2),
  # raised before anything is loaded.
  from fser_jax.errors import UserError
  import pytest
  with pytest.raises(UserError, match="underwater"):
    robustness.run(None, "/nonexistent", conditions=["underwater"])
  assert set(wave_augment.CONDITIONS) >= {"clean", "phone+snr_10"}


def test_predict_normalize_by(source_run, tmp_path):
  """--normalize_by: 'auto' is the training statistics for a run trained
  with global ones; 'folder' standardises each folder's files with their own
  statistics, 'file' each file with its own windows'."""
  import soundfile as sf
  from fser_jax.experiments import predict
  from fser_jax.runs.trained import TrainedRun
  rng = np.random.default_rng(0)
  t = np.arange(16000) / 16000
  for folder, level in (("a", 0.3), ("b", 0.05)):
    os.makedirs(tmp_path / folder)
    for k in range(3):
      x = level * np.sin(2 * np.pi * (150 + 60 * k) * t * (1 + 0.3 * t))
      x += 0.01 * level * rng.standard_normal(t.size)
      sf.write(tmp_path / folder / f"{k}.wav", x.astype(np.float32), 16000)
  run = TrainedRun(source_run)
  files = predict.expand([str(tmp_path)])
  probs = lambda by: np.array([[r[c] for c in run.classes] for r in
                               predict.predict_files(run, files,
                                                     progress=False,
                                                     normalize_by=by)])
  auto, none, folder, per_file = (probs(b) for b in
                                  ("auto", "none", "folder", "file"))
  np.testing.assert_array_equal(auto, none)
  assert not np.allclose(none, folder) and not np.allclose(folder, per_file)
  assert predict.chunks(files, "folder") == [files[:3], files[3:]]
  # Folder statistics: a file's result depends on its folder-mates only.
  alone = np.array([[r[c] for c in run.classes] for r in
                    predict.predict_files(run, files[:3], progress=False,
                                          normalize_by="folder")])
  np.testing.assert_allclose(alone, folder[:3], atol=1e-6)
