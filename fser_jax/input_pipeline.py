"""From a TFDS dataset to device-ready arrays: clips, splits, images.

`load(config)` reads the `fser` dataset named by `config.data` (building it on
first use), assigns every clip to train/validation/test by the protocol, and
runs the front-end (features.py) on the accelerator. The result is small: the
whole dataset's images live on the device, where augmentation and batching
happen inside the jitted epoch (train.py).
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
from fser_jax import wave_augment
from fser_jax.errors import DataError, UserError

META_KEYS = ("speaker", "gender", "corpus", "language", "filename", "text_id",
             "intensity")


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

  def raw_images(self) -> np.ndarray:
    """The images before standardisation (for pictures of them)."""
    if self.clip_norm is not None:
      c = self.clip_norm[:, :, None, None, :]
      return self.images * c[:, 1] + c[:, 0]
    return self.images * np.float32(self.norm[1]) + np.float32(self.norm[0])

  def subset(self, name: str) -> tuple[np.ndarray, np.ndarray]:
    m = self.split == name
    return self.images[m], self.labels[m]

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
    cfg = datasets.own_config(data_cfg.own_path, data_cfg.sample_rate)
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


def ensure_built(builder, data_cfg) -> None:
  """Builds the dataset if needed (the synthetic corpus always can be)."""
  import tensorflow_datasets as tfds
  if builder.is_prepared():
    return
  name = builder.builder_config.name
  needs_manual = not name.startswith("synthetic") and not builder.builder_config.path
  if needs_manual and not data_cfg.manual_dir:
    raise DatasetNotBuiltError(
        f"dataset fser/{name} is not built in {builder.data_dir_root}. Build it "
        f"with\n  tfds build fser --imports fser_jax.datasets --config {name} "
        f"--manual_dir M --data_dir {builder.data_dir_root}\nor set "
        f"--config.data.manual_dir=M to build it now.\n"
        + builder.MANUAL_DOWNLOAD_INSTRUCTIONS)
  logging.info("Building fser/%s into %s (first use).", name,
               builder.data_dir_root)
  dl_config = tfds.download.DownloadConfig(
      manual_dir=os.path.expanduser(data_cfg.manual_dir) or None,
      beam_options=beam_options(data_cfg.get("beam_options", "")))
  builder.download_and_prepare(download_config=dl_config)


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


def load_clips(data_cfg):
  """(waveforms list, labels, class names, metadata) of the whole dataset."""
  import tensorflow_datasets as tfds
  builder = get_builder(data_cfg)
  ensure_built(builder, data_cfg)
  info = builder.info
  classes = tuple(info.features["label"].names)
  sr = info.features["audio"].sample_rate
  if sr != data_cfg.sample_rate:
    raise DataError(f"dataset {data_cfg.dataset} holds {sr} Hz audio but "
                    f"config data.sample_rate={data_cfg.sample_rate}; set "
                    f"--config.data.sample_rate={sr}")
  ds = builder.as_dataset(split="train", shuffle_files=False)
  waveforms, labels, meta = [], [], {k: [] for k in META_KEYS}
  for ex in tfds.as_numpy(ds):
    waveforms.append(ex["audio"].astype(np.float32) / 32768.0)
    labels.append(int(ex["label"]))
    for k in META_KEYS:
      meta[k].append(ex[k].decode())
  # TFDS' read order is a hash of the keys: sort by file name so every
  # consumer sees one order.
  order = np.argsort(np.array(meta["filename"]), kind="stable")
  meta = {k: np.array(v, dtype=object)[order] for k, v in meta.items()}
  return ([waveforms[i] for i in order], np.array(labels, np.int32)[order],
          classes, meta)


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
    line += (": it may be killed for memory. Turn off augment.wave, train on "
             "fewer corpora or use a larger machine (training data is not "
             "streamed from disk).")
  return line, tight


def load(config, *, progress: bool = True, norm=None) -> Data:
  """Loads, splits and featurises the dataset of `config`.

  Args:
    norm: (mean, std) per channel to standardise with instead of the
      training split's (train.init_from_norm: the source run's).
  """
  d = config.data
  waveforms, labels, classes, meta = load_clips(d)
  if not waveforms:
    raise DataError(f"dataset {d.dataset} has no clips")
  if d.protocol == "file":
    split = splits_lib.from_file(os.path.expanduser(d.get("split_file", "")),
                                 meta["filename"])
  else:
    split = splits_lib.assign(
        d.protocol, {**meta, "label": labels}, fold=d.fold, folds=d.num_folds,
        seed=d.split_seed, test_fraction=d.test_fraction,
        val_fraction=d.val_fraction)
  used = split != splits_lib.UNUSED
  clip_index = np.flatnonzero(used)
  if not used.all():  # protocol 'file': clips the split file leaves out
    waveforms = [w for w, u in zip(waveforms, used) if u]
    labels, split = labels[used], split[used]
    meta = {k: v[used] for k, v in meta.items()}
  for s in (splits_lib.TRAIN, splits_lib.TEST):
    if not np.any(split == s):
      raise DataError(
          f"protocol {d.protocol!r} fold {d.fold} leaves the {s} split empty "
          f"({len(labels)} clips, "
          f"{len(set(meta['speaker'].tolist()) - {''})} speakers); use another "
          "data.protocol or more data")
  line, tight = memory_line(
      memory_estimate(config, len(waveforms),
                      int(sum(w.size for w in waveforms)),
                      max(w.size for w in waveforms)), available_memory())
  (logging.warning if tight else logging.info)("%s", line)
  logging.info("fser data %s: %d clips, %d classes; protocol %s fold %d: "
               "train %d, validation %d, test %d", d.dataset, len(waveforms),
               len(classes), d.protocol, d.fold, np.sum(split == "train"),
               np.sum(split == "validation"), np.sum(split == "test"))
  images = features_lib.compute_images(waveforms, config.features,
                                       d.sample_rate, progress=progress)
  data = Data(images, labels, classes, meta, split, clip_index=clip_index)
  wave = wave_augment.from_config(config.augment.get("wave"), d.sample_rate)
  if wave.active:
    data.wav, data.wav_lengths = pad_waveforms(
        waveforms, wave.length_factor, config.features.hop_length)
  if config.get("baseline", True):
    data.clip_stats = baseline_lib.features(waveforms, d.sample_rate)
  channels = images.shape[-1]
  data.norm = ([0.0] * channels, [1.0] * channels)
  mode = normalize_mode(config.features)
  if norm is not None and mode == "global":
    data.norm = (list(norm[0]), list(norm[1]))
  elif uses_standardisation(config.features):
    # Training-set statistics only (no test leakage); one affine map per
    # channel for every clip, so loudness and colour differences between
    # clips survive (per-image scaling would erase them). Under 'speaker' /
    # 'corpus' they are kept for --normalize_by none.
    data.norm = channel_stats(images[split == "train"])
  data.clip_norm = np.broadcast_to(
      np.asarray(data.norm, np.float32)[None], (len(labels), 2, channels))
  if mode != "global":
    # Each group's own clips, every split: a test speaker's statistics come
    # from that speaker's audio only (never labels, never other speakers).
    groups = norm_groups(meta, mode)
    data.clip_norm = group_norms(images, groups)
    logging.info("Normalisation per %s: %d groups.", mode,
                 len(set(groups.tolist())))
  data.clip_norm = np.ascontiguousarray(data.clip_norm)
  data.images = standardise_clips(images, data.clip_norm)
  return data


def waveforms(config, data: Data) -> list:
  """The clips of `data`, in its order, read again from the dataset: the
  report scores them through fser_jax.inference, from audio, as predict
  and evaluate do."""
  wavs, _, _, meta = load_clips(config.data)
  if not np.array_equal(meta["filename"][data.clip_index],
                        data.meta["filename"]):
    raise DataError(f"dataset {config.data.dataset} changed while the run "
                    "was training; train again")
  return [wavs[i] for i in data.clip_index]


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


def group_norms(images: np.ndarray, groups) -> np.ndarray:
  """[N, 2, C]: each clip's group's per-channel (mean, std), computed from
  that group's images alone."""
  groups = np.asarray(groups, object)
  out = np.zeros((len(groups), 2, images.shape[-1]), np.float32)
  for g in sorted(set(groups.tolist())):
    m = groups == g
    out[m] = np.asarray(channel_stats(images[m]), np.float32)
  return out


def standardise_clips(images: np.ndarray, clip_norm: np.ndarray) -> np.ndarray:
  """(image - mean) / std per clip and channel, clip_norm [N, 2, C]."""
  c = clip_norm[:, :, None, None, :]
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
