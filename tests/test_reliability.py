"""Interrupted runs lose nothing and resume exactly; bad input everywhere gets
a clear message; results are reproducible from the seed."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import soundfile as sf

from fser_jax.frontend import audio
from fser_jax.train import checkpoints
from fser_jax.data import input_pipeline
from fser_jax.data import dataset_io
from fser_jax.train import rundir
from fser_jax.runs import cnn
from fser_jax.data import splits
from fser_jax.train import loop as train
from fser_jax.train import step as step_lib
from fser_jax.train import optimizer as state_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(cfg, workdir):
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  return subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "launch.py"), "--config", cfg,
       "--workdir", str(workdir)], stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True, env=env)


def _final_params(workdir, cfg_overrides, data_dir):
  from conftest import tiny_config
  c = tiny_config(data_dir, **cfg_overrides)
  _, state, _ = state_lib.create(c, 8, 3, steps_per_epoch=6)
  ck = checkpoints.Checkpoints(str(workdir))
  restored = ck.restore(checkpoints.abstract_like(state))
  ck.close()
  return int(restored["step"]), jax.tree.map(np.asarray, restored["params"])


def _wait_for_step(workdir, step, proc, timeout=240):
  path = os.path.join(workdir, "metrics.jsonl")
  t0 = time.time()
  while time.time() - t0 < timeout:
    if proc.poll() is not None:
      raise AssertionError("run ended early:\n" + proc.stdout.read()[-3000:])
    if os.path.exists(path):
      with open(path) as f:
        steps = [json.loads(l)["step"] for l in f if l.strip()]
      if steps and max(steps) >= step:
        return
    time.sleep(0.2)
  raise AssertionError("no progress")


OVR = {"train.num_epochs": 12, "train.steps_per_dispatch": 2,
       "train.checkpoint_every_epochs": 2}


def test_sigterm_then_sigkill_then_resume_to_the_same_parameters(
    tfds_dir, tmp_path):
  """A real training process: SIGTERM (checkpoint at the stop step, exit
  143, 'how to resume'), resumed and then SIGKILL'd (no clean-up at all),
  resumed to the end: the final parameters are bitwise an uninterrupted
  run's (trained in this process: the same code and XLA flags)."""
  from conftest import tiny_config
  from conftest import tiny_config_file
  cfg = tiny_config_file(tmp_path / "tiny_cfg.py", tfds_dir, **OVR)
  workdir = tmp_path / "run"
  proc = _launch(cfg, workdir)
  _wait_for_step(str(workdir), 14, proc)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]
  assert "Run the same command to resume" in out
  # The checkpoint is at the step where it stopped, not an epoch boundary.
  ck = checkpoints.Checkpoints(str(workdir))
  stopped = ck.latest_step()
  ck.close()
  lines = [json.loads(l) for l in open(workdir / "metrics.jsonl")]
  assert stopped == max(l["step"] for l in lines) >= 14
  proc = _launch(cfg, workdir)
  _wait_for_step(str(workdir), stopped + 16, proc)
  proc.send_signal(signal.SIGKILL)
  proc.communicate(timeout=120)
  assert proc.returncode == -signal.SIGKILL
  assert not (workdir / "report.json").exists()
  proc = _launch(cfg, workdir)
  out, _ = proc.communicate(timeout=600)
  assert proc.returncode == 0, out[-3000:]
  assert "Resuming from the checkpoint at step" in out
  step, params = _final_params(workdir, OVR, tfds_dir)
  ref = cnn.run(tiny_config(tfds_dir, **OVR),
                               str(tmp_path / "ref"))
  assert ref is not None
  ref_step, ref_params = _final_params(tmp_path / "ref", OVR, tfds_dir)
  assert step == ref_step == 72
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
    np.testing.assert_array_equal(a, b)  # bitwise, across processes too
  lines = [json.loads(l) for l in open(workdir / "metrics.jsonl")]
  steps = [l["step"] for l in lines if "train_loss" in l]
  assert steps == sorted(set(steps))  # no step logged twice after resuming


class _Killed(BaseException):
  """Stands for the process dying: not an Exception, so nothing catches it."""


def _kill_at(monkeypatch, step: int, during_checkpoint_write: bool = False):
  """The next fit dies when it reaches `step`: before the dispatch that
  starts there, or (`during_checkpoint_write`) while writing the checkpoint
  of that step, leaving what a killed orbax write leaves on disk (the step's
  `.orbax-checkpoint-tmp` folder, without its commit marker and with part of
  its files)."""
  import shutil
  original_chunk = step_lib.make_train_chunk
  original_save = checkpoints.Checkpoints.save_latest

  def make(*a, **kw):
    chunk = original_chunk(*a, **kw)

    def wrapped(state, *rest):
      if not during_checkpoint_write and int(state["step"]) == step:
        raise _Killed
      return chunk(state, *rest)
    return wrapped

  def save_latest(self, s, state):
    original_save(self, s, state)
    if during_checkpoint_write and s == step:
      self.latest.wait_until_finished()
      d = os.path.join(str(self.latest.directory), str(s))
      tmp = d + ".orbax-checkpoint-tmp"
      os.rename(d, tmp)
      os.remove(os.path.join(tmp, "commit_success.txt"))
      os.remove(os.path.join(tmp, "_CHECKPOINT_METADATA"))
      shutil.rmtree(os.path.join(tmp, "default", "ocdbt.process_0"))
      raise _Killed

  monkeypatch.setattr(step_lib, "make_train_chunk", make)
  monkeypatch.setattr(checkpoints.Checkpoints, "save_latest", save_latest)


