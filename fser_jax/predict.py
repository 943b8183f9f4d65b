"""Predictions on the user's own audio with a trained run.

  python launch.py --mode predict --workdir RUN --audio a.wav clips/ 'more/*.mp3'

Loads RUN's saved config and its best checkpoint onto this machine's devices
(a GPU-trained run predicts on a CPU), reads any format librosa reads at any
rate and channel count, cuts recordings longer than `predict.window_seconds`
into windows every `predict.hop_seconds` (one row per window plus one row per
file averaging the windows' probabilities), and prints a table. A file that
cannot be used gets a row with its error; the others still run.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import sys

import jax
import ml_collections
import numpy as np

from fser_jax import audio as audio_lib
from fser_jax import checkpoints as ckpt_lib
from fser_jax import familiarity
from fser_jax import features as features_lib
from fser_jax import input_pipeline
from fser_jax import metrics as metrics_lib
from fser_jax import train as train_lib
from fser_jax.datasets.files import AUDIO_EXTENSIONS


def expand(paths) -> list[str]:
  """Files, folders (recursively) and globs -> a sorted list of files."""
  out = []
  for p in paths:
    p = os.path.expanduser(p)
    if os.path.isdir(p):
      for root, _, names in os.walk(p):
        out += [os.path.join(root, n) for n in sorted(names)
                if n.lower().endswith(AUDIO_EXTENSIONS)]
    elif any(ch in p for ch in "*?["):
      out += sorted(glob.glob(p, recursive=True))
    else:
      out.append(p)  # missing files get an error row
  return out


class Predictor:
  """A trained run, ready to classify waveforms."""

  def __init__(self, workdir: str):
    from fser_jax.errors import CheckpointError
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
      raise CheckpointError(f"{workdir}: no config.json; is this a workdir "
                            "written by launch.py --mode train?")
    with open(path) as f:
      self.config = ml_collections.ConfigDict(json.load(f))
    with open(os.path.join(workdir, "normalisation.json")) as f:
      norm = json.load(f)
    self.classes = list(norm["classes"])
    # Per-channel lists (a scalar from a one-channel run broadcasts too).
    self.norm = (norm["mean"], norm["std"])
    c = self.config
    graphdef, state, _ = train_lib.create(
        c, len(self.classes), features_lib.num_channels(c.features.kind), 1)
    # Restore onto this machine's first device, whatever the run trained on.
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = ckpt_lib.abstract_like(state["params"], sharding)
    ckpts = ckpt_lib.Checkpoints(workdir)
    use_best = ckpts.best_step() is not None
    if not use_best and ckpts.latest_step() is None:
      ckpts.close()
      raise CheckpointError(f"{workdir}: no checkpoint to predict with (train "
                            "first, or point --workdir at a trained run)")
    full = ckpt_lib.abstract_like(state, sharding)
    full["params"] = abstract
    try:
      restored = ckpts.restore(full, best=use_best)
    except Exception as e:  # shape/structure mismatch from orbax
      raise CheckpointError(
          f"{workdir}: the checkpoint does not fit the model of its config "
          f"({type(e).__name__}: {str(e)[:300]})") from None
    finally:
      ckpts.close()
    self.params = restored["params"]
    self.step = int(restored["step"])
    self.eval_fn = train_lib.make_eval_fn(graphdef)
    self.embed_fn = train_lib.make_embed_fn(graphdef)
    fam_path = os.path.join(workdir, familiarity.FILENAME)
    self.familiarity = (familiarity.load(fam_path)
                        if os.path.exists(fam_path) else None)
    self.sample_rate = c.data.sample_rate

  def images(self, waveforms: list[np.ndarray]) -> np.ndarray:
    """The model's inputs, exactly as in training (standardised)."""
    images = features_lib.compute_images(waveforms, self.config.features,
                                         self.sample_rate, batch_size=16)
    return input_pipeline.standardise(images, self.norm)

  def probabilities(self, waveforms: list[np.ndarray]) -> np.ndarray:
    return self._probabilities(self.images(waveforms))

  def _probabilities(self, images: np.ndarray) -> np.ndarray:
    logits = train_lib.predict_logits(self.eval_fn, self.params, images, 16)
    return metrics_lib.softmax(logits)

  def distances(self, images: np.ndarray) -> np.ndarray | None:
    """fser_jax.familiarity distances (None for a run saved without one)."""
    if self.familiarity is None:
      return None
    emb = train_lib.predict_logits(self.embed_fn, self.params, images, 16)
    return familiarity.distance(self.familiarity, emb)

  def predict_files(self, files: list[str]) -> list[dict]:
    """One row per window and one aggregated row per file (window 'all')."""
    p = self.config.predict
    window = int(p.window_seconds * self.sample_rate)
    hop = int(p.hop_seconds * self.sample_rate)
    rows = []
    for path in files:
      try:
        wav = audio_lib.load_audio(path, self.sample_rate,
                                   min_samples=self.config.features.n_fft)
      except audio_lib.AudioError as e:
        rows.append({"file": path, "window": "all", "start_s": "", "end_s": "",
                     "prediction": "", "error": e.problem})
        continue
      windows = audio_lib.frame_windows(wav, window, hop)
      images = self.images([w for _, w in windows])
      probs = self._probabilities(images)
      dist = self.distances(images)
      if len(windows) > 1:
        for i, ((start, w), pr) in enumerate(zip(windows, probs)):
          rows.append(self._row(path, str(i), start, start + w.size, pr,
                                None if dist is None else dist[i]))
      rows.append(self._row(path, "all", 0, wav.size, probs.mean(0),
                            None if dist is None else dist.mean()))
    return rows

  def _row(self, path, window, start, end, probs, dist: float | None) -> dict:
    row = {"file": path, "window": window,
           "start_s": f"{start / self.sample_rate:.2f}",
           "end_s": f"{end / self.sample_rate:.2f}",
           "prediction": self.classes[int(np.argmax(probs))], "error": ""}
    row.update({c: float(p) for c, p in zip(self.classes, probs)})
    if dist is not None:
      row["distance"] = float(dist)
      row["familiar"] = "yes" if dist <= self.familiarity["threshold"] else "no"
    return row


