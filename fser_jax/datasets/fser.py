"""The `fser` TFDS builder: the four FSER corpora, their union, the embedded
synthetic corpus and the user's own recordings.

Configs:
  emodb, emovo, savee, ravdess  one corpus, native labels
  all                           every corpus present, the 8 FSER classes
  aesdd, crema_d, tess, cafe, subesco, shemo, urdu, jl, emov_db, esd, mesd,
  oreau                         one more corpus each, native labels
  paper_aesdd                   the paper's four and AESDD (Greek), unified
                                labels (corpora.UNIFIED_CLASSES)
  field                         every corpus present, unified labels
  a mix such as `emodb+aesdd`   any corpora named with `+` (`mix_config`),
                                unified labels
  synthetic                     the embedded procedural corpus (no download)
  own                           the user's folder or CSV manifest (see below)

One split, `train`, holds every clip; evaluation protocols (random, speaker-
independent, leave-one-corpus-out) are computed by `fser_jax.data.splits` from the
metadata each example carries.

Build with the TFDS CLI:
  tfds build fser --imports fser_jax.datasets --config all \\
      --manual_dir M --data_dir D --file_format array_record
(ArrayRecord: read by position, in memory or streamed; the library builds
that format on first use.)
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import itertools
import os
import sys

import numpy as np
import tensorflow_datasets as tfds

from fser_jax.frontend import audio as audio_lib
from fser_jax.datasets import corpora
from fser_jax.datasets import files
from fser_jax.datasets import synthetic
from fser_jax.errors import DataError

CORPORA = corpora.PAPER
MORE = tuple(c for c in corpora.CORPORA if c not in CORPORA)
KNOWN = CORPORA + MORE
# Longer clips are refused by dataset builds (a 4-corpus clip lasts 1-9 s).
MAX_CLIP_SECONDS = 60.0
MIN_SAMPLES = 512  # one FFT window of the paper's front-end


@dataclasses.dataclass
class FserConfig(tfds.core.BuilderConfig):
  """A `fser` variant.

  Attributes:
    corpora: corpus folders read from the manual dir (real corpora only).
    fser_labels: map native labels to the 8 FSER classes.
    unified: map native labels into corpora.UNIFIED_CLASSES (the classes
      the corpora have, in that order).
    sample_rate: every clip is resampled to this rate.
    labels: the label set of an `own` dataset (found by `own_config`).
    path: the `own` dataset's folder or CSV manifest.
    columns: the manifest's column map (files.parse_columns), '' for none.
    synthetic_seed, synthetic_utterances: the embedded corpus's generator.
  """
  corpora: tuple[str, ...] = ()
  fser_labels: bool = False
  unified: bool = False
  sample_rate: int = 16000
  labels: tuple[str, ...] = ()
  path: str = ""
  columns: str = ""
  synthetic_seed: int = 0
  synthetic_utterances: int = 8


MANUAL_DOWNLOAD_INSTRUCTIONS = """\
The corpora cannot be downloaded automatically (licences and registration
differ). Put one folder per corpus in the manual dir, each holding either the
archive as its site serves it or its extracted contents:

  M/emodb/download.zip                    or  M/emodb/wav/03a01Wa.wav ...
  M/emovo/<EMOVO zip>                     or  M/emovo/EMOVO/f1/dis-f1-b1.wav ...
  M/savee/AudioData.zip                   or  M/savee/AudioData/DC/a01.wav ...
                                          or  M/savee/DC_a01.wav ... (flat)
  M/ravdess/Audio_Speech_Actors_01-24.zip or  M/ravdess/Actor_01/03-01-05-01-01-01-01.wav

EmoDB: http://emodb.bilderbar.info  EMOVO: http://voice.fub.it/activities/corpora/emovo
SAVEE: http://kahlan.eps.surrey.ac.uk/savee (registration)  RAVDESS: https://zenodo.org/record/1188976

