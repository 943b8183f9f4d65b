"""Protocols separate what they promise: speakers under `speaker`, corpora
under `corpus`; `paper` is stratified and seeded."""

import collections

import numpy as np
import pytest

from fser_jax.data import splits


def _meta():
  """44 speakers over 4 corpora, like fser/all (10 clips per speaker)."""
  spk, corpus, gender, label = [], [], [], []
  layout = {"emodb": 10, "emovo": 6, "savee": 4, "ravdess": 24}
  for c, n in layout.items():
    for s in range(n):
      for k in range(10):
        spk.append(f"{c}_{s}")
        corpus.append(c)
        gender.append("male" if s % 2 else "female")
        label.append(k % 8)
  return {"speaker": np.array(spk, object), "corpus": np.array(corpus, object),
          "gender": np.array(gender, object), "label": np.array(label)}


def test_paper_is_stratified_and_seeded():
  m = _meta()
  a = splits.assign("paper", m, seed=0)
  b = splits.assign("paper", m, seed=0)
  c = splits.assign("paper", m, seed=1)
  assert (a == b).all() and not (a == c).all()
  n = len(a)
  assert abs(np.sum(a == "test") - 0.2 * n) <= 8
  assert abs(np.sum(a == "validation") - 0.16 * n) <= 8
  # Every class keeps its share in the test split.
  per_class = collections.Counter(m["label"][a == "test"])
  totals = collections.Counter(m["label"])
  for c, total in totals.items():
    assert abs(per_class[c] - 0.2 * total) <= 1, (c, per_class[c], total)


@pytest.mark.parametrize("fold", range(6))
def test_speaker_folds_never_share_speakers(fold):
  m = _meta()
  s = splits.assign("speaker", m, fold=fold)
  sets = {k: set(m["speaker"][s == k]) for k in ("train", "validation", "test")}
  assert sets["test"] and sets["train"] and sets["validation"]
  assert not sets["train"] & sets["test"]
  assert not sets["train"] & sets["validation"]
  assert not sets["validation"] & sets["test"]


def test_speaker_folds_cover_every_speaker_once():
  m = _meta()
  tested = collections.Counter()
  for k in range(splits.num_folds("speaker", m)):
    s = splits.assign("speaker", m, fold=k)
    tested.update(set(m["speaker"][s == "test"]))
  assert len(tested) == 44 and set(tested.values()) == {1}


def test_leave_one_speaker_out_up_to_six_speakers():
  m = _meta()
  keep = m["corpus"] == "emovo"
  sub = {k: v[keep] for k, v in m.items()}
  assert splits.num_folds("speaker", sub) == 6
  s = splits.assign("speaker", sub, fold=2)
  assert len(set(sub["speaker"][s == "test"])) == 1


@pytest.mark.parametrize("fold", range(4))
def test_corpus_protocol_holds_one_corpus_out(fold):
  m = _meta()
  s = splits.assign("corpus", m, fold=fold)
  test_c = set(m["corpus"][s == "test"])
  train_c = set(m["corpus"][s != "test"])
  assert len(test_c) == 1 and not test_c & train_c
  assert test_c == {sorted(set(m["corpus"]))[fold]}
  # Validation speakers come from training corpora, disjoint from train.
  assert not set(m["speaker"][s == "validation"]) & set(m["speaker"][s == "train"])


def test_fold_that_does_not_exist_is_named():
  with pytest.raises(splits.SplitError, match="data.fold=9 does not exist"):
    splits.assign("corpus", _meta(), fold=9)
  with pytest.raises(splits.SplitError, match="unknown data.protocol"):
    splits.assign("lopo", _meta())


def test_speaker_protocol_without_speakers_is_refused():
  m = _meta()
  m["speaker"] = np.array([""] * len(m["label"]), object)
  with pytest.raises(splits.SplitError, match="speaker"):
    splits.assign("speaker", m)


@pytest.mark.parametrize("fold", range(4))
def test_cross_protocol_trains_and_tests_within_one_corpus(fold):
  m = _meta()
  s = splits.assign("cross", m, fold=fold)
  name = sorted(set(m["corpus"]))[fold]
  used = s != "unused"
  assert set(m["corpus"][used]) == {name}  # every other corpus left out
  assert set(m["corpus"][~used]) == set(m["corpus"]) - {name}
  test_spk = set(m["speaker"][s == "test"])
  fit_spk = set(m["speaker"][(s == "train") | (s == "validation")])
  assert test_spk and fit_spk and not test_spk & fit_spk  # unseen speakers
  assert splits.num_folds("cross", m) == 4
  assert splits.fold_name("cross", m, fold) == name
