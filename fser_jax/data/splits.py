"""Evaluation protocols: which clip is train, validation or test.

  paper    stratified random 80/20 train/test, then 20% of train as validation
           (FSER's protocol: speakers and sentences cross the split).
  speaker  speaker-independent folds: leave-one-speaker-out when there are at
           most `max_loso_speakers` speakers, else `num_folds` speaker groups
           balanced by corpus and gender; validation = the next fold's speakers.
  corpus   leave-one-corpus-out: test on corpus[fold], train on the others,
           validation speakers drawn from the training speakers.
  cross    one corpus alone: corpus[fold]'s speakers dealt into 3 groups
           (as `speaker`), the first tests, the rest train (validation: a
           stratified 20% of their clips); every other corpus is `unused`.
           The generalisation mode then scores the run on each other corpus
           (the cross-corpus matrix, its diagonal speaker-independent).
  file     the split of each clip read from a CSV (`data.split_file`, columns
           filename,split); clips it does not list are `unused`. The learning
           curve's cells are runs of this protocol.

Splits depend only on the metadata and `split_seed`, never on the model seed.
Augmented copies are made from training clips after splitting, so they never
cross it.
"""

from __future__ import annotations

import numpy as np

from fser_jax.errors import UserError

TRAIN, VAL, TEST, UNUSED = "train", "validation", "test", "unused"
PROTOCOLS = ("paper", "speaker", "corpus", "cross", "file")
CROSS_GROUPS = 3  # speaker groups within a corpus under `cross`


class SplitError(UserError, ValueError):
  pass


def stratified_take(idx: np.ndarray, labels: np.ndarray, fraction: float,
                     rng: np.random.Generator) -> np.ndarray:
  """A stratified random `fraction` of `idx` (at least one per class with 2+)."""
  take = []
  for c in np.unique(labels[idx]):
    members = idx[labels[idx] == c]
    members = members[rng.permutation(members.size)]
    k = int(round(fraction * members.size))
    if members.size >= 2:
      k = min(max(k, 1), members.size - 1)
    take.append(members[:k])
  return np.sort(np.concatenate(take)) if take else np.array([], int)


def speaker_folds(speakers: np.ndarray, corpora: np.ndarray,
                  genders: np.ndarray, *, num_folds: int = 0,
                  max_loso_speakers: int = 6) -> list[list[str]]:
  """Speaker groups, one per fold. Leave-one-speaker-out up to
  `max_loso_speakers` speakers; beyond, `num_folds` (default 6) groups dealt
  round-robin from speakers sorted by (corpus, gender, id), so each group mixes
  corpora and genders."""
  uniq = sorted(set(speakers.tolist()),
                key=lambda s: (corpora[speakers == s][0],
                               genders[speakers == s][0], s))
  if not uniq or uniq == [""]:
    raise SplitError("the speaker protocol needs speaker ids; this dataset has "
                     "none (own data: add a 'speaker' column to the manifest; "
                     "MESD publishes none: use data.protocol='paper' or "
                     "'corpus')")
  if "" in uniq:
    lacking = sorted(set(np.asarray(corpora)[speakers == ""].tolist()))
    raise SplitError(
        f"the speaker protocol needs every clip's speaker; "
        f"{int(np.sum(speakers == ''))} clips of {', '.join(lacking)} have "
        "none (MESD publishes no speaker ids), so their speakers could sit on "
        "both sides of the split. Leave those corpora out or use "
        "data.protocol='corpus'")
  n = num_folds or (len(uniq) if len(uniq) <= max_loso_speakers else 6)
  if n < 2 or n > len(uniq):
    raise SplitError(f"data.num_folds={n} does not fit {len(uniq)} speakers")
  return [uniq[i::n] for i in range(n)]


def num_folds(protocol: str, meta: dict[str, np.ndarray], *,
              folds: int = 0) -> int:
  if protocol in ("paper", "file"):
    return 1
  if protocol == "speaker":
    return len(speaker_folds(meta["speaker"], meta["corpus"], meta["gender"],
                             num_folds=folds))
  if protocol in ("corpus", "cross"):
    return len(set(meta["corpus"].tolist()))
  raise SplitError(f"unknown data.protocol {protocol!r}: use one of "
                   f"{', '.join(PROTOCOLS)}")


