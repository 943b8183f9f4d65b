"""The `fser` TFDS dataset a config names: its builder (a corpus, a mix, or
the user's own folder or manifest), built on first use (in process or on
Apache Beam), and its clips read back sorted by file name.
"""

from __future__ import annotations

import os

import numpy as np
from absl import logging

from fser_jax.data import stream as stream_lib
from fser_jax.config import ConfigError
from fser_jax.errors import DataError, UserError

META_KEYS = stream_lib.META_KEYS


class DatasetNotBuiltError(UserError, RuntimeError):
  pass


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
                              data_cfg.columns)
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
      beam_options=beam_options(data_cfg.beam_options))
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
