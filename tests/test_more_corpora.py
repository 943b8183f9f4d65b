"""The twelve more corpora: each builds from a dummy copy of its documented
layout (odd files and a broken one included), with labels, speakers and
genders checked against tables written by hand (tests/fake_corpora.py); one
label space across them; leave-one-corpus-out over a mix of them."""

import csv
import os

import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from fser_jax import datasets
from fser_jax.data import splits
from fser_jax.datasets import corpora
from fser_jax.datasets import fser as fser_builder
import fake_corpora

# Native label sets as each corpus's documentation lists them (English
# names), written out here rather than read from the code under test.
NATIVE = {
    "aesdd": ["anger", "disgust", "fear", "happiness", "sadness"],
    "crema_d": ["anger", "disgust", "fear", "happiness", "neutral", "sadness"],
    "tess": ["anger", "disgust", "fear", "happiness", "neutral",
             "pleasant surprise", "sadness"],
    "cafe": ["anger", "disgust", "fear", "happiness", "neutral", "sadness",
             "surprise"],
    "subesco": ["anger", "disgust", "fear", "happiness", "neutral", "sadness",
                "surprise"],
    "shemo": ["anger", "fear", "happiness", "neutral", "sadness", "surprise"],
    "urdu": ["anger", "happiness", "neutral", "sadness"],
    "jl": ["anger", "excitement", "happiness", "neutral", "sadness"],
    "emov_db": ["amusement", "anger", "disgust", "neutral", "sleepiness"],
    "esd": ["anger", "happiness", "neutral", "sadness", "surprise"],
    "mesd": ["anger", "disgust", "fear", "happiness", "neutral", "sadness"],
    "oreau": ["anger", "disgust", "fear", "happiness", "neutral", "sadness",
              "surprise"],
}
LANGUAGES = {"aesdd": "greek", "crema_d": "english", "tess": "english",
             "cafe": "french", "subesco": "bangla", "shemo": "persian",
             "urdu": "urdu", "jl": "english", "emov_db": "english",
             "mesd": "spanish", "oreau": "french"}


def _build(name, manual, data_dir):
  b = tfds.builder(f"fser/{name}", data_dir=str(data_dir))
  b.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual)))
  return b, list(tfds.as_numpy(b.as_dataset(split="train")))


@pytest.mark.parametrize("name", sorted(fake_corpora.MORE_GOOD))
def test_corpus_builds_from_its_documented_layout(name, tmp_path, capfd):
  fake_corpora.write_more_dummy(str(tmp_path / "manual"), [name])
  b, exs = _build(name, tmp_path / "manual", tmp_path / "tfds")
  classes = b.info.features["label"].names
  assert classes == NATIVE[name]
  want = {}
  for rel, row in fake_corpora.MORE_GOOD[name].items():
    want[corpora.corpus_relative(name, rel)] = row
  got = {e["filename"].decode(): e for e in exs}
  assert set(got) == set(want), (sorted(got), sorted(want))
  for fn, (label, speaker, gender, *extra) in want.items():
    e = got[fn]
    assert (classes[e["label"]], e["speaker"].decode(),
            e["gender"].decode()) == (label, speaker, gender), fn
    assert e["corpus"].decode() == name
    lang = (extra[0].get("language") if extra and "language" in extra[0]
            else LANGUAGES.get(name))
    assert e["language"].decode() == lang, fn
    for k, v in (extra[0] if extra else {}).items():
      assert e[k].decode() == v, (fn, k)
  # 0.1 s at 16 kHz after resampling from the corpus's own rate.
  assert all(e["audio"].shape == (1600,) for e in exs)
  # Every skipped file is named, with its reason.
  err = capfd.readouterr().err
  assert f"skipped {len(fake_corpora.MORE_BAD[name])} file(s)" in err, err
  for bad in fake_corpora.MORE_BAD[name]:
    assert bad.rsplit("/", 1)[-1] in err
  assert "cannot be decoded" in err


def test_parsers_name_what_is_wrong():
  cases = {
      ("aesdd", "anger/d02 (1).wav"): "filed under the folder",
      ("jl", "male2_apologetic_1a_1.wav"): "secondary emotion",
      ("shemo", "male/F02H01.wav"): "female speaker filed under male/",
      ("esd", "0011/0011_000001.wav"): "no ESD emotion folder",
      ("crema_d", "1001_DFA_ANG_ZZ.wav"): "unknown CREMA-D level",
      ("cafe", "Peur/Fort/13-P-2-1.wav"): "unknown CaFE actor",
  }
  for (corpus, name), why in cases.items():
    with pytest.raises(corpora.FilenameError, match=why):
      corpora.CORPORA[corpus].parse(name)


