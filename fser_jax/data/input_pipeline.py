"""From a TFDS dataset to device-ready arrays: clips, splits, images.

`load(config)` reads the `fser` dataset named by `config.data` (building it on
first use), assigns every clip to train/validation/test by the protocol, and
runs the front-end (features.py) on the accelerator. In memory, the whole
training set's images (or waveforms) live on the device, where augmentation
and batching happen inside the jitted step (train.py); streamed
(`data.stream`, stream.py), the training clips are read as steps need them.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from absl import logging

from fser_jax.frontend import statistics
from fser_jax.data import dataset_io
from fser_jax.frontend import spectrogram as features_lib
from fser_jax.frontend import normalisation as norm_lib
from fser_jax.data import splits as splits_lib
from fser_jax.data import stream as stream_lib
from fser_jax.frontend import wave_augment
from fser_jax.errors import DataError

META_KEYS = stream_lib.META_KEYS


@dataclasses.dataclass
class Data:
  """Every clip of a run: images, labels, metadata and split."""
  images: np.ndarray  # [N, S, S, C] float32, standardised if configured
  labels: np.ndarray  # [N] int32
  classes: tuple[str, ...]
  meta: dict[str, np.ndarray]  # META_KEYS -> [N] str
  split: np.ndarray  # [N] 'train' | 'validation' | 'test'
  # Per-channel standardisation applied to `images`: (mean [C], std [C]).
  norm: tuple[list[float], list[float]] = ([0.0], [1.0])
  # fser_jax.evaluation.linear's per-clip statistics [N, F] (None: not computed).
  clip_stats: np.ndarray | None = None
  # With waveform augmentation (augment.wave): every clip's samples, zero
  # padded to one length [N, L] float32, and its valid length [N].
  wav: np.ndarray | None = None
  wav_lengths: np.ndarray | None = None
  # Each clip's standardisation (mean, std) per channel [N, 2, C]: the same
  # row for every clip under features.normalize='global', its speaker's or
  # corpus' own statistics under 'speaker' / 'corpus'.
  clip_norm: np.ndarray | None = None
  # Each clip's position in `load_clips`' order (the dataset sorted by file
  # name): `waveforms` reads the clips again by it.
  clip_index: np.ndarray | None = None
  # Streamed (data.stream): the dataset read by position (stream.ClipSource);
  # `images` then holds the validation and test clips' images only, the
  # clips at `image_rows`; the training clips are read as steps need them,
  # padded to `pad_to` samples.
  source: stream_lib.ClipSource | None = None
  image_rows: np.ndarray | None = None
  pad_to: int = 0

  @property
  def streamed(self) -> bool:
    return self.source is not None

  @property
  def channels(self) -> int:
    return int(self.images.shape[-1])

  def rows(self) -> np.ndarray:
    """The clips `images` holds (every clip unless streamed)."""
    return (np.arange(self.labels.size) if self.image_rows is None
            else self.image_rows)

  def raw_images(self) -> np.ndarray:
    """`images` before standardisation (for pictures; labels[rows()])."""
    if self.clip_norm is not None:
      c = self.clip_norm[self.rows()][:, :, None, None, :]
      return self.images * c[:, 1] + c[:, 0]
    return self.images * np.float32(self.norm[1]) + np.float32(self.norm[0])

  def subset(self, name: str) -> tuple[np.ndarray, np.ndarray]:
    rows = self.rows()
    m = self.split[rows] == name
    if name == splits_lib.TRAIN and self.streamed:
      raise ValueError("a streamed run holds no training images")
    return self.images[m], self.labels[rows][m]

  def meta_of(self, name: str) -> dict[str, np.ndarray]:
    m = self.split == name
    return {k: v[m] for k, v in self.meta.items()}


def assign_split(d, labels, meta) -> np.ndarray:
  """Every clip's split under data.protocol (splits.py)."""
  if d.protocol == "file":
    return splits_lib.from_file(os.path.expanduser(d.split_file),
                                meta["filename"])
  return splits_lib.assign(
      d.protocol, {**meta, "label": labels}, fold=d.fold, folds=d.num_folds,
      seed=d.split_seed, test_fraction=d.test_fraction,
      val_fraction=d.val_fraction)


