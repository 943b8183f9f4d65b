"""Streamed training input: clips read from the built dataset as steps need them.

The in-memory path (input_pipeline.load) holds every clip's waveform while it
featurises, every image, and with waveform augmentation a buffer of every
training clip padded to the longest. Corpora the field trains on do not fit
that (ESD: 35,000 clips). The streamed path holds none of it:

- `ClipSource` reads clips by position from the dataset's ArrayRecord files
  (`tfds` random access, `builder.as_data_source`), in the one order every
  consumer uses (sorted by file name).
- `index_pass` reads every clip once, in blocks, and keeps only what is small:
  labels, metadata, lengths, each clip's per-channel image sums (for the
  training split's standardisation, or each speaker's) and the baseline's
  per-clip statistics.
- `Batches` turns a dispatch's batch indices [K, B] into the arrays the jitted
  step consumes: the clips' samples padded to one length [K, B, L], their
  lengths and standardisation rows. The front-end and the channel simulation
  run inside the step (train_inputs.make_wave_batch_fn), as on the in-memory
  waveform path; with the same seed the two paths feed the step the same
  numbers.
- `Prefetcher` prepares the next dispatches' batches in threads while the
  device runs the current one.

Resumption is exact by construction: a dispatch's batch is a function of the
seed, the epoch and the step (train_inputs.epoch_indices), so a resumed run reads
the same clips in the same order as an uninterrupted one; the loader's state
is the step the checkpoint holds.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses

import numpy as np
from absl import logging

from fser_jax.frontend import statistics
from fser_jax.frontend import spectrogram as features_lib
from fser_jax.frontend import wave_augment
from fser_jax.config import ConfigError
from fser_jax.errors import DataError

META_KEYS = ("speaker", "gender", "corpus", "language", "filename", "text_id",
             "intensity")
BLOCK = 256  # clips read and featurised at a time by the index pass


def random_access(builder) -> bool:
  """Whether the built dataset can be read by position (ArrayRecord)."""
  return str(getattr(builder.info.file_format, "value",
                     builder.info.file_format)) == "array_record"


def rebuild_line(builder) -> str:
  name = builder.builder_config.name
  return (f"dataset fser/{name} in {builder.data_dir_root} is stored as "
          f"{builder.info.file_format.value} files, which cannot be read by "
          "position; streaming needs ArrayRecord. Rebuild it with\n  tfds "
          f"build fser --imports fser_jax.datasets --config {name} "
          f"--file_format array_record --data_dir {builder.data_dir_root} "
          "--overwrite\n(add --manual_dir M as for the first build), or set "
          "--config.data.stream=off")


class ClipSource:
  """The dataset's clips by position (sorted by file name).

  Records are read as raw bytes and parsed in one batched
  `tf.io.parse_example` call, faster than decoding each example through
  TFDS' features one at a time. Datasets built since
  version 1.1.0 store the samples as int16 bytes; older builds' int64 lists
  are read too."""

  def __init__(self, builder):
    if not random_access(builder):
      raise DataError(rebuild_line(builder))
    from tensorflow_datasets.core import decode
    self.records = builder.as_data_source(
        split="train", deserialize_method=decode.DeserializeMethod.RAW_BYTES)
    self.order = np.arange(len(self.records))  # position -> record
    # How the samples are stored, read from a record (not from the code's
    # feature spec, which describes the newest version only).
    import tensorflow as tf
    self.audio_bytes = bool(len(self.records)) and tf.train.Example.FromString(
        self.raw([0])[0]).features.feature["audio"].HasField("bytes_list")

  def __len__(self) -> int:
    return len(self.order)

  def raw(self, records) -> list[bytes]:
    records = [int(r) for r in records]
    get = getattr(self.records, "__getitems__", None)
    return list(get(records)) if get else [self.records[r] for r in records]

  def parse(self, raw: list[bytes], meta: bool = False,
            audio: bool = True) -> dict:
    """{'audio': float32 waveforms in [-1, 1) (unless not `audio`), and with
    `meta` 'label' [M] and META_KEYS -> [M] str} of serialized examples."""
    import tensorflow as tf
    spec = {}
    if audio:
      spec["audio"] = (tf.io.FixedLenFeature([], tf.string)
                       if self.audio_bytes else tf.io.RaggedFeature(tf.int64))
    if meta:
      spec["label"] = tf.io.FixedLenFeature([], tf.int64)
      spec.update({k: tf.io.FixedLenFeature([], tf.string)
                   for k in META_KEYS})
    p = tf.io.parse_example(raw, spec)
    out = {}
    if audio and self.audio_bytes:
      out["audio"] = [np.frombuffer(v, "<i2").astype(np.float32) / 32768.0
                      for v in p["audio"].numpy()]
    elif audio:
      values = (tf.cast(p["audio"].values, tf.float32) / 32768.0).numpy()
      rs = p["audio"].row_splits.numpy()
      out["audio"] = [values[a:b] for a, b in zip(rs[:-1], rs[1:])]
    if meta:
      out["label"] = p["label"].numpy().astype(np.int32)
      out.update({k: [v.decode() for v in p[k].numpy()] for k in META_KEYS})
    return out

  def blocks(self, progress: bool = False, audio: bool = True):
    """Every record in storage order, parsed with its metadata (and its
    samples unless not `audio`), a block of BLOCK records at a time
    (ClipSource.parse's dicts)."""
    n = len(self.records)
    starts = range(0, n, BLOCK)
    if progress:
      from tqdm import tqdm
      starts = tqdm(starts, desc="index pass", unit="block")
    for s in starts:
      yield self.parse(self.raw(range(s, min(n, s + BLOCK))), meta=True,
                       audio=audio)

  def read(self, positions) -> list[np.ndarray]:
    """float32 waveforms in [-1, 1) of the clips at `positions`."""
    if len(positions) == 0:
      return []
    return self.parse(self.raw(self.order[np.asarray(positions)]))["audio"]


def meta_of(ex) -> dict:
  dec = lambda v: v.decode() if isinstance(v, bytes) else str(v)
  return {k: dec(ex[k]) for k in META_KEYS}


@dataclasses.dataclass
class Index:
  """What the index pass keeps of every clip (sorted by file name)."""
  labels: np.ndarray  # [N] int32
  meta: dict  # META_KEYS -> [N] object
  lengths: np.ndarray  # [N] int64 samples
  sums: np.ndarray  # [N, 3, C] float64 per channel: count, sum, sum of squares
  clip_stats: np.ndarray | None  # [N, F] baseline statistics, or None


def index_pass(source: ClipSource, features_cfg, sample_rate: int, *,
               baseline: bool, progress: bool = True) -> Index:
  """Reads every clip once in blocks, keeps labels, metadata, lengths, the
  images' per-channel sums and the baseline's statistics; sorts the source
  by file name. Holds one block of clips at a time."""
  labels, lengths, sums, stats = [], [], [], []
  meta = {k: [] for k in META_KEYS}
  for block in source.blocks(progress):
    wavs = block["audio"]
    labels += block["label"].tolist()
    lengths += [w.size for w in wavs]
    for k in META_KEYS:
      meta[k] += block[k]
    imgs = features_lib.compute_images(wavs, features_cfg, sample_rate)
    flat = imgs.reshape(imgs.shape[0], -1, imgs.shape[-1]).astype(np.float64)
    sums.append(np.stack([np.full(flat.shape[::2], flat.shape[1], np.float64),
                          flat.sum(1), (flat ** 2).sum(1)], 1))
    if baseline:
      stats.append(statistics.of_clips(wavs, sample_rate))
  order = np.argsort(np.array(meta["filename"]), kind="stable")
  source.order = order
  return Index(
      labels=np.array(labels, np.int32)[order],
      meta={k: np.array(v, dtype=object)[order] for k, v in meta.items()},
      lengths=np.array(lengths, np.int64)[order],
      sums=np.concatenate(sums)[order],
      clip_stats=np.concatenate(stats)[order] if baseline else None)


def stats_from_sums(sums: np.ndarray) -> tuple[list[float], list[float]]:
  """Per-channel (mean, std) of the clips whose sums are `sums` [M, 3, C]:
  the statistics normalisation.channel_stats gives over their images."""
  count, s, ss = sums.sum(0)
  mean = s / count
  std = np.sqrt(np.maximum(ss / count - mean ** 2, 0.0)) + 1e-6
  return mean.tolist(), std.tolist()


class Batches:
  """A dispatch's batches read from `source`: `(idx [K, B]) -> (x, y)`, x the
  step's pytree {'wav' [K, B, L], 'length' [K, B], 'norm' [K, B, 2, C]},
  y [K, B] int32. `rows` maps the training split's positions (what
  train_inputs.epoch_indices draws from) to the source's; `local` = (start, stop)
  of the batch this process reads (its shard; the whole batch on one)."""

  def __init__(self, source: ClipSource, rows: np.ndarray, labels, norm,
               pad_to: int, local: tuple[int, int] | None = None):
    self.source, self.rows = source, np.asarray(rows)
    self.labels, self.norm = np.asarray(labels), np.asarray(norm, np.float32)
    self.pad_to, self.local = int(pad_to), local

  def __call__(self, idx) -> tuple[dict, np.ndarray]:
    idx = np.asarray(idx)
    if self.local is not None:
      idx = idx[:, self.local[0]:self.local[1]]
    k, b = idx.shape
    wav = np.zeros((k, b, self.pad_to), np.float32)
    length = np.zeros((k, b), np.int32)
    for (i, j), w in zip(np.ndindex(k, b),
                         self.source.read(self.rows[idx.reshape(-1)])):
      if w.size > self.pad_to:
        raise DataError(f"clip {self.source.order[self.rows[idx[i, j]]]} is "
                        f"longer ({w.size} samples) than the index pass saw")
      wav[i, j, :w.size] = w
      length[i, j] = w.size
    return ({"wav": wav, "length": length, "norm": self.norm[idx]},
            self.labels[idx])


class Prefetcher:
  """Runs `fn(*args)` for the next `depth` items of `items` in threads while
  the caller consumes earlier results, in order."""

  def __init__(self, fn, items, depth: int = 2, threads: int = 2):
    self.fn, self.items = fn, iter(items)
    self.pool = concurrent.futures.ThreadPoolExecutor(threads)
    self.queue = collections.deque()
    for _ in range(depth):
      self._submit()

  def _submit(self):
    item = next(self.items, None)
    if item is not None:
      self.queue.append((item, self.pool.submit(self.fn, item)))

  def __iter__(self):
    return self

  def __next__(self):
    if not self.queue:
      self.close()
      raise StopIteration
    item, fut = self.queue.popleft()
    self._submit()
    return item, fut.result()

  def close(self):
    for _, f in self.queue:
      f.cancel()
    self.pool.shutdown(wait=True, cancel_futures=True)


# --- whether to stream: the in-memory path's memory ------------------------
STREAM = ("auto", "on", "off")


def available_memory() -> int | None:
  """Bytes of memory available to this process (Linux MemAvailable)."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def memory_estimate(config, n_clips: int, total_samples: int,
                    longest: int) -> dict:
  """Bytes a run holds while it loads and trains, by part: every clip's
  waveform (float32, while featurising), the images (float32), and with
  waveform augmentation the padded buffer of every training clip."""
  f = config.features
  if f.kind == "logmel_time":
    per_image = f.n_mels * max(f.frames,
                               longest // f.hop_length + 1) * 4
  else:
    per_image = f.image_size ** 2 * features_lib.num_channels(f.kind) * 4
  wave = wave_augment.from_config(config.augment.wave,
                                  config.data.sample_rate)
  buffer = (n_clips * int(longest * wave.length_factor) * 4
            if wave.active else 0)
  out = {"waveforms": total_samples * 4, "images": n_clips * per_image,
         "augmentation_buffer": buffer}
  out["total"] = sum(out.values())
  return out


def memory_line(est: dict, available: int | None) -> tuple[str, bool]:
  """(a log line on the run's memory, whether it likely does not fit)."""
  gb = lambda b: f"{b / 2 ** 30:.1f} GB"
  parts = ", ".join(f"{k.replace('_', ' ')} {gb(v)}" for k, v in est.items()
                    if k != "total" and v)
  tight = available is not None and est["total"] > 0.9 * available
  line = (f"Memory: this run holds about {gb(est['total'])} ({parts})"
          + (f"; {gb(available)} available" if available is not None else ""))
  if tight:
    line += (": it may be killed for memory. Stream it (--config.data."
             "stream=on, an ArrayRecord build), turn off augment.wave or train "
             "on fewer corpora.")
  return line, tight


def stream_choice(config, builder) -> tuple[bool, str]:
  """(stream the training clips?, why): data.stream 'on' / 'off', or 'auto':
  streamed when the in-memory path would hold over half the available
  memory and the dataset is stored as ArrayRecord."""
  mode = config.data.stream
  if mode not in STREAM:
    raise ConfigError(f"config data.stream={mode!r}: expected one of "
                      f"{', '.join(STREAM)}")
  if mode != "auto":
    return mode == "on", f"data.stream={mode}"
  info = builder.info.splits["train"]
  n, nbytes = info.num_examples, info.num_bytes
  # int16 audio: ~2 bytes a sample; the longest clip guessed at 2x the mean.
  samples = nbytes // 2
  est = memory_estimate(config, n, samples, 2 * samples // max(n, 1))
  avail = available_memory()
  need = f"~{est['total'] / 2 ** 30:.1f} GB"
  if avail is None or est["total"] <= 0.5 * avail:
    return False, f"data.stream=auto: in memory ({need} fits)"
  if not random_access(builder):
    logging.warning("The in-memory path needs %s of %.1f GB available; to "
                    "stream instead: %s", need, avail / 2 ** 30,
                    rebuild_line(builder))
    return False, (f"data.stream=auto: in memory ({need} of "
                   f"{avail / 2 ** 30:.1f} GB; not ArrayRecord, cannot stream)")
  return True, (f"data.stream=auto: streamed (in memory it would hold {need} "
                f"of {avail / 2 ** 30:.1f} GB available)")
