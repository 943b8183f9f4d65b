"""The `fser` TFDS builder: every config over dummy_data/ (tiny files in each
real layout), the file-name conventions, Table 1 from a full layout, own data."""

import collections
import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from fser_jax import datasets
from fser_jax.datasets import corpora
import fake_corpora

DUMMY = os.path.join(os.path.dirname(datasets.__file__), "dummy_data")


class _Base:  # a mixin, so that pytest does not collect the base itself
  DATASET_CLASS = datasets.Fser
  SKIP_CHECKSUMS = True


class FserEmodbTest(_Base, tfds.testing.DatasetBuilderTestCase):
  BUILDER_CONFIG_NAMES_TO_TEST = ["emodb"]
  SPLITS = {"train": 4}  # 03a01Xa.wav (unknown emotion) skipped


class FserEmovoTest(_Base, tfds.testing.DatasetBuilderTestCase):
  BUILDER_CONFIG_NAMES_TO_TEST = ["emovo"]
  SPLITS = {"train": 3}  # the corrupt gio-f2-b2.wav skipped


class FserSaveeTest(_Base, tfds.testing.DatasetBuilderTestCase):
  BUILDER_CONFIG_NAMES_TO_TEST = ["savee"]
  SPLITS = {"train": 4}  # three in AudioData/, one flat; x01.wav skipped


class FserRavdessTest(_Base, tfds.testing.DatasetBuilderTestCase):
  BUILDER_CONFIG_NAMES_TO_TEST = ["ravdess"]
  SPLITS = {"train": 3}  # the song and the audio-video file skipped


class FserAllTest(_Base, tfds.testing.DatasetBuilderTestCase):
  BUILDER_CONFIG_NAMES_TO_TEST = ["all"]
  SPLITS = {"train": 14}


class FserSyntheticSmallTest(_Base, tfds.testing.DatasetBuilderTestCase):
  BUILDER_CONFIG_NAMES_TO_TEST = ["synthetic_small"]
  SPLITS = {"train": 192}


def _load(name, manual_dir, data_dir):
  b = tfds.builder(f"fser/{name}", data_dir=str(data_dir))
  b.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir)))
  return b, list(tfds.as_numpy(b.as_dataset(split="train")))


# Every clip of dummy_data/ that the builder keeps, with its FSER label,
# speaker and gender written out by hand from each corpus's documentation
# (../shared/corpora.md), not derived with the parsers under test.
DUMMY_TABLE = {
    ("emodb", "wav/03a01Wa.wav"): ("anger", "emodb_03", "male"),       # W Wut
    ("emodb", "wav/08b02La.wav"): ("calm", "emodb_08", "female"),      # L boredom
    ("emodb", "wav/11a04Tb.wav"): ("sadness", "emodb_11", "male"),     # T Trauer
    ("emodb", "wav/16b10Ab.wav"): ("anxiety", "emodb_16", "female"),   # A Angst
    ("emovo", "EMOVO/f1/dis-f1-b1.wav"): ("disgust", "emovo_f1", "female"),
    ("emovo", "EMOVO/f3/sor-f3-l2.wav"): ("surprise", "emovo_f3", "female"),
    ("emovo", "EMOVO/m2/pau-m2-n3.wav"): ("anxiety", "emovo_m2", "male"),
    ("savee", "AudioData/DC/a01.wav"): ("anger", "savee_DC", "male"),
    ("savee", "AudioData/JE/sa03.wav"): ("sadness", "savee_JE", "male"),
    ("savee", "AudioData/KL/su12.wav"): ("surprise", "savee_KL", "male"),
    ("savee", "JK_n23.wav"): ("neutral", "savee_JK", "male"),          # flat
    ("ravdess", "Actor_01/03-01-05-01-01-01-01.wav"):
        ("anger", "ravdess_01", "male"),                                # 05 angry
    ("ravdess", "Actor_12/03-01-06-02-02-01-12.wav"):
        ("anxiety", "ravdess_12", "female"),                            # 06 fearful
    ("ravdess", "Actor_24/03-01-02-01-01-02-24.wav"):
        ("calm", "ravdess_24", "female"),                               # 02 calm
}
# Speakers' genders as the documentation lists them.
DOC_GENDERS = {
    **{f"emodb_{s}": "male" for s in ("03", "10", "11", "12", "15")},
    **{f"emodb_{s}": "female" for s in ("08", "09", "13", "14", "16")},
    **{f"emovo_{s}": "female" for s in ("f1", "f2", "f3")},
    **{f"emovo_{s}": "male" for s in ("m1", "m2", "m3")},
    **{f"savee_{s}": "male" for s in ("DC", "JE", "JK", "KL")},
    **{f"ravdess_{a:02d}": ("male" if a % 2 else "female")
       for a in range(1, 25)},
}