def check_split(d, split, labels, meta) -> None:
  for s in (splits_lib.TRAIN, splits_lib.TEST):
    if not np.any(split == s):
      raise DataError(
          f"protocol {d.protocol!r} fold {d.fold} leaves the {s} split empty "
          f"({len(labels)} clips, "
          f"{len(set(meta['speaker'].tolist()) - {''})} speakers); use another "
          "data.protocol or more data")
  logging.info("fser data %s: %d clips; protocol %s fold %d: train %d, "
               "validation %d, test %d", d.dataset, len(labels), d.protocol,
               d.fold, np.sum(split == "train"),
               np.sum(split == "validation"), np.sum(split == "test"))


def _used(d, labels, meta) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
  """The clips the protocol uses (protocol 'file' may leave some out) and
  their split: (used mask, split, labels, metadata) of the used clips,
  checked to leave neither train nor test empty. Both load paths."""
  split = assign_split(d, labels, meta)
  used = split != splits_lib.UNUSED
  split, labels = split[used], labels[used]
  meta = {k: v[used] for k, v in meta.items()}
  check_split(d, split, labels, meta)
  return used, split, labels, meta


def load(config, *, progress: bool = True, norm=None) -> Data:
  """Loads, splits and featurises the dataset of `config`; streamed
  (data.stream, fser_jax/data/stream.py) or every clip in memory.

  Args:
    norm: (mean, std) per channel to standardise with instead of the
      training split's (train.init_from_norm: the source run's).
  """
  d = config.data
  builder = dataset_io.get_builder(d)
  dataset_io.ensure_built(builder, d)
  dataset_io.check_sample_rate(builder, d)
  streamed, why = stream_lib.stream_choice(config, builder)
  logging.info("Training input: %s.", why)
  if streamed:
    return load_streamed(config, builder, progress=progress, norm=norm)
  waveforms, labels, classes, meta = dataset_io.load_clips(d, builder)
  if not waveforms:
    raise DataError(f"dataset {d.dataset} has no clips")
  used, split, labels, meta = _used(d, labels, meta)
  waveforms = [w for w, u in zip(waveforms, used) if u]
  line, tight = stream_lib.memory_line(
      stream_lib.memory_estimate(config, len(waveforms),
                                 int(sum(w.size for w in waveforms)),
                                 max(w.size for w in waveforms)),
      stream_lib.available_memory())
  (logging.warning if tight else logging.info)("%s", line)
  images = features_lib.compute_images(waveforms, config.features,
                                       d.sample_rate, progress=progress)
  data = Data(images, labels, classes, meta, split,
              clip_index=np.flatnonzero(used))
  wave = wave_augment.from_config(config.augment.wave, d.sample_rate)
  if wave.active:
    data.wav, data.wav_lengths = pad_waveforms(
        waveforms, wave.length_factor, config.features.hop_length)
  if config.baseline:
    # In this thread: librosa's YIN (a numba gufunc) run in a worker thread
    # beside training crashed test workers with segmentation faults.
    data.clip_stats = statistics.of_clips(waveforms, d.sample_rate)
  train = split == "train"
  standardise_data(config, data, norm,
                   lambda: norm_lib.channel_stats(images[train]),
                   lambda groups: norm_lib.group_norms(images, groups))
  return data


def standardise_data(config, data: Data, norm, train_stats, group_stats):
  """Sets data.norm, data.clip_norm and standardises data.images: `norm`
  when given (global), else the training split's statistics
  (`train_stats()`), or each group's (`group_stats(groups)`)."""
  channels = data.channels
  data.norm = ([0.0] * channels, [1.0] * channels)
  mode = norm_lib.normalize_mode(config.features)
  if norm is not None and mode == "global":
    data.norm = (list(norm[0]), list(norm[1]))
  elif norm_lib.uses_standardisation(config.features):
    # Training-set statistics only (no test leakage); one affine map per
    # channel for every clip, so loudness and colour differences between
    # clips survive (per-image scaling would erase them). Under 'speaker' /
    # 'corpus' they are kept for --normalize_by none.
    data.norm = train_stats()
  data.clip_norm = np.broadcast_to(
      np.asarray(data.norm, np.float32)[None],
      (len(data.labels), 2, channels))
  if mode != "global":
    # Each group's own clips, every split: a test speaker's statistics come
    # from that speaker's audio only (never labels, never other speakers).
    groups = norm_lib.norm_groups(data.meta, mode)
    data.clip_norm = group_stats(groups)
    logging.info("Normalisation per %s: %d groups.", mode,
                 len(set(groups.tolist())))
  data.clip_norm = np.ascontiguousarray(data.clip_norm)
  data.images = norm_lib.standardise_clips(data.images,
                                           data.clip_norm[data.rows()])