The other corpora go the same way, one folder each, named as their config
(M/aesdd/anger/a01 (1).wav, M/crema_d/AudioWAV/1001_DFA_ANG_XX.wav with
VideoDemographics.csv, M/tess, M/cafe, M/subesco, M/shemo, M/urdu, M/jl,
M/emov_db, M/esd, M/mesd, M/oreau); docs/data.md gives each layout, licence
and where to ask for it.
`all` and `field` use every corpus present and log which are missing. Nothing in the
manual dir is modified: archives are extracted into TFDS's download dir.

For `own` data, the manual dir is your data: one subfolder per label
(M/happy/x.wav ...) or a CSV manifest with columns path,label[,speaker,...].
"""


def _stderr(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


# Threads making examples in an in-process build (read at import: TFDS' test
# case replaces parts of `os` while a build runs).
BUILD_THREADS = min(4, os.cpu_count() or 1)


class PcmAudio(tfds.features.Audio):
  """tfds.features.Audio that stores in-memory samples with its `encoding`
  (TFDS' Audio passes numpy arrays through unencoded, so 'bytes' would fail
  to serialize). With encoding='bytes' a clip is one int16 byte string:
  ~3x smaller than an int64 list (protobuf varints take up to 10 bytes a
  negative sample) and parsed ~7x faster."""

  def encode_example(self, audio_or_path_or_fobj):
    if isinstance(audio_or_path_or_fobj, (np.ndarray, list)):
      return tfds.features.Tensor.encode_example(
          self, np.asarray(audio_or_path_or_fobj, self.np_dtype))
    return super().encode_example(audio_or_path_or_fobj)


class Fser(tfds.core.GeneratorBasedBuilder):
  """FSER's speech emotion corpora as one TFDS dataset."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "Four corpora, synthetic corpus, own data.",
      "1.1.0": "Audio stored as raw int16 bytes instead of an int64 list: "
               "files ~3x smaller, clips parse ~7x faster (streamed "
               "training reads them at every step)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      *[FserConfig(name=c, description=f"{c} with its native labels.",
                   corpora=(c,)) for c in CORPORA],
      FserConfig(name="all", corpora=CORPORA, fser_labels=True,
                 description="Every corpus present, mapped to the 8 FSER "
                 "classes (fear -> anxiety, EmoDB boredom -> calm)."),
      *[FserConfig(name=c, corpora=(c,),
                   description=f"{corpora.CORPORA[c].description} with its "
                   "native labels.") for c in MORE],
      FserConfig(name="paper_aesdd", corpora=CORPORA + ("aesdd",),
                 unified=True,
                 description="The paper's four corpora and AESDD (Greek), "
                 "in the unified label space."),
      FserConfig(name="field", corpora=KNOWN, unified=True,
                 description="Every corpus present, in the unified label "
                 "space."),
      FserConfig(name="synthetic", fser_labels=True,
                 description="Embedded procedural emotional-speech corpus: "
                 "8 classes, 12 speakers, 2 languages; no download."),
      FserConfig(name="synthetic_small", fser_labels=True,
                 synthetic_utterances=2,
                 description="The synthetic corpus with 2 clips per speaker "
                 "and emotion (192 clips): smoke tests and demos."),
  ]

  def _labels(self) -> tuple[str, ...]:
    cfg = self.builder_config
    if cfg.fser_labels:
      return corpora.FSER_CLASSES
    if cfg.unified:
      present = {corpora.to_unified(label) for c in cfg.corpora
                 for label in corpora.CORPORA[c].classes}
      return tuple(c for c in corpora.UNIFIED_CLASSES if c in present)
    if cfg.labels:
      return tuple(cfg.labels)
    if len(cfg.corpora) == 1:
      return corpora.CORPORA[cfg.corpora[0]].classes
    raise ValueError(f"fser config {cfg.name!r} has no label set")

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "audio": PcmAudio(shape=(None,), dtype=np.int16,
                              sample_rate=cfg.sample_rate, encoding="bytes"),
            "label": tfds.features.ClassLabel(names=self._labels()),
            "speaker": tfds.features.Text(),
            "gender": tfds.features.Text(),
            "corpus": tfds.features.Text(),
            "language": tfds.features.Text(),
            "filename": tfds.features.Text(),
            "text_id": tfds.features.Text(),
            "intensity": tfds.features.Text(),
        }),
        supervised_keys=("audio", "label"),
        citation="Dossou & Gbenou, FSER: Deep Convolutional Neural Networks "
        "for Speech Emotion Recognition, 2021.",
    )

  def _generate_splits(self, dl_manager, download_config):
    # Beam when asked (`tfds build ... --beam_pipeline_options=...`,
    # data.beam_options): the clips are then decoded and resampled on the
    # pipeline's workers; otherwise in this process. Both paths make every
    # example with the same function from the same list of items.
    self._beam = bool(download_config.beam_options
                      or download_config.beam_runner)
    return super()._generate_splits(dl_manager, download_config)

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    if cfg.name.startswith("synthetic"):
      items = [("synthetic", cfg.synthetic_seed, it) for it in
               synthetic.items(cfg.synthetic_seed, cfg.synthetic_utterances)]
      return {"train": self._generate_examples(items, [])}
    if cfg.path:
      return {"train": self._generate_examples(
          *self._own_items(cfg.path, cfg.columns))}
    manual = os.fspath(dl_manager.manual_dir)
    found, missing = {}, []
    for corpus in cfg.corpora:
      root = os.path.join(manual, corpus)
      if files.has_content(root):
        found[corpus] = files.extracted_roots(root, dl_manager)
      else:
        missing.append(corpus)
    if not found:
      raise DataError(
          f"no corpus folder found in the manual dir {manual} (looked for "
          f"{', '.join(c + '/' for c in cfg.corpora)}).\n"
          + MANUAL_DOWNLOAD_INSTRUCTIONS)
    if missing:
      _stderr(f"fser/{cfg.name}: corpora missing from {manual}: "
              f"{', '.join(missing)}; building from {', '.join(found)}.")
    return {"train": self._generate_examples(*self._corpus_items(found))}

  def _generate_examples(self, items: list, skipped: list[str]):
    """Examples of `items` (see `make_example`): a Beam PTransform when the
    build runs on Beam, else a generator. `skipped` are the files the
    listing already refused (named in the build's output)."""
    name = f"fser/{self.builder_config.name}"
    make = functools.partial(make_example,
                             sample_rate=self.builder_config.sample_rate)
    if getattr(self, "_beam", False):
      _report_skipped(name, skipped)
      beam = tfds.core.lazy_imports.apache_beam
      return beam.Create(items) | beam.FlatMap(
          functools.partial(_beam_examples, make=make, name=name))
    return self._in_process(items, skipped, make, name)

  @staticmethod
  def _in_process(items, skipped, make, name):
    """`make` over `items` in a few threads (decoding, resampling and
    synthesis are numpy/C work that releases the GIL: 1.7x on 2 cores),
    in order, at most 4 per thread ahead of the writer."""
    skipped = list(skipped)
    threads = BUILD_THREADS
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
      ahead = collections.deque()
      it = iter(items)
      for item in itertools.islice(it, 4 * threads):
        ahead.append(pool.submit(make, item))
      while ahead:
        key, example, problem = ahead.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
          ahead.append(pool.submit(make, nxt))
        if problem:
          skipped.append(f"{key}: {problem}")
        else:
          yield key, example
    _report_skipped(name, skipped)

  # --- what each source's items are --------------------------------------------
  def _corpus_items(self, found: dict[str, list[str]]):
    """(items, skipped) of the corpora: every file named by its corpus's
    convention, with its metadata; the others skipped with the reason."""
    cfg = self.builder_config
    items, skipped = [], []
    for corpus, roots in found.items():
      clips = []
      for root in roots:
        parse = corpora.CORPORA[corpus].parser(root)
        for rel in files.walk_audio(root):
          name = corpora.corpus_relative(corpus, rel)
          if name is None:
            continue
          try:
            clips.append((parse(name), os.path.join(root, rel)))
          except corpora.FilenameError as e:
            skipped.append(f"{corpus}/{rel}: {e.problem}")
      if not clips:
        raise DataError(
            f"{corpus}: no recognisable {corpus} clip under {roots[0]} "
            f"(expected e.g. {corpora.CORPORA[corpus].example}); see the "
            "manual instructions:\n" + MANUAL_DOWNLOAD_INSTRUCTIONS)
      for clip, path in sorted(clips, key=lambda c: c[0].filename):
        label = (corpora.to_fser(clip.label) if cfg.fser_labels else
                 corpora.to_unified(clip.label) if cfg.unified else clip.label)
        items.append(("file", f"{corpus}/{clip.filename}", path, dict(
            label=label, speaker=clip.speaker, gender=clip.gender,
            corpus=corpus, language=clip.language, filename=clip.filename,
            text_id=clip.text_id, intensity=clip.intensity)))
    return items, skipped

  @staticmethod
  def _own_items(path: str, columns: str = ""):
    entries, problems = files.scan_own(path, columns)
    return [("file", e["filename"], e["abspath"], dict(
        label=e["label"], speaker=e["speaker"], gender=e["gender"],
        corpus=e["corpus"], language=e["language"], filename=e["filename"],
        text_id="", intensity="")) for e in entries], list(problems)