def assign(protocol: str, meta: dict[str, np.ndarray], *, fold: int = 0,
           folds: int = 0, seed: int = 0, test_fraction: float = 0.2,
           val_fraction: float = 0.2) -> np.ndarray:
  """The split ('train' | 'validation' | 'test') of every clip.

  Args:
    protocol: 'paper', 'speaker' or 'corpus'.
    meta: arrays 'label', 'speaker', 'corpus', 'gender' (one entry per clip).
    fold: which fold is the test set.
    folds: number of speaker folds (0: automatic).
    seed: the split seed.
  """
  labels = np.asarray(meta["label"])
  n = labels.size
  split = np.full(n, TRAIN, dtype=object)
  rng = np.random.default_rng(seed)
  total = num_folds(protocol, meta, folds=folds)
  if not 0 <= fold < total:
    raise SplitError(f"data.fold={fold} does not exist: protocol "
                     f"{protocol!r} has {total} fold(s) here (0..{total - 1})")
  if protocol == "paper":
    test = stratified_take(np.arange(n), labels, test_fraction, rng)
    split[test] = TEST
    rest = np.flatnonzero(split == TRAIN)
    split[stratified_take(rest, labels, val_fraction, rng)] = VAL
    return split
  speakers = np.asarray(meta["speaker"])
  if protocol == "speaker":
    groups = speaker_folds(speakers, np.asarray(meta["corpus"]),
                           np.asarray(meta["gender"]), num_folds=folds)
    split[np.isin(speakers, groups[fold])] = TEST
    if len(groups) >= 3:
      split[np.isin(speakers, groups[(fold + 1) % len(groups)])] = VAL
    else:  # two speaker groups: validation from the training speakers' clips
      pool = np.flatnonzero(split == TRAIN)
      split[stratified_take(pool, labels, val_fraction, rng)] = VAL
    return split
  if protocol == "cross":
    return _cross(meta, labels, fold, rng, test_fraction, val_fraction)
  # corpus
  names = sorted(set(np.asarray(meta["corpus"]).tolist()))
  split[np.asarray(meta["corpus"]) == names[fold]] = TEST
  pool = np.flatnonzero(split == TRAIN)
  train_speakers = sorted(set(speakers[pool].tolist()) - {""})
  if len(train_speakers) >= 3:
    k = max(1, int(round(val_fraction * len(train_speakers))))
    val_spk = rng.choice(train_speakers, size=k, replace=False)
    split[pool[np.isin(speakers[pool], val_spk)]] = VAL
  else:
    split[stratified_take(pool, labels, val_fraction, rng)] = VAL
  return split


def _cross(meta, labels, fold, rng, test_fraction, val_fraction):
  corpus = np.asarray(meta["corpus"])
  speakers = np.asarray(meta["speaker"])
  name = sorted(set(corpus.tolist()))[fold]
  split = np.full(labels.size, UNUSED, dtype=object)
  own = np.flatnonzero(corpus == name)
  split[own] = TRAIN
  spk = sorted(set(speakers[own].tolist()) - {""})
  if len(spk) >= 2:
    groups = speaker_folds(speakers[own], corpus[own],
                           np.asarray(meta["gender"])[own],
                           num_folds=min(CROSS_GROUPS, len(spk)))
    split[own[np.isin(speakers[own], groups[0])]] = TEST
  else:  # no speaker ids: a stratified random test split
    split[stratified_take(own, labels, test_fraction, rng)] = TEST
  pool = np.flatnonzero(split == TRAIN)
  split[stratified_take(pool, labels, val_fraction, rng)] = VAL
  return split


def fold_name(protocol: str, meta: dict[str, np.ndarray], fold: int, *,
              folds: int = 0) -> str:
  """A readable name of a fold's test set: 'random', 'emodb', 'spk:a+b'."""
  if protocol == "paper":
    return "random"
  if protocol in ("corpus", "cross"):
    return sorted(set(np.asarray(meta["corpus"]).tolist()))[fold]
  groups = speaker_folds(np.asarray(meta["speaker"]), np.asarray(meta["corpus"]),
                         np.asarray(meta["gender"]), num_folds=folds)
  return "+".join(groups[fold])


def from_file(path: str, filenames) -> np.ndarray:
  """The `file` protocol: each clip's split from a CSV with columns
  filename,split (train | validation | test); clips not listed are unused."""
  import csv
  import os
  if not path or not os.path.exists(path):
    raise SplitError(f"data.protocol='file' needs data.split_file, a CSV with "
                     f"columns filename,split (got {path!r})")
  with open(path, newline="", encoding="utf-8-sig") as f:
    rows = list(csv.DictReader(f))
  if rows and not {"filename", "split"} <= set(rows[0]):
    raise SplitError(f"{path}: needs the columns filename,split")
  table = {r["filename"]: r["split"].strip() for r in rows}
  bad = sorted({v for v in table.values()} - {TRAIN, VAL, TEST, UNUSED})
  if bad:
    raise SplitError(f"{path}: unknown split value(s) {bad}; use train, "
                     "validation, test or unused")
  names = [str(x) for x in filenames]
  missing = sorted(set(table) - set(names))
  if missing:
    raise SplitError(f"{path}: {len(missing)} listed clip(s) are not in the "
                     f"dataset, e.g. {missing[0]!r}")
  return np.array([table.get(n, UNUSED) for n in names], dtype=object)
