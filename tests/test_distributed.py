"""Several processes, one run: two local CPU processes through
jax.distributed train exactly the run of one process with two devices and
the same global batch (bitwise the same losses), and write its files once."""

import json
import os
import socket
import subprocess
import sys

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
  port = _free_port()
  procs = [_launch(cfg, tmp_path / "two", "--coordinator_address",
                   f"127.0.0.1:{port}", "--num_processes", "2",
                   "--process_id", str(i), log=tmp_path / f"p{i}.log")
           for i in range(2)]
  for p in procs:
    p.wait(timeout=600)
  outs = [(tmp_path / f"p{i}.log").read_text() for i in range(2)]
  for p, o in zip(procs, outs):
    assert p.returncode == 0, o[-3000:]
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