def test_dummy_examples_carry_the_right_metadata(tmp_path, capfd):
  b, exs = _load("all", DUMMY, tmp_path)
  names = b.info.features["label"].names
  by_file = {(e["corpus"].decode(), e["filename"].decode()): e for e in exs}
  assert set(by_file) == set(DUMMY_TABLE)
  for key, (label, speaker, gender) in DUMMY_TABLE.items():
    e = by_file[key]
    assert (names[e["label"]], e["speaker"].decode(), e["gender"].decode()) \
        == (label, speaker, gender), key
  e = by_file[("emodb", "wav/08b02La.wav")]
  assert e["language"] == b"german" and e["text_id"] == b"b02"
  e = by_file[("ravdess", "Actor_12/03-01-06-02-02-01-12.wav")]
  assert e["intensity"] == b"strong"
  # Resampled to 16 kHz: 0.1 s of 48 kHz audio is 1600 samples.
  assert by_file[("emovo", "EMOVO/f1/dis-f1-b1.wav")]["audio"].shape == (1600,)
  # Skipped files are listed, by name and reason, in the build's output.
  err = capfd.readouterr().err
  assert "skipped 5 file(s)" in err
  for bad in ("03a01Xa.wav", "gio-f2-b2.wav", "x01.wav",
              "03-02-05-01-01-01-01.wav", "01-01-05-01-01-01-02.wav"):
    assert bad in err
  assert "song" in err and "cannot be decoded" in err


def test_manual_dir_is_not_modified(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY, manual)
  before = sorted((p, os.path.getmtime(os.path.join(manual, p)))
                  for p in os.listdir(manual))
  listing = sorted(str(p) for p in manual.rglob("*"))
  _load("all", manual, tmp_path / "data")
  assert sorted(str(p) for p in manual.rglob("*")) == listing
  assert before == sorted((p, os.path.getmtime(os.path.join(manual, p)))
                          for p in os.listdir(manual))


def test_archives_are_read_without_extracting_into_the_manual_dir(tmp_path):
  manual = tmp_path / "manual" / "savee"
  manual.mkdir(parents=True)
  src = os.path.join(DUMMY, "savee")
  shutil.make_archive(str(manual / "AudioData"), "zip", src, "AudioData")
  _, exs = _load("savee", tmp_path / "manual", tmp_path / "data")
  assert sorted(e["filename"].decode() for e in exs) == [
      "AudioData/DC/a01.wav", "AudioData/JE/sa03.wav", "AudioData/KL/su12.wav"]
  assert os.listdir(manual) == ["AudioData.zip"]


def test_all_reports_missing_corpora_and_empty_is_an_error(tmp_path, capfd):
  manual = tmp_path / "m"
  shutil.copytree(os.path.join(DUMMY, "savee"), manual / "savee")
  _, exs = _load("all", manual, tmp_path / "d1")
  assert len(exs) == 4
  assert "corpora missing" in capfd.readouterr().err
  (manual / "emodb").mkdir()
  (manual / "emodb" / "README.txt").write_text("not audio")
  with pytest.raises(ValueError, match="no recognisable emodb clip"):
    _load("emodb", manual, tmp_path / "d2")


def test_full_layout_reproduces_table1(tmp_path):
  manual = tmp_path / "full"
  fake_corpora.write_full_layout(str(manual))
  b, exs = _load("all", manual, tmp_path / "data")
  names = b.info.features["label"].names
  counts = collections.Counter(names[e["label"]] for e in exs)
  assert dict(counts) == {  # the paper's Table 1, written out
      "anger": 463, "anxiety": 405, "calm": 273, "disgust": 382,
      "happiness": 407, "neutral": 379, "sadness": 398, "surprise": 336}
  assert len(exs) == 3043
  per_corpus = collections.Counter(e["corpus"].decode() for e in exs)
  assert per_corpus == {"emodb": 535, "emovo": 588, "savee": 480, "ravdess": 1440}
  speakers = collections.defaultdict(set)
  for e in exs:
    speakers[e["corpus"].decode()].add(e["speaker"].decode())
  assert {c: len(s) for c, s in speakers.items()} == {
      "emodb": 10, "emovo": 6, "savee": 4, "ravdess": 24}
  # Every speaker's gender as the documentation lists it (not as the parsers
  # derive it), and every speaker of the documentation present.
  genders = {e["speaker"].decode(): e["gender"].decode() for e in exs}
  assert genders == DOC_GENDERS


