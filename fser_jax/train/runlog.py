"""What a run writes while it trains: metrics.jsonl (one JSON object per
logged step, appended and flushed line by line), TensorBoard scalars, the
throughput and the time left."""

from __future__ import annotations

import json
import os
import time


def fmt_time(s: float) -> str:
  s = int(max(s, 0))
  return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else \
      f"{s // 60}m{s % 60:02d}s"


def read_jsonl(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


class SummaryWriter:
  """TensorBoard scalars through tf.summary (TensorFlow is already here)."""

  def __init__(self, logdir: str):
    import tensorflow as tf
    self._tf = tf
    self._writer = tf.summary.create_file_writer(logdir)

  def scalar(self, tag: str, value: float, step: int) -> None:
    with self._writer.as_default():
      self._tf.summary.scalar(tag, value, step=step)

  def flush(self) -> None:
    self._writer.flush()


class RunLog:
  """metrics.jsonl (appended and flushed line by line) and TensorBoard."""

  def __init__(self, workdir: str, history: list[dict], write: bool = True):
    """`write`: False in every process of a multi-process run but the
    first (the records are kept, nothing is written)."""
    self.history = history
    self._write = write
    if write:
      self._file = open(os.path.join(workdir, "metrics.jsonl"), "a")
      self._writer = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def __call__(self, record: dict) -> None:
    self.history.append(record)
    if not self._write:
      return
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()
    for k, v in record.items():
      if k not in ("step", "epoch"):
        self._writer.scalar(k, v, record["step"])

  def close(self) -> None:
    if self._write:
      self._file.close()
      self._writer.flush()


class Throughput:
  """Examples per second since the end of the first dispatch (which
  compiles), and the time left."""

  def __init__(self, batch_size: int):
    self.batch_size = batch_size
    self._t0, self._steps = None, 0

  def update(self, k: int, dt: float) -> float:
    if self._t0 is None:
      self._t0 = time.perf_counter()
      self.rate = k * self.batch_size / dt
    else:
      self._steps += k
      self.rate = (self._steps * self.batch_size
                   / (time.perf_counter() - self._t0))
    return self.rate

  def eta(self, steps_left: int) -> str:
    if not self._steps:
      return "after the first dispatch"
    return fmt_time(steps_left * self.batch_size / self.rate)
