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

from fser_jax import baseline as baseline_lib
from fser_jax import features as features_lib
from fser_jax.config import ConfigError
from fser_jax import splits as splits_lib
from fser_jax import stream as stream_lib
from fser_jax import wave_augment
from fser_jax.errors import DataError, UserError

META_KEYS = stream_lib.META_KEYS
STREAM = ("auto", "on", "off")


class DatasetNotBuiltError(UserError, RuntimeError):
  pass


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
  # fser_jax.baseline's per-clip statistics [N, F] (None: not computed).
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


def default_data_dir(data_cfg) -> str:
  """data.data_dir, else $TFDS_DATA_DIR (as TFDS itself), else
  ~/tensorflow_datasets."""
  return os.path.expanduser(data_cfg.data_dir
                            or os.environ.get("TFDS_DATA_DIR", "")
                            or "~/tensorflow_datasets")


def get_builder(data_cfg):
  """The TFDS builder for `data.dataset` ('fser/<config>' or 'own')."""
  import tensorflow_datasets as tfds
  from fser_jax import datasets  # registers `fser`
  data_dir = default_data_dir(data_cfg)
  if data_cfg.dataset == "own":
    if not data_cfg.own_path:
      raise ConfigError("config data.dataset='own' needs data.own_path (a "
                       "folder with one subfolder per label, or a CSV manifest)")
    cfg = datasets.own_config(data_cfg.own_path, data_cfg.sample_rate,
                              data_cfg.get("columns", ""))
    return datasets.Fser(config=cfg, data_dir=data_dir)
  name = data_cfg.dataset
  if not name.startswith("fser/"):
    raise ConfigError(f"config data.dataset={name!r}: expected 'fser/<config>' "
                     "(synthetic, all, emodb, aesdd, field, ...; docs/data.md), "
                     "'fser/<corpus>+<corpus>...' or 'own'")
  if "+" in name:  # several corpora, unified labels
    try:
      cfg = datasets.mix_config(name.split("/", 1)[1].split("+"))
    except DataError as e:
      raise ConfigError(f"config data.dataset={name!r}: {e}") from None
    return datasets.Fser(config=cfg, data_dir=data_dir)
  known = [c.name for c in datasets.Fser.BUILDER_CONFIGS]
  if name.split("/", 1)[1] not in known:
    raise ConfigError(f"config data.dataset={name!r}: unknown fser config; "
                     f"known: {', '.join(known)}, or 'own'")
  return tfds.builder(name, data_dir=data_dir)


def ensure_built(builder, data_cfg,
                 file_format: str = "array_record") -> None:
  """Builds the dataset if needed (the synthetic corpus always can be), as
  ArrayRecord files: both the in-memory load and streaming read them by
  position (TFRecord builds, TFDS' default, are read too, not streamed)."""
  import tensorflow_datasets as tfds
  if builder.is_prepared():
    return
  name = builder.builder_config.name
  needs_manual = not name.startswith("synthetic") and not builder.builder_config.path
  if needs_manual and not data_cfg.manual_dir:
    raise DatasetNotBuiltError(
        f"dataset fser/{name} is not built in {builder.data_dir_root}. Build it "
        f"with\n  tfds build fser --imports fser_jax.datasets --config {name} "
        f"--manual_dir M --data_dir {builder.data_dir_root}"
        f" --file_format {file_format}"
        + "\nor set --config.data.manual_dir=M to build it now.\n"
        + builder.MANUAL_DOWNLOAD_INSTRUCTIONS)
  logging.info("Building fser/%s into %s (first use, %s files).", name,
               builder.data_dir_root, file_format)
  dl_config = tfds.download.DownloadConfig(
      manual_dir=os.path.expanduser(data_cfg.manual_dir) or None,
      beam_options=beam_options(data_cfg.get("beam_options", "")))
  builder.download_and_prepare(download_config=dl_config,
                               file_format=file_format)


def beam_options(text: str):
  """Apache Beam PipelineOptions from 'key=value,...' (the TFDS CLI's
  --beam_pipeline_options), or None for an in-process build. Beam is
  imported only here, so reading a built dataset never needs it."""
  if not text:
    return None
  try:
    from apache_beam.options.pipeline_options import PipelineOptions
  except ImportError:
    raise ConfigError("config data.beam_options needs Apache Beam: pip "
                      "install -e '.[beam]'") from None
  return PipelineOptions(flags=[f"--{o.strip()}" for o in text.split(",")
                                if o.strip()])