def test_gender_is_never_guessed_from_a_number():
  # AESDD, CaFE, ESD and Oréau state no gender in their names; speakers of
  # both parities come back unknown.
  for corpus, names in (("aesdd", ["anger/a01 (1).wav", "anger/a01 (2).wav"]),
                        ("cafe", ["Neutre/01-N-1-1.wav", "Neutre/02-N-1-1.wav"]),
                        ("esd", ["0001/Sad/0001_000001.wav",
                                 "0002/Sad/0002_000001.wav"]),
                        ("oreau", ["01a01Na.wav", "02a01Na.wav"])):
    for n in names:
      assert corpora.CORPORA[corpus].parse(n).gender == "", n


def test_one_label_space():
  """Every native class of every corpus has a unified class; the paper's
  rules are kept and the added classes stay their own."""
  for name in NATIVE:
    for label in NATIVE[name]:
      assert corpora.to_unified(label) in corpora.UNIFIED_CLASSES
  assert corpora.UNIFIED_CLASSES[:8] == corpora.FSER_CLASSES
  assert corpora.to_unified("fear") == "anxiety"
  assert corpora.to_unified("boredom") == "calm"
  assert corpora.to_unified("pleasant surprise") == "surprise"
  for own in ("amusement", "sleepiness", "excitement"):
    assert corpora.to_unified(own) == own
  # fser/all is still exactly the paper's 8 classes.
  assert datasets.Fser(config="all").info.features["label"].names == list(
      corpora.FSER_CLASSES)
  assert datasets.Fser(config="paper_aesdd").info.features["label"].names \
      == list(corpora.FSER_CLASSES)
  field = datasets.Fser(config="field").info.features["label"].names
  assert field == list(corpora.UNIFIED_CLASSES)


def test_a_mix_of_corpora_builds_in_unified_labels(tmp_path):
  fake_corpora.write_more_dummy(str(tmp_path / "manual"),
                                ["aesdd", "emov_db"])
  cfg = datasets.mix_config(["emov_db", "aesdd"])
  assert cfg.name == "mix_aesdd_emov_db"
  b = datasets.Fser(config=cfg, data_dir=str(tmp_path / "tfds"))
  b.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(tmp_path / "manual")))
  names = b.info.features["label"].names
  # The unified order: the paper's 8 first, then the added classes.
  assert names == ["anger", "anxiety", "disgust", "happiness", "neutral",
                   "sadness", "amusement", "sleepiness"]
  exs = list(tfds.as_numpy(b.as_dataset(split="train")))
  by = {e["filename"].decode(): names[e["label"]] for e in exs}
  assert by["fear/f12 (2).wav"] == "anxiety"  # AESDD fear, the paper's rule
  assert by["sam_Sleepy/sleepy_1-28_0002.wav"] == "sleepiness"
  with pytest.raises(Exception, match="unknown corpus 'klingon'"):
    datasets.mix_config(["aesdd", "klingon"])


def test_speaker_protocol_refuses_corpora_without_speaker_ids():
  meta = {"speaker": np.array(["aesdd_1", "aesdd_2", "", ""], object),
          "corpus": np.array(["aesdd", "aesdd", "mesd", "mesd"], object),
          "gender": np.array(["", "", "male", "female"], object),
          "label": np.array([0, 1, 0, 1])}
  with pytest.raises(splits.SplitError, match="2 clips of mesd have none"):
    splits.assign("speaker", meta)
  # Leave-one-corpus-out needs no speaker ids.
  s = splits.assign("corpus", meta, fold=1)
  assert list(s[2:]) == ["test", "test"]