def make_example(item, sample_rate: int):
  """(key, example or None, problem or None) of one item:
  ('file', key, path, metadata) is read, mixed to mono and resampled;
  ('synthetic', seed, (speaker, emotion, utterance)) is synthesised."""
  if item[0] == "synthetic":
    _, seed, it = item
    key, meta, wav = synthetic.clip(seed, it, sample_rate)
    return key, _example(wav, **meta), None
  _, key, path, meta = item
  try:
    wav = audio_lib.load_audio(path, sample_rate, min_samples=MIN_SAMPLES,
                               max_seconds=MAX_CLIP_SECONDS)
  except audio_lib.AudioError as e:
    return key, None, e.problem
  return key, _example(wav, **meta), None


def _beam_examples(item, make, name):
  key, example, problem = make(item)
  if problem:  # on the worker: named in its log
    _stderr(f"{name}: skipped 1 file(s):\n  {key}: {problem}")
    return []
  return [(key, example)]


def mix_config(names) -> FserConfig:
  """The builder config of several corpora by name (`emodb+aesdd`), in the
  unified label space; its name lists them sorted, so any order of the same
  corpora shares one built dataset."""
  names = sorted(set(names))
  unknown = [n for n in names if n not in KNOWN]
  if unknown:
    raise DataError(f"unknown corpus {unknown[0]!r} in a mix; known: "
                    f"{', '.join(KNOWN)}")
  return FserConfig(name="mix_" + "_".join(names), corpora=tuple(names),
                    unified=True,
                    description="Corpora " + ", ".join(names)
                    + ", unified labels.")


def _example(wav: np.ndarray, **meta) -> dict:
  pcm = np.clip(np.round(wav * 32767.0), -32768, 32767).astype(np.int16)
  return {"audio": pcm, **meta}


def _report_skipped(name: str, skipped: list[str]) -> None:
  if skipped:
    _stderr(f"{name}: skipped {len(skipped)} file(s):\n  "
            + "\n  ".join(skipped))




def own_config(path: str, sample_rate: int = 16000,
               columns: str = "") -> FserConfig:
  """A builder config for the user's data at `path` (folder or manifest).

  Its name carries a digest of the absolute path and label set, so different
  datasets never share a TFDS directory.
  """
  return FserConfig(**files.own_config_args(path, sample_rate, columns))
