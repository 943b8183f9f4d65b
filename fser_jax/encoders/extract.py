"""A pretrained encoder's pooled states of many clips, computed once and kept
on disk: resumable after a kill, bounded memory, split over processes.

  store = extract.Store("OUT/encoder", enc)      # OUT/encoder/<family>-<digest>/
  keys, stats = extract.extract(enc, clips, store)
  x = store.read(keys)                           # [N, layers + 1, 2 d]

A clip is keyed by its 16 kHz audio's content (sha1); the store's folder by
the encoder's family and weights (`Loaded.digest`), so changed audio or
other weights are computed anew and nothing stale is read. Clips go in
chunks; each chunk's new states are written as one part file, atomically
(written aside, then renamed), so a killed run leaves whole parts and the
next run computes only what is missing. With `clips` as callables that
read one clip each, at most one chunk of audio is in memory. In a run of
several processes (`jax.distributed`), process i takes chunks i, i + n, ...
and they share the store's folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np
from absl import logging


def clip_key(wav: np.ndarray) -> str:
  """The identity of a 16 kHz clip's audio."""
  return hashlib.sha1(np.ascontiguousarray(wav, np.float32).tobytes()
                      ).hexdigest()[:24]


class Store:
  """Part files of (keys, pooled states) in ROOT/<family>-<digest>/."""

  def __init__(self, root: str, enc):
    self.folder = os.path.join(root, f"{enc.family}-{enc.digest}")
    os.makedirs(self.folder, exist_ok=True)
    meta = {"family": enc.family, "path": enc.path, "digest": enc.digest,
            "layers": enc.num_layers, "d_model": enc.config.d_model,
            "pooling": "per layer: mean then std over positions"}
    path = os.path.join(self.folder, "encoder.json")
    if not os.path.exists(path):
      with open(path + ".tmp", "w") as f:
        json.dump(meta, f, indent=1)
      os.replace(path + ".tmp", path)

  def parts(self) -> list[str]:
    return sorted(os.path.join(self.folder, f) for f in os.listdir(self.folder)
                  if f.startswith("part-") and f.endswith(".npz"))

  def index(self) -> dict[str, tuple[str, int]]:
    """{clip key: (part file, row)} of every readable part; a part that
    cannot be read is named in the log and removed (its clips are then
    computed again)."""
    out = {}
    for p in self.parts():
      try:
        with np.load(p) as z:
          keys = [str(k) for k in z["keys"]]
      except Exception as e:  # noqa: BLE001 - any unreadable part
        logging.warning("Encoder store: %s cannot be read (%s); removing it, "
                        "its clips will be computed again.", p, e)
        os.remove(p)
        continue
      out.update({k: (p, i) for i, k in enumerate(keys)})
    return out

  def write(self, keys: list[str], pooled: np.ndarray) -> str:
    name = hashlib.sha1("|".join(keys).encode()).hexdigest()[:16]
    path = os.path.join(self.folder, f"part-{name}.npz")
    tmp = os.path.join(self.folder, f"writing-{name}.npz")
    np.savez(tmp, keys=np.asarray(keys), pooled=pooled.astype(np.float32))
    os.replace(tmp, path)
    return path

  def read(self, keys: list[str]) -> np.ndarray:
    """[N, layers + 1, 2 d] of `keys`, in their order."""
    index = self.index()
    missing = [k for k in keys if k not in index]
    if missing:
      raise KeyError(f"{self.folder}: {len(missing)} clips not extracted "
                     f"(first key {missing[0]})")
    out = None
    by_part: dict[str, list[tuple[int, int]]] = {}
    for j, k in enumerate(keys):
      p, row = index[k]
      by_part.setdefault(p, []).append((j, row))
    for p, pairs in by_part.items():
      with np.load(p) as z:
        x = z["pooled"]
      if out is None:
        out = np.zeros((len(keys),) + x.shape[1:], np.float32)
      for j, row in pairs:
        out[j] = x[row]
    return out if out is not None else np.zeros((0,), np.float32)


def _get(clip):
  return np.asarray(clip() if callable(clip) else clip, np.float32)


def _read(clips, i, names, bad):
  """Clip i, or None (named in `bad` and the log) when it cannot be read."""
  from fser_jax.errors import UserError
  try:
    return _get(clips[i])
  except UserError as e:
    name = names[i] if names is not None else f"clip {i}"
    logging.warning("Encoder states: skipping %s: %s", name, e)
    bad.append({"clip": name, "error": str(e)})
    return None


def extract(enc, clips, store: Store, *, batch: int = 8, chunk: int = 64,
            process_index: int = 0, process_count: int = 1,
            names=None) -> tuple[list, dict]:
  """Ensures `store` holds the pooled states of this process's chunks of
  `clips` (16 kHz arrays, or callables returning one). Returns (keys of
  the clips it read, in order, None for the other processes' chunks and
  for clips that could not be read; {'clips', 'computed', 'reused', 'bad'
  (the unreadable ones, named), 'seconds'}). `names` (e.g. paths) label
  the log and the unreadable clips."""
  have = store.index()
  n = len(clips)
  chunks = list(range(0, n, chunk))
  mine = [c for j, c in enumerate(chunks) if j % process_count ==
          process_index]
  keys: list = [None] * n
  computed = reused = 0
  bad: list[dict] = []
  t0 = time.time()
  last_log = t0
  for done, start in enumerate(mine, 1):
    stop = min(n, start + chunk)
    wavs = [_read(clips, i, names, bad) for i in range(start, stop)]
    todo, seen = [], set()
    for j, i in enumerate(range(start, stop)):
      if wavs[j] is None:
        continue
      keys[i] = clip_key(wavs[j])
      if keys[i] in have:
        reused += 1
      elif keys[i] not in seen:
        todo.append(j)
        seen.add(keys[i])
    if todo:
      pooled = enc.pooled([wavs[j] for j in todo], batch=batch)
      part = store.write([keys[start + j] for j in todo], pooled)
      have.update({keys[start + j]: (part, r) for r, j in enumerate(todo)})
      computed += len(todo)
    now = time.time()
    if now - last_log > 10 or done == len(mine):
      rate = computed / max(now - t0, 1e-9)
      left = sum(min(n, c + chunk) - c for c in mine[done:])
      logging.info("Encoder states: chunk %d of %d (%s), %d computed (%.1f "
                   "clips/s), %d already stored%s.", done, len(mine),
                   names[start] if names is not None else f"clip {start}",
                   computed, rate, reused,
                   f", ~{left / rate:.0f} s left" if rate > 0 and left else "")
      last_log = now
  return keys, {"clips": sum(min(n, c + chunk) - c for c in mine),
                "computed": computed, "reused": reused, "bad": bad,
                "seconds": round(time.time() - t0, 2)}