# --- file-name conventions -----------------------------------------------------
@pytest.mark.parametrize("name,label,speaker,gender", [
    ("wav/03a01Wa.wav", "anger", "emodb_03", "male"),
    ("wav/16b10Lb.wav", "boredom", "emodb_16", "female"),
    ("wav/09a05Ea.wav", "disgust", "emodb_09", "female"),
])
def test_emodb_names(name, label, speaker, gender):
  c = corpora.CORPORA["emodb"].parse(name)
  assert (c.label, c.speaker, c.gender) == (label, speaker, gender)


@pytest.mark.parametrize("bad", ["wav/03a01Xa.wav", "wav/04a01Wa.wav",
                                 "wav/03c01Wa.wav", "wav/03a01W.wav",
                                 "wav/03a01Wa.mp3"])
def test_emodb_counterexamples(bad):
  with pytest.raises(corpora.FilenameError, match=bad.split("/")[-1]):
    corpora.CORPORA["emodb"].parse(bad)


@pytest.mark.parametrize("name,label,speaker,gender", [
    ("EMOVO/f1/dis-f1-b1.wav", "disgust", "emovo_f1", "female"),
    ("EMOVO/m3/pau-m3-n5.wav", "fear", "emovo_m3", "male"),
    ("EMOVO/f2/gio-f2-d2.wav", "happiness", "emovo_f2", "female"),
])
def test_emovo_names(name, label, speaker, gender):
  c = corpora.CORPORA["emovo"].parse(name)
  assert (c.label, c.speaker, c.gender) == (label, speaker, gender)


@pytest.mark.parametrize("bad", ["EMOVO/f1/xxx-f1-b1.wav",
                                 "EMOVO/f4/dis-f4-b1.wav",
                                 "EMOVO/f1/dis-f1-z9.wav", "EMOVO/f1/dis_f1.wav"])
def test_emovo_counterexamples(bad):
  with pytest.raises(corpora.FilenameError):
    corpora.CORPORA["emovo"].parse(bad)


@pytest.mark.parametrize("name,label,speaker", [
    ("AudioData/DC/a01.wav", "anger", "savee_DC"),
    ("AudioData/KL/sa15.wav", "sadness", "savee_KL"),
    ("AudioData/JE/su03.wav", "surprise", "savee_JE"),
    ("JE_n23.wav", "neutral", "savee_JE"),
    ("JK_f07.wav", "fear", "savee_JK"),
])
def test_savee_names(name, label, speaker):
  c = corpora.CORPORA["savee"].parse(name)
  assert (c.label, c.speaker, c.gender) == (label, speaker, "male")


@pytest.mark.parametrize("bad", ["AudioData/DC/x01.wav", "AudioData/ZZ/a01.wav",
                                 "a01.wav", "XX_a01.wav", "JE_sx01.wav"])
def test_savee_counterexamples(bad):
  with pytest.raises(corpora.FilenameError):
    corpora.CORPORA["savee"].parse(bad)


@pytest.mark.parametrize("name,label,speaker,gender,intensity", [
    ("Actor_12/03-01-06-01-02-01-12.wav", "fear", "ravdess_12", "female", "normal"),
    ("Actor_01/03-01-02-02-01-01-01.wav", "calm", "ravdess_01", "male", "strong"),
    ("Actor_23/03-01-08-01-01-02-23.wav", "surprise", "ravdess_23", "male", "normal"),
])
def test_ravdess_names(name, label, speaker, gender, intensity):
  c = corpora.CORPORA["ravdess"].parse(name)
  assert (c.label, c.speaker, c.gender, c.intensity) == (
      label, speaker, gender, intensity)


@pytest.mark.parametrize("bad,why", [
    ("Actor_01/03-02-05-01-01-01-01.wav", "song"),
    ("Actor_01/01-01-05-01-01-01-01.wav", "audio-video"),
    ("Actor_01/02-01-05-01-01-01-01.wav", "video-only"),
    ("Actor_01/03-01-09-01-01-01-01.wav", "emotion"),
    ("Actor_01/03-01-05-01-01-01-25.wav", "actor"),
    ("Actor_02/03-01-05-01-01-01-01.wav", "filed under"),
    ("Actor_01/03-01-05.wav", "7 two-digit"),
])
def test_ravdess_counterexamples(bad, why):
  with pytest.raises(corpora.FilenameError, match=why):
    corpora.CORPORA["ravdess"].parse(bad)


def test_fser_mapping():
  assert corpora.to_fser("fear") == "anxiety"
  assert corpora.to_fser("boredom") == "calm"
  assert corpora.to_fser("anger") == "anger"
  assert sum(corpora.TABLE1.values()) == 3043