def test_resume_is_exact_from_every_kill_point(tiny, tmp_path, monkeypatch):
  """Killed before the first checkpoint, between checkpoints, right after
  one, and during a checkpoint's write, then resumed each time: the final
  parameters, optimizer state and every logged loss are bitwise those of an
  uninterrupted run (same process, same compiled programs)."""
  c = tiny(**{"train.num_epochs": 4, "train.steps_per_dispatch": 2})
  data = input_pipeline.load(c, progress=False)  # 6 steps/epoch, 24 steps
  ref = train.fit(c, data, str(tmp_path / "ref"))
  workdir = str(tmp_path / "killed")
  resumed_from = []
  for step, in_write in ((4, False), (8, False), (12, False), (18, True)):
    with monkeypatch.context() as m:
      _kill_at(m, step, in_write)
      with pytest.raises(_Killed):
        train.fit(c, data, workdir)
    ck = checkpoints.Checkpoints(workdir)
    resumed_from.append(ck.latest_step())
    ck.close()
  # A checkpoint every epoch (6 steps); the write of step 18's was killed.
  assert resumed_from == [None, 6, 12, 12]
  out = train.fit(c, data, workdir)
  assert int(out.final_state["step"]) == 24
  for a, b in zip(jax.tree.leaves(out.final_state),
                  jax.tree.leaves(ref.final_state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  for a, b in zip(jax.tree.leaves(out.state), jax.tree.leaves(ref.state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # best too
  got = [(h["step"], h["train_loss"]) for h in out.history
         if "train_loss" in h]
  want = [(h["step"], h["train_loss"]) for h in ref.history
          if "train_loss" in h]
  assert got == want  # each step logged once, with the same loss
  lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [(h["step"], h["train_loss"]) for h in lines if "train_loss" in h] \
      == want


def test_same_seed_same_results_other_seed_same_splits(tiny, tmp_path):
  a = cnn.run(tiny(), str(tmp_path / "a"))
  b = cnn.run(tiny(), str(tmp_path / "b"))
  read = lambda d, f: open(tmp_path / d / f).read()
  assert read("a", "report.json") == read("b", "report.json")
  assert read("a", "splits.csv") == read("b", "splits.csv")
  assert a["accuracy"] == b["accuracy"]
  # The split depends on data.split_seed only: another training seed keeps
  # it (and initialises differently), another split seed changes it.
  split = lambda **kw: input_pipeline.load(tiny(**kw), progress=False).split
  np.testing.assert_array_equal(split(seed=1), split())
  _, pa, _ = state_lib.create(tiny(), 8, 3, 1)
  _, pc, _ = state_lib.create(tiny(seed=1), 8, 3, 1)
  assert any(not np.allclose(x, y) for x, y in zip(
      jax.tree.leaves(pa["params"]), jax.tree.leaves(pc["params"])))
  paper = split(**{"data.protocol": "paper"})
  assert not np.array_equal(
      split(**{"data.protocol": "paper", "data.split_seed": 1}), paper)
  assert np.array_equal(split(**{"data.protocol": "paper", "seed": 1}), paper)


def test_nan_loss_stops_naming_the_step_and_keeps_the_good_checkpoint(
    tiny, tmp_path, monkeypatch):
  c = tiny(**{"train.learning_rate": 1e12, "train.momentum": 0.0,
              "train.num_epochs": 6})
  # Diverges within the first epoch: no checkpoint yet, and it says so.
  with pytest.raises(train.TrainingDiverged,
                     match=r"at step \d+ .*No checkpoint was saved"):
    cnn.run(c, str(tmp_path / "early"))
  # Good epochs first (a checkpoint every epoch), then a NaN loss from step
  # 13 on (the loss the jitted chunk returns is replaced).
  original = step_lib.make_train_chunk

  def nan_after_12(*args, **kw):
    chunk = original(*args, **kw)

    def wrapped(state, *rest):
      state, m = chunk(state, *rest)
      if int(state["step"]) > 12:
        m = dict(m, loss=m["loss"] * np.nan)
      return state, m
    return wrapped

  monkeypatch.setattr(step_lib, "make_train_chunk", nan_after_12)
  c2 = tiny(**{"train.num_epochs": 6})
  with pytest.raises(train.TrainingDiverged) as e:
    cnn.run(c2, str(tmp_path / "late"))
  ck = checkpoints.Checkpoints(str(tmp_path / "late"))
  steps = ck.latest.all_steps()
  ck.close()
  assert steps, str(e.value)
  assert f"last good checkpoint is step {max(steps)}" in str(e.value)
  assert max(steps) == 12 and "at step 13" in str(e.value)
  _, state, _ = state_lib.create(c2, 8, 3, 6)
  ck = checkpoints.Checkpoints(str(tmp_path / "late"))
  r = ck.restore(checkpoints.abstract_like(state))
  ck.close()
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(r["params"]))


# --- bad audio --------------------------------------------------------------------
def test_bad_audio_files(tmp_path):
  sr = 16000
  t = np.arange(sr) / sr
  tone = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
  sf.write(tmp_path / "ok.wav", tone, sr)
  raw = (tmp_path / "ok.wav").read_bytes()
  (tmp_path / "header.wav").write_bytes(b"RIFX" + raw[4:])  # corrupt header
  (tmp_path / "truncated.wav").write_bytes(raw[:30])  # cut inside the header
  (tmp_path / "zero.wav").write_bytes(b"")
  sf.write(tmp_path / "zeros.wav", np.zeros(sr, np.float32), sr)
  nan = tone.copy()
  nan[100:200] = np.nan
  sf.write(tmp_path / "nan.wav", nan, sr, subtype="FLOAT")
  cases = {"header.wav": "cannot be decoded", "truncated.wav": "cannot be decoded",
           "zero.wav": "0 bytes", "zeros.wav": "silent", "nan.wav": "NaN"}
  for name, why in cases.items():
    with pytest.raises(audio.AudioError) as e:
      audio.load_audio(tmp_path / name, sr)
    assert name in str(e.value) and why in str(e.value), str(e.value)
  with pytest.raises(audio.AudioError, match="is a directory"):
    audio.load_audio(tmp_path, sr)
  long = np.tile(tone, 70)  # 70 s
  sf.write(tmp_path / "long.wav", long, sr)
  with pytest.raises(audio.AudioError, match="long.wav: is 70 s long"):
    audio.load_audio(tmp_path / "long.wav", sr, max_seconds=60)


@pytest.mark.parametrize("channels,rate", [(1, 8000), (6, 96000), (2, 44100)])
def test_channels_and_rates_are_mixed_and_resampled(tmp_path, channels, rate):
  t = np.arange(rate // 2) / rate
  amps = 0.05 + 0.1 * np.arange(channels)  # every channel different
  x = np.stack([a * np.sin(2 * np.pi * 300 * t) for a in amps], -1)
  sf.write(tmp_path / "x.wav", x.astype(np.float32), rate)
  y = audio.load_audio(tmp_path / "x.wav", 16000)
  assert y.ndim == 1 and y.size == 8000
  # The mean of the channels (not channel 0, not the sum), within the
  # resampler's ripple.
  assert np.abs(y).max() == pytest.approx(amps.mean(), rel=0.03)


# --- bad config ---------------------------------------------------------------------
def test_batch_larger_than_data_is_named(tiny, tmp_path):
  from fser_jax.config import ConfigError
  with pytest.raises(ConfigError, match="train.batch_size=512"):
    cnn.run(tiny(**{"train.batch_size": 512}), str(tmp_path))


def test_fold_that_does_not_exist(tiny, tmp_path):
  with pytest.raises(splits.SplitError, match="data.fold=7"):
    cnn.run(tiny(**{"data.fold": 7}), str(tmp_path))


def test_dataset_not_built_says_how_to_build(tiny, tmp_path):
  c = tiny(**{"data.dataset": "fser/emodb", "data.data_dir": str(tmp_path)})
  with pytest.raises(dataset_io.DatasetNotBuiltError,
                     match="tfds build fser --imports fser_jax.datasets --config emodb"):
    cnn.run(c, str(tmp_path / "w"))


# --- bad checkpoints ------------------------------------------------------------------
def test_predict_with_a_config_but_no_checkpoint(tmp_path, tiny):
  from fser_jax.runs.trained import TrainedRun
  from fser_jax.errors import CheckpointError
  rundir.prepare(tiny(), str(tmp_path))
  (tmp_path / "normalisation.json").write_text(
      json.dumps({"mean": 0, "std": 1, "classes": list("abcdefgh")}))
  with pytest.raises(CheckpointError, match="no checkpoint"):
    TrainedRun(str(tmp_path))


def test_checkpoint_of_another_model_shape(tmp_path, tiny):
  from fser_jax.runs.trained import TrainedRun
  from fser_jax.errors import CheckpointError
  c = tiny()
  rundir.prepare(c, str(tmp_path))
  (tmp_path / "normalisation.json").write_text(
      json.dumps({"mean": 0, "std": 1, "classes": list("abcdefgh")}))
  other = tiny(**{"model.dense": (64, 16)})
  _, state, _ = state_lib.create(other, 8, 3, 1)
  ck = checkpoints.Checkpoints(str(tmp_path))
  ck.save_latest(1, state)
  ck.close()
  with pytest.raises(CheckpointError, match="does not fit the model"):
    TrainedRun(str(tmp_path))
