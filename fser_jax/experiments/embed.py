"""A pretrained encoder's states of every clip of a corpus, once, on disk.

  python launch.py --mode embed --config configs/own_data.py:CORPUS \
      --config.encoder.path=~/models/wavlm-base-plus --workdir runs/emb

Reads the clips one chunk at a time (memory bounded by
`config.encoder.chunk` clips, whatever the corpus' size), writes each
chunk's per-layer mean and std as a part file (fser_jax/encoders/
extract.py), and resumes after a kill where it stopped. Several processes
(launch.py --coordinator_address ... --num_processes N --process_id I, or
a cluster's environment) split the chunks and share the store.

Writes WORKDIR/embed.json (encoder, store folder, counts, the unreadable
files named) and WORKDIR/embed_index.csv (path,label,speaker,key: the row
of each clip in the store; `extract.Store(...).read(keys)`).
"""

from __future__ import annotations

import csv
import functools
import json
import os

from absl import logging

from fser_jax.config import ConfigError


def _load(path: str, rate: int):
  from fser_jax.frontend import audio
  return audio.load_audio(path, rate)


def run(config, workdir: str) -> dict:
  if not config.encoder.path:
    raise ConfigError("--mode embed needs --config.encoder.path=DIR (a "
                      "checkpoint folder, docs/encoders.md)")
  if not config.data.own_path:
    raise ConfigError("--mode embed reads your clips: --config "
                      "configs/own_data.py:FOLDER_OR_MANIFEST")
  import jax
  from fser_jax import encoders
  from fser_jax.datasets import files
  from fser_jax.encoders import extract
  entries, problems = files.scan_own(config.data.own_path,
                                     config.data.columns)
  for p in problems:
    logging.warning("Embed: %s", p)
  enc = encoders.from_config(config.encoder)
  os.makedirs(workdir, exist_ok=True)
  store = extract.Store(os.path.join(workdir, "encoder_states"), enc)
  index, count = jax.process_index(), jax.process_count()
  names = [e["abspath"] for e in entries]
  clips = [functools.partial(_load, p, enc.sample_rate) for p in names]
  logging.info("Embed: %d clips, %s encoder (%d states of %d), process %d of "
               "%d, store %s.", len(clips), enc.family, enc.num_layers,
               enc.config.d_model, index, count, store.folder)
  keys, stats = extract.extract(
      enc, clips, store, batch=config.encoder.batch_size,
      chunk=config.encoder.chunk, process_index=index, process_count=count,
      names=names)
  mine = os.path.join(workdir, f"embed_keys.{index}.json")
  with open(mine, "w") as f:
    json.dump({"keys": keys, "stats": stats}, f)
  if count > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices("fser_jax embed: keys written")
  if index != 0:
    return stats
  parts = []
  for i in range(count):
    with open(os.path.join(workdir, f"embed_keys.{i}.json")) as f:
      parts.append(json.load(f))
  keys = [next((p["keys"][j] for p in parts if p["keys"][j]), None)
          for j in range(len(entries))]
  with open(os.path.join(workdir, "embed_index.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["path", "label", "speaker", "key"])
    for e, k in zip(entries, keys):
      w.writerow([e["filename"], e["label"], e["speaker"], k or ""])
  out = {"encoder": {"family": enc.family, "path": enc.path,
                     "digest": enc.digest, "layers": enc.num_layers,
                     "d_model": enc.config.d_model},
         "store": store.folder, "clips": len(entries),
         "embedded": sum(k is not None for k in keys),
         "computed": sum(p["stats"]["computed"] for p in parts),
         "reused": sum(p["stats"]["reused"] for p in parts),
         "bad": [b for p in parts for b in p["stats"]["bad"]] + [
             {"clip": "", "error": p} for p in problems],
         "seconds": max(p["stats"]["seconds"] for p in parts),
         "processes": count}
  with open(os.path.join(workdir, "embed.json"), "w") as f:
    json.dump(out, f, indent=1)
  logging.info("Embed: %d of %d clips in %s (%d computed now, %d already "
               "there, %d unreadable).", out["embedded"], out["clips"],
               store.folder, out["computed"], out["reused"], len(out["bad"]))
  return out