# --- own data ------------------------------------------------------------------
def _own_folder(root, labels=("calm", "happy", "sad"), per=3, sr=22050):
  import soundfile as sf
  rng = np.random.default_rng(0)
  for li, lab in enumerate(labels):
    (root / lab).mkdir(parents=True)
    for k in range(per):
      t = np.arange(int(sr * 0.3)) / sr
      sf.write(root / lab / f"c{k}.wav",
               (0.3 * np.sin(2 * np.pi * (150 + 100 * li) * t)
                + 0.01 * rng.standard_normal(t.size)).astype(np.float32), sr)


def test_own_folder_builds_with_its_labels(tmp_path):
  _own_folder(tmp_path / "data")
  (tmp_path / "data" / "sad" / "broken.wav").write_bytes(b"not audio at all")
  cfg = datasets.own_config(str(tmp_path / "data"))
  b = datasets.Fser(config=cfg, data_dir=str(tmp_path / "tfds"))
  b.download_and_prepare()
  exs = list(tfds.as_numpy(b.as_dataset(split="train")))
  assert b.info.features["label"].names == ["calm", "happy", "sad"]
  assert len(exs) == 9  # broken.wav skipped
  assert {e["filename"].decode() for e in exs} >= {"calm/c0.wav", "sad/c2.wav"}


def test_own_manifest_with_speakers(tmp_path):
  _own_folder(tmp_path / "data", per=2)
  rows = ["path,label,speaker"]
  for lab in ("calm", "happy", "sad"):
    for k in range(2):
      rows.append(f"data/{lab}/c{k}.wav,{lab},spk{k}")
  (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
  entries, problems = datasets.scan_own(str(tmp_path / "m.csv"))
  assert len(entries) == 6 and not problems
  assert {e["speaker"] for e in entries} == {"spk0", "spk1"}
  (tmp_path / "bad.csv").write_text("file,emotion\nx.wav,sad\n")
  with pytest.raises(ValueError, match="bad.csv: a manifest needs the columns"):
    datasets.scan_own(str(tmp_path / "bad.csv"))


def test_tfds_cli_builds_and_loads(tmp_path):
  """`tfds build fser --imports fser_jax.datasets ...` right after install."""
  import subprocess
  import sys
  exe = os.path.join(os.path.dirname(sys.executable), "tfds")
  r = subprocess.run([exe, "build", "fser", "--imports", "fser_jax.datasets",
                      "--config", "ravdess", "--manual_dir", DUMMY,
                      "--data_dir", str(tmp_path)], capture_output=True,
                     text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  ds = tfds.load("fser/ravdess", data_dir=str(tmp_path), split="all")
  assert len(list(ds)) == 3


def test_training_input_builds_a_missing_dataset_on_first_use(tmp_path):
  from fser_jax import config as config_lib
  from fser_jax.data import dataset_io
  d = config_lib.base().data
  d.dataset = "fser/savee"
  d.data_dir = str(tmp_path)
  d.manual_dir = DUMMY
  wavs, labels, classes, meta = dataset_io.load_clips(d)
  assert len(wavs) == 4 and classes == corpora.CORPORA["savee"].classes
  assert sorted(meta["speaker"]) == ["savee_DC", "savee_JE", "savee_JK", "savee_KL"]


def test_beam_build_equals_the_in_process_build(tmp_path):
  """The same examples from Apache Beam (DirectRunner, 2 worker processes)
  as from the in-process build: synthetic clips, real-layout corpus files
  (decoded and resampled on the workers), skipped files and all."""
  from fser_jax.data import dataset_io
  fake_corpora.write_more_dummy(str(tmp_path / "manual"), ["aesdd"])
  opts = "direct_num_workers=2,direct_running_mode=multi_processing"
  for name in ("synthetic_small", "aesdd"):
    got = {}
    for how, beam in (("plain", ""), ("beam", opts)):
      b = tfds.builder(f"fser/{name}", data_dir=str(tmp_path / how))
      b.download_and_prepare(download_config=tfds.download.DownloadConfig(
          manual_dir=str(tmp_path / "manual"),
          beam_options=dataset_io.beam_options(beam)))
      got[how] = {e["filename"]: e for e in tfds.as_numpy(
          b.as_dataset(split="train"))}
    assert set(got["plain"]) == set(got["beam"]) and got["plain"]
    for k, e in got["plain"].items():
      f = got["beam"][k]
      assert set(e) == set(f)
      for field in e:
        np.testing.assert_array_equal(e[field], f[field], err_msg=field)
  assert len(got["plain"]) == 5  # aesdd: 5 good clips of 8 files