def _write_loco_corpora(root):
  """A few clips of three corpora in their layouts, enough to train on."""
  rng = np.random.default_rng(0)

  def tone(path, f0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = np.arange(8000) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t)
                    + 0.01 * rng.standard_normal(t.size)).astype(np.float32),
             16000)

  folders = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness",
             "s": "sadness"}
  for spk in (1, 2, 3):
    for i, (letter, folder) in enumerate(folders.items()):
      tone(f"{root}/aesdd/{folder}/{letter}{spk:02d} ({spk}).wav",
           120 + 40 * i)
  for spk in ("F01", "M02", "F03"):
    for i, letter in enumerate("AHNSWF"):
      tone(f"{root}/shemo/{'female' if spk[0] == 'F' else 'male'}/"
           f"{spk}{letter}01.wav", 120 + 40 * i)
  for spk in ("M_01_A", "F_02_B"):
    for i, emo in enumerate(("ANGRY", "DISGUST", "FEAR", "HAPPY", "NEUTRAL",
                             "SAD", "SURPRISE")):
      tone(f"{root}/subesco/{spk}_S_1_{emo}_1.wav", 120 + 40 * i)


def test_leave_one_corpus_out_over_a_mix_of_new_corpora(tmp_path):
  from fser_jax import config as config_lib
  from fser_jax.experiments import generalisation
  _write_loco_corpora(str(tmp_path / "manual"))
  c = config_lib.base()
  c.data.dataset = "fser/aesdd+shemo+subesco"
  c.data.data_dir = str(tmp_path / "tfds")
  c.data.manual_dir = str(tmp_path / "manual")
  c.data.protocol = "corpus"
  c.model.filters = (8, 8, 16, 16)
  c.model.dense = (32, 16)
  c.train.batch_size = 8
  c.train.num_epochs = 1
  c.baseline = False
  out = generalisation.run(c, str(tmp_path / "gen"), protocols=("corpus",))
  folds = out["protocols"]["corpus"]["folds"]
  assert [f["test"] for f in folds] == ["aesdd", "shemo", "subesco"]
  assert [f["n_test"] for f in folds] == [15, 18, 14]
  for f in folds:
    with open(tmp_path / "gen" / "corpus" / f"fold_{f['fold']}" /
              "splits.csv") as fh:
      rows = list(csv.DictReader(fh))
    assert {r["corpus"] for r in rows if r["split"] == "test"} == {f["test"]}
    assert f["test"] not in {r["corpus"] for r in rows
                             if r["split"] == "train"}
    # Speakers carry their corpus's name.
    assert all(r["speaker"].startswith(r["corpus"] + "_") for r in rows)


def test_docs_list_every_corpus_config():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  text = open(os.path.join(root, "docs", "data.md"), encoding="utf-8").read()
  readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()
  for name in fser_builder.MORE:
    spec = corpora.CORPORA[name]
    row = next((l for l in text.splitlines()
                if l.startswith(f"| `fser/{name}` |")), None)
    assert row, name
    for label in spec.classes:
      assert label in row, (name, label)
    assert f"`{name}`" in readme, name
  for cfg in fser_builder.Fser.BUILDER_CONFIGS:
    if not cfg.name.startswith("synthetic"):
      assert f"fser/{cfg.name}" in text or f"`{cfg.name}`" in text, cfg.name


def test_registry_entries_are_whole_and_each_has_a_fake_layout():
  """One entry per name, each with a licence and a label map, whose example
  path is a clip in its own layout; and each built by a test from a fake
  copy of its layout: the paper's four from dummy_data/
  (tests/test_datasets.py), every other one from MORE_GOOD (the builds
  above)."""
  names = [spec.name for spec in corpora.REGISTRY]
  assert len(set(names)) == len(names) == len(corpora.CORPORA), names
  for spec in corpora.REGISTRY:
    assert spec.licence.strip(), f"{spec.name} has no licence"
    assert spec.labels and all(spec.labels.values()), (
        f"{spec.name} has no label map")
    for example in spec.example.split(" or "):
      name = corpora.corpus_relative(spec.name, example)
      assert name and example.endswith(name), (spec.name, example, name)
      assert spec.parse(name).label in spec.classes, example
  dummy = os.path.join(os.path.dirname(datasets.__file__), "dummy_data")
  assert sorted(os.listdir(dummy)) == sorted(fake_corpora.DUMMY)
  assert not set(fake_corpora.DUMMY) & set(fake_corpora.MORE_GOOD)
  missing = set(names) - set(fake_corpora.DUMMY) - set(fake_corpora.MORE_GOOD)
  assert not missing, f"no fake layout in tests/fake_corpora.py: {missing}"
