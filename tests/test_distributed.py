"""Several processes, one run: two local CPU processes through
jax.distributed train exactly the run of one process with two devices and
the same global batch (bitwise the same losses), and write its files once."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import tiny_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(cfg, workdir, *extra, log, devices=1):
  """launch.py in a subprocess, its output to the file `log` (a pipe that
  nobody reads while the other process waits would stall both)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  if devices > 1:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_"
                        f"platform_device_count={devices}").strip()
  return subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "launch.py"), "--config", cfg,
       "--workdir", str(workdir), *extra], env=env,
      stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _two_processes(cfg, tmp_path, *args) -> list[str]:
  """launch.py as processes 0 and 1 of a jax.distributed run in
  TMP/two; their logs, after both exited 0."""
  port = _free_port()
  procs = [_launch(cfg, tmp_path / "two", *args, "--coordinator_address",
                   f"127.0.0.1:{port}", "--num_processes", "2",
                   "--process_id", str(i), log=tmp_path / f"p{i}.log")
           for i in range(2)]
  for p in procs:
    p.wait(timeout=600)
  outs = [(tmp_path / f"p{i}.log").read_text() for i in range(2)]
  for p, o in zip(procs, outs):
    assert p.returncode == 0, o[-3000:]
  return outs


def _losses(workdir):
  lines = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  return ([(h["step"], h["train_loss"]) for h in lines if "train_loss" in h],
          [(h["step"], h["val_accuracy"]) for h in lines
           if "val_accuracy" in h])


@pytest.mark.parametrize("stream", ["off", "on"])
def test_two_processes_train_the_one_process_run(tmp_path, tfds_dir, ar_dir,
                                                 stream):
  """In memory every process holds the dataset; streamed (ArrayRecord),
  each reads only its half of every batch."""
  cfg = tiny_config_file(tmp_path / "tiny.py",
                         ar_dir if stream == "on" else tfds_dir,
                         **{"train.num_epochs": 2, "data.stream": stream})
  # One process with two (virtual) CPU devices: the same mesh, the same
  # split of each batch, so the same sums in the same order.
  one = _launch(cfg, tmp_path / "one", log=tmp_path / "one.log", devices=2)
  one.wait(timeout=600)
  assert one.returncode == 0, (tmp_path / "one.log").read_text()[-3000:]
  outs = _two_processes(cfg, tmp_path)
  assert "process 0 of 2, 1 local / 2 devices" in outs[0]
  assert "on 2 cpu device(s)" in outs[0]
  assert f"Training input: data.stream={stream}" in outs[0]
  (l1, v1), (l2, v2) = _losses(tmp_path / "one"), _losses(tmp_path / "two")
  assert [s for s, _ in l1] == [s for s, _ in l2] and len(l1) >= 4
  # The batch is split 8/8 over the processes, the gradients all-reduced
  # across them: bitwise the losses of the one-process, two-device run.
  assert l2 == l1
  assert v1 == v2
  # Written once: one metrics line per step, one report.
  steps = [s for s, _ in l2]
  assert len(steps) == len(set(steps))
  rep1 = json.load(open(tmp_path / "one" / "report.json"))
  rep2 = json.load(open(tmp_path / "two" / "report.json"))
  assert rep2["accuracy"] == rep1["accuracy"]


def test_two_processes_share_an_embedding_run(tmp_path, user_recordings):
  """launch.py --mode embed in two jax.distributed processes: each computes
  its every-other chunk into the shared store, the first writes the index
  of all 60 clips; the states equal one process's."""
  from fser_jax import encoders
  from fser_jax.encoders import extract
  fix = os.path.join(ROOT, "tests", "fixtures", "whisper_tiny")
  args = ["--mode", "embed", f"--config.encoder.path={fix}",
          "--config.encoder.chunk=8"]
  cfg = os.path.join(ROOT, "configs", "own_data.py") + ":" + user_recordings
  _two_processes(cfg, tmp_path, *args)
  keys = [json.load(open(tmp_path / "two" / f"embed_keys.{i}.json"))
          for i in range(2)]
  # 60 clips in chunks of 8: chunks 0, 2, 4, 6 (32 clips) and 1, 3, 5, 7.
  assert [k["stats"]["computed"] for k in keys] == [32, 28]
  out = json.load(open(tmp_path / "two" / "embed.json"))
  assert (out["processes"], out["embedded"], out["computed"]) == (2, 60, 60)
  enc = encoders.load(fix)
  store = extract.Store(str(tmp_path / "two" / "encoder_states"), enc)
  index = [r.split(",")[-1] for r in
           open(tmp_path / "two" / "embed_index.csv").read().split()[1:]]
  assert len(index) == 60 and len(store.index()) == 60
  from fser_jax.frontend import audio
  from fser_jax.datasets import files
  entries, _ = files.scan_own(user_recordings)
  first = audio.load_audio(entries[0]["abspath"], 16000)
  assert np.abs(store.read(index[:1])[0]
                - enc.pooled([first])[0]).max() <= 1e-5