def main(workdir: str, audio: list[str], output: str | None = None) -> list[dict]:
  files = expand(audio)
  if not files:
    raise FileNotFoundError("no audio files given: use --audio FILE|DIR|GLOB")
  pred = Predictor(workdir)
  rows = pred.predict_files(files)
  cols = ["file", "window", "start_s", "end_s", "prediction", *pred.classes,
          "distance", "familiar", "error"]
  out = sys.stdout
  widths = {"file": max(12, min(48, max(len(r["file"]) for r in rows)))}
  header = (f"{'file':<{widths['file']}} {'window':>6} {'start':>6} {'end':>6} "
            f"{'prediction':<11}" + "".join(f" {c[:9]:>9}" for c in pred.classes)
            + (f" {'distance':>8} {'familiar':>8}" if pred.familiarity
               is not None else ""))
  print(f"run {workdir}, checkpoint step {pred.step}", file=out)
  print(header, file=out)
  for r in rows:
    name = r["file"][-widths["file"]:]
    if r["error"]:
      print(f"{name:<{widths['file']}} {r['window']:>6}  error: {r['error']}",
            file=out)
      continue
    print(f"{name:<{widths['file']}} {r['window']:>6} {r['start_s']:>6} "
          f"{r['end_s']:>6} {r['prediction']:<11}"
          + "".join(f" {r[c]:>9.3f}" for c in pred.classes)
          + (f" {r['distance']:>8.1f} {r['familiar']:>8}" if "distance" in r
             else ""), file=out)
  files_all = [r for r in rows if r["window"] == "all" and not r["error"]]
  unfamiliar = sum(r.get("familiar") == "no" for r in files_all)
  if pred.familiarity is not None and files_all:
    print(f"{unfamiliar} of {len(files_all)} file(s) lie farther from the "
          f"run's training data than {100 * pred.familiarity['quantile']:.0f}% "
          f"of its validation clips (distance > "
          f"{pred.familiarity['threshold']:.1f}): treat their predictions with "
          "caution, and see README 'Does it generalise?'.", file=out)
  if output:
    with open(output, "w", newline="") as f:
      w = csv.DictWriter(f, fieldnames=cols)
      w.writeheader()
      for r in rows:
        w.writerow({k: r.get(k, "") for k in cols})
  return rows