def check_sample_rate(builder, data_cfg) -> None:
  sr = builder.info.features["audio"].sample_rate
  if sr != data_cfg.sample_rate:
    raise DataError(f"dataset {data_cfg.dataset} holds {sr} Hz audio but "
                    f"config data.sample_rate={data_cfg.sample_rate}; set "
                    f"--config.data.sample_rate={sr}")


def load_clips(data_cfg, builder=None):
  """(waveforms list, labels, class names, metadata) of the whole dataset."""
  if builder is None:
    builder = get_builder(data_cfg)
    ensure_built(builder, data_cfg)
  check_sample_rate(builder, data_cfg)
  classes = tuple(builder.info.features["label"].names)
  clips = _read_clips(builder, audio=True)
  return (clips["audio"], clips["label"], classes,
          {k: clips[k] for k in META_KEYS})


def load_metadata(data_cfg) -> dict:
  """'label' [N] int32 and META_KEYS -> [N] object of the dataset's clips,
  sorted by file name as load_clips sorts them, without decoding audio."""
  builder = get_builder(data_cfg)
  ensure_built(builder, data_cfg)
  return _read_clips(builder, audio=False)


def _read_clips(builder, audio: bool) -> dict:
  """'label' [N] int32, META_KEYS -> [N] object and, with `audio`, 'audio'
  (float32 waveforms) of every clip, sorted by file name. ArrayRecord builds
  are read through the stream's reader, TFRecord ones through tf.data."""
  out = {"label": [], **{k: [] for k in META_KEYS}}
  if audio:
    out["audio"] = []
  if stream_lib.random_access(builder):
    for block in stream_lib.ClipSource(builder).blocks(audio=audio):
      for k, v in block.items():
        out[k] += list(v)
  else:
    import tensorflow_datasets as tfds
    for ex in tfds.as_numpy(builder.as_dataset(split="train",
                                               shuffle_files=False)):
      if audio:
        out["audio"].append(ex["audio"].astype(np.float32) / 32768.0)
      out["label"].append(int(ex["label"]))
      for k, v in stream_lib.meta_of(ex).items():
        out[k].append(v)
  # TFDS' read order is a hash of the keys: sort by file name so every
  # consumer sees one order.
  order = np.argsort(np.array(out["filename"]), kind="stable")
  sorted_ = {k: np.array(out[k], dtype=object)[order] for k in META_KEYS}
  sorted_["label"] = np.array(out["label"], np.int32)[order]
  if audio:
    sorted_["audio"] = [out["audio"][i] for i in order]
  return sorted_


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
    per_image = f.n_mels * max(f.get("frames", 128),
                               longest // f.hop_length + 1) * 4
  else:
    per_image = f.image_size ** 2 * features_lib.num_channels(f.kind) * 4
  wave = wave_augment.from_config(config.augment.get("wave"),
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


def assign_split(d, labels, meta) -> np.ndarray:
  """Every clip's split under data.protocol (splits.py)."""
  if d.protocol == "file":
    return splits_lib.from_file(os.path.expanduser(d.get("split_file", "")),
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


def stream_choice(config, builder) -> tuple[bool, str]:
  """(stream the training clips?, why): data.stream 'on' / 'off', or 'auto':
  streamed when the in-memory path would hold over half the available
  memory and the dataset is stored as ArrayRecord."""
  mode = config.data.get("stream", "auto")
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
  if not stream_lib.random_access(builder):
    logging.warning("The in-memory path needs %s of %.1f GB available; to "
                    "stream instead: %s", need, avail / 2 ** 30,
                    stream_lib.rebuild_line(builder))
    return False, (f"data.stream=auto: in memory ({need} of "
                   f"{avail / 2 ** 30:.1f} GB; not ArrayRecord, cannot stream)")
  return True, (f"data.stream=auto: streamed (in memory it would hold {need} "
                f"of {avail / 2 ** 30:.1f} GB available)")


def load(config, *, progress: bool = True, norm=None) -> Data:
  """Loads, splits and featurises the dataset of `config`; streamed
  (data.stream, fser_jax/stream.py) or every clip in memory.

  Args:
    norm: (mean, std) per channel to standardise with instead of the
      training split's (train.init_from_norm: the source run's).
  """
  d = config.data
  builder = get_builder(d)
  ensure_built(builder, d)
  check_sample_rate(builder, d)
  streamed, why = stream_choice(config, builder)
  logging.info("Training input: %s.", why)
  if streamed:
    return load_streamed(config, builder, progress=progress, norm=norm)
  waveforms, labels, classes, meta = load_clips(d, builder)
  if not waveforms:
    raise DataError(f"dataset {d.dataset} has no clips")
  split = assign_split(d, labels, meta)
  used = split != splits_lib.UNUSED
  clip_index = np.flatnonzero(used)
  if not used.all():  # protocol 'file': clips the split file leaves out
    waveforms = [w for w, u in zip(waveforms, used) if u]
    labels, split = labels[used], split[used]
    meta = {k: v[used] for k, v in meta.items()}
  check_split(d, split, labels, meta)
  line, tight = memory_line(
      memory_estimate(config, len(waveforms),
                      int(sum(w.size for w in waveforms)),
                      max(w.size for w in waveforms)), available_memory())
  (logging.warning if tight else logging.info)("%s", line)
  images = features_lib.compute_images(waveforms, config.features,
                                       d.sample_rate, progress=progress)
  data = Data(images, labels, classes, meta, split, clip_index=clip_index)
  wave = wave_augment.from_config(config.augment.get("wave"), d.sample_rate)
  if wave.active:
    data.wav, data.wav_lengths = pad_waveforms(
        waveforms, wave.length_factor, config.features.hop_length)
  if config.get("baseline", True):
    # In this thread: librosa's YIN (a numba gufunc) run in a worker thread
    # beside training crashed test workers with segmentation faults.
    data.clip_stats = baseline_lib.features(waveforms, d.sample_rate)
  train = split == "train"
  standardise_data(config, data, norm,
                   lambda: channel_stats(images[train]),
                   lambda groups: group_norms(images, groups))
  return data


def standardise_data(config, data: Data, norm, train_stats, group_stats):
  """Sets data.norm, data.clip_norm and standardises data.images: `norm`
  when given (global), else the training split's statistics
  (`train_stats()`), or each group's (`group_stats(groups)`)."""
  channels = data.channels
  data.norm = ([0.0] * channels, [1.0] * channels)
  mode = normalize_mode(config.features)
  if norm is not None and mode == "global":
    data.norm = (list(norm[0]), list(norm[1]))
  elif uses_standardisation(config.features):
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
    groups = norm_groups(data.meta, mode)
    data.clip_norm = group_stats(groups)
    logging.info("Normalisation per %s: %d groups.", mode,
                 len(set(groups.tolist())))
  data.clip_norm = np.ascontiguousarray(data.clip_norm)
  data.images = standardise_clips(data.images, data.clip_norm[data.rows()])


def load_streamed(config, builder, *, progress: bool = True, norm=None
                  ) -> Data:
  """The streamed path: one index pass over every clip (labels, metadata,
  lengths, image sums, baseline statistics), then the validation and test
  clips' images; the training clips are read as steps need them."""
  d = config.data
  source = stream_lib.ClipSource(builder)
  index = stream_lib.index_pass(source, config.features, d.sample_rate,
                                baseline=config.get("baseline", True),
                                progress=progress)
  if not index.labels.size:
    raise DataError(f"dataset {d.dataset} has no clips")
  labels, meta = index.labels, index.meta
  split = assign_split(d, labels, meta)
  used = split != splits_lib.UNUSED
  clip_index = np.flatnonzero(used)
  source.order = source.order[used]  # positions follow the used clips
  labels, split = labels[used], split[used]
  meta = {k: v[used] for k, v in meta.items()}
  sums, lengths = index.sums[used], index.lengths[used]
  check_split(d, split, labels, meta)
  rows = np.flatnonzero(split != splits_lib.TRAIN)
  images = np.concatenate([
      features_lib.compute_images(source.read(rows[s:s + stream_lib.BLOCK]),
                                  config.features, d.sample_rate)
      for s in range(0, rows.size, stream_lib.BLOCK)])
  classes = tuple(builder.info.features["label"].names)
  data = Data(images, labels, classes, meta, split, clip_index=clip_index,
              source=source, image_rows=rows)
  wave = wave_augment.from_config(config.augment.get("wave"), d.sample_rate)
  hop = config.features.hop_length
  data.pad_to = int(np.ceil(lengths.max() * wave.length_factor / hop)) * hop
  if index.clip_stats is not None:
    data.clip_stats = index.clip_stats[used]
  train = split == "train"
  standardise_data(config, data, norm,
                   lambda: stream_lib.stats_from_sums(sums[train]),
                   lambda groups: group_norms(sums, groups,
                                              stream_lib.stats_from_sums))
  logging.info("Streamed: %d training clips read as steps need them (padded "
               "to %d samples); %d validation and test images held.",
               int(train.sum()), data.pad_to, rows.size)
  return data


def waveforms(config, data: Data) -> list:
  """The clips of `data`, in its order, read again from the dataset: the
  report scores them through fser_jax.inference, from audio, as predict
  and evaluate do."""
  if data.streamed:
    return data.source.read(np.arange(data.labels.size))
  wavs, _, _, meta = load_clips(config.data)
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


NORMALIZE = ("global", "speaker", "corpus")


def normalize_mode(features_cfg) -> str:
  return features_cfg.get("normalize", "global")


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
  """Per-channel (mean, std) of images [N, H, W, C] (float64 sums)."""
  flat = images.reshape(-1, images.shape[-1])
  return (flat.mean(0, dtype=np.float64).tolist(),
          (flat.std(0, dtype=np.float64) + 1e-6).tolist())


def norm_groups(meta: dict, mode: str) -> np.ndarray:
  """Each clip's normalisation group: its speaker (clips without one: their
  corpus) or its corpus."""
  corpus = np.asarray(meta["corpus"], object)
  if mode == "corpus":
    return np.array([f"corpus:{c}" for c in corpus], object)
  return np.array([f"speaker:{s}" if s else f"corpus:{c}"
                   for s, c in zip(meta["speaker"], corpus)], object)


def group_norms(images: np.ndarray, groups, stats=channel_stats
                ) -> np.ndarray:
  """[N, 2, C]: each clip's group's per-channel (mean, std), computed from
  that group's images alone (`stats(images[group])`; streamed: the group's
  per-clip sums, stream.stats_from_sums)."""
  groups = np.asarray(groups, object)
  out = np.zeros((len(groups), 2, images.shape[-1]), np.float32)
  for g in sorted(set(groups.tolist())):
    m = groups == g
    out[m] = np.asarray(stats(images[m]), np.float32)
  return out


def standardise_clips(images: np.ndarray, clip_norm: np.ndarray) -> np.ndarray:
  """(image - mean) / std per clip and channel, clip_norm [N, 2, C]
  (images [N, ..., C]: images, or feature vectors [N, C])."""
  c = clip_norm.reshape(clip_norm.shape[:2] + (1,) * (images.ndim - 2)
                        + clip_norm.shape[-1:])
  return ((images - c[:, 0]) / c[:, 1]).astype(np.float32)


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


def standardise(images: np.ndarray, norm) -> np.ndarray:
  """(images - mean) / std per channel: the one map training and predict use."""
  return ((images - np.asarray(norm[0], np.float32))
          / np.asarray(norm[1], np.float32))


def uses_standardisation(features_cfg) -> bool:
  """Whether images are standardised (configs saved before the key: logmel;
  normalize 'speaker' / 'corpus' always standardise)."""
  return (normalize_mode(features_cfg) != "global"
          or bool(features_cfg.get("standardize",
                                   features_cfg.kind == "logmel")))


def write_splits_csv(path: str, data: Data) -> None:
  import csv
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["filename", "corpus", "speaker", "gender", "language", "label",
                "split"])
    for i in range(data.labels.size):
      w.writerow([data.meta["filename"][i], data.meta["corpus"][i],
                  data.meta["speaker"][i], data.meta["gender"][i],
                  data.meta["language"][i], data.classes[data.labels[i]],
                  data.split[i]])