def load_streamed(config, builder, *, progress: bool = True, norm=None
                  ) -> Data:
  """The streamed path: one index pass over every clip (labels, metadata,
  lengths, image sums, baseline statistics), then the validation and test
  clips' images; the training clips are read as steps need them."""
  d = config.data
  source = stream_lib.ClipSource(builder)
  index = stream_lib.index_pass(source, config.features, d.sample_rate,
                                baseline=config.baseline,
                                progress=progress)
  if not index.labels.size:
    raise DataError(f"dataset {d.dataset} has no clips")
  used, split, labels, meta = _used(d, index.labels, index.meta)
  clip_index = np.flatnonzero(used)
  source.order = source.order[used]  # positions follow the used clips
  sums, lengths = index.sums[used], index.lengths[used]
  rows = np.flatnonzero(split != splits_lib.TRAIN)
  images = np.concatenate([
      features_lib.compute_images(source.read(rows[s:s + stream_lib.BLOCK]),
                                  config.features, d.sample_rate)
      for s in range(0, rows.size, stream_lib.BLOCK)])
  classes = tuple(builder.info.features["label"].names)
  data = Data(images, labels, classes, meta, split, clip_index=clip_index,
              source=source, image_rows=rows)
  wave = wave_augment.from_config(config.augment.wave, d.sample_rate)
  hop = config.features.hop_length
  data.pad_to = int(np.ceil(lengths.max() * wave.length_factor / hop)) * hop
  if index.clip_stats is not None:
    data.clip_stats = index.clip_stats[used]
  train = split == "train"
  standardise_data(config, data, norm,
                   lambda: stream_lib.stats_from_sums(sums[train]),
                   lambda groups: norm_lib.group_norms(
                       sums, groups, stream_lib.stats_from_sums))
  logging.info("Streamed: %d training clips read as steps need them (padded "
               "to %d samples); %d validation and test images held.",
               int(train.sum()), data.pad_to, rows.size)
  return data


def waveforms(config, data: Data) -> list:
  """The clips of `data`, in its order, read again from the dataset: the
  report scores them through fser_jax.runs.trained, from audio, as predict
  and evaluate do."""
  if data.streamed:
    return data.source.read(np.arange(data.labels.size))
  wavs, _, _, meta = dataset_io.load_clips(config.data)
  if not np.array_equal(meta["filename"][data.clip_index],
                        data.meta["filename"]):
    raise DataError(f"dataset {config.data.dataset} changed while the run "
                    "was training; train again")
  return [wavs[i] for i in data.clip_index]


def clip_reader(config, data: Data):
  """`read(positions) -> waveforms` over `data`'s clips, and how many clips
  to read at a time: streamed, from the dataset by position (blocks of
  stream.BLOCK); in memory, every clip read once, then from the list."""
  if data.streamed:
    return data.source.read, stream_lib.BLOCK
  wavs = waveforms(config, data)
  return (lambda positions: [wavs[i] for i in positions]), max(1, len(wavs))


def pad_waveforms(waveforms: list[np.ndarray], length_factor: float = 1.0,
                  multiple: int = 512) -> tuple[np.ndarray, np.ndarray]:
  """([N, L] float32 zero-padded, [N] int32 lengths); L holds the longest
  clip slowed down by `length_factor`, rounded up to `multiple`."""
  lengths = np.array([w.size for w in waveforms], np.int32)
  n = int(np.ceil(lengths.max() * length_factor / multiple)) * multiple
  out = np.zeros((len(waveforms), n), np.float32)
  for i, w in enumerate(waveforms):
    out[i, :w.size] = w
  return out, lengths


