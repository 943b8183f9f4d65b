"""Predictions on the user's own audio with a trained run.

  python launch.py --mode predict --workdir RUN --audio a.wav clips/ 'more/*.mp3'

Loads RUN (fser_jax.runs.trained.TrainedRun: its saved config, normalisation and
best checkpoint, on this machine's devices), reads any format librosa reads at
any rate and channel count, cuts recordings longer than
`predict.window_seconds` into windows every `predict.hop_seconds` (one row per
window plus one row per file averaging the windows' probabilities), and
prints a table. A file that cannot be used gets a row with its error; the
others still run. Files are read ahead on a thread pool and classified in
chunks whose windows share batches; rows are written to `--output` as each
chunk finishes, so an interrupted run keeps its work, and a progress line
gives files/s and an ETA.
"""

from __future__ import annotations

import csv
import glob
import os
import sys
import time

import numpy as np
from absl import logging

from fser_jax.frontend import audio as audio_lib
from fser_jax.datasets.files import AUDIO_EXTENSIONS
from fser_jax.errors import DataError
from fser_jax.runs.trained import LONG
from fser_jax.runs import trained as inference
from fser_jax.runs.trained import TrainedRun
from fser_jax.runs.trained import load_many

CHUNK = 64  # files per classify call


def expand(paths) -> list[str]:
  """Files, folders (recursively) and globs -> a sorted list of files."""
  out = []
  for p in paths:
    p = os.path.expanduser(p)
    if os.path.isdir(p):
      for root, dirs, names in os.walk(p):
        dirs.sort()
        out += [os.path.join(root, n) for n in sorted(names)
                if n.lower().endswith(AUDIO_EXTENSIONS)]
    elif any(ch in p for ch in "*?["):
      out += sorted(glob.glob(p, recursive=True))
    else:
      out.append(p)  # missing files get an error row
  return out


def parse_abstain(spec: str | None, run: TrainedRun) -> float | None:
  """`coverage=0.8` (the calibrated confidence that kept 80% of the run's
  validation clips) or `prob=0.5` (a calibrated probability) -> threshold."""
  if not spec:
    return None
  kind, _, value = spec.partition("=")
  try:
    v = float(value)
  except ValueError:
    v = -1.0
  if kind not in ("coverage", "prob") or not 0 < v <= 1:
    raise DataError(f"--abstain_below {spec!r}: expected coverage=C or "
                    "prob=P with 0 < C, P <= 1 (e.g. coverage=0.8)")
  return run.confidence_threshold(v) if kind == "coverage" else v


NORMALIZE_BY = ("auto", "folder", "file", "none")


def resolve_normalize_by(run: TrainedRun, normalize_by: str) -> str:
  """'auto': 'none' (the training split's statistics) for a run trained with
  features.normalize='global', 'folder' for 'speaker' / 'corpus' runs."""
  if normalize_by not in NORMALIZE_BY:
    raise DataError(f"--normalize_by {normalize_by!r}: expected one of "
                    f"{', '.join(NORMALIZE_BY)}")
  if normalize_by == "auto":
    return "none" if run.normalize == "global" else "folder"
  if normalize_by != "none" and run.normalize == "global":
    logging.warning("--normalize_by %s on a run trained with global "
                    "statistics (features.normalize='global'): its inputs "
                    "will be scaled unlike its training clips.", normalize_by)
  return normalize_by


def rows_for(run: TrainedRun, paths, loaded, threshold=None,
             normalize_by: str = "none") -> list[dict]:
  """The table rows of a chunk of files (errors included). normalize_by:
  'folder' (each folder's files standardised with their own statistics: one
  speaker or session per folder), 'file' (each file with its own windows'),
  'none' (the run's training statistics)."""
  good = [(p, w) for p, w in loaded if isinstance(w, np.ndarray)]
  groups = (None if normalize_by == "none" else
            [os.path.dirname(os.path.abspath(p)) if normalize_by == "folder"
             else p for p, _ in good])
  out = run.classify([w for _, w in good], groups=groups)
  by_path = {p: i for i, (p, _) in enumerate(good)}
  rows = []
  for p, w in loaded:
    if w is LONG:  # streamed; with its own statistics unless 'none'
      try:
        one = run.classify_stream(p, own_statistics=normalize_by != "none")
      except audio_lib.AudioError as e:
        w = e
      else:
        rows += _file_rows(run, p, one, 0, threshold)
        continue
    if isinstance(w, Exception):
      rows.append({"file": p, "window": "all", "start_s": "", "end_s": "",
                   "prediction": "", "error": w.problem})
      continue
    rows += _file_rows(run, p, out, by_path[p], threshold)
  return rows


def _file_rows(run, p, out, i, threshold) -> list[dict]:
  """A file's rows: one per window (when it has several), then 'all'."""
  rows = []
  wp, starts, lens = (out.window_probs[i], out.window_starts[i],
                      out.window_lengths[i])
  wd = None if out.window_distance is None else out.window_distance[i]
  if len(starts) > 1:
    for j in range(len(starts)):
      rows.append(_row(run, p, str(j), starts[j], starts[j] + lens[j], wp[j],
                       None if wd is None else wd[j], threshold))
  rows.append(_row(run, p, "all", 0, starts[-1] + lens[-1], out.probs[i],
                   None if out.distance is None else out.distance[i],
                   threshold))
  return rows


def _row(run, path, window, start, end, probs, dist, threshold=None) -> dict:
  sr = run.sample_rate
  row = {"file": path, "window": window, "start_s": f"{start / sr:.2f}",
         "end_s": f"{end / sr:.2f}",
         "prediction": run.classes[int(np.argmax(probs))], "error": ""}
  row.update({c: float(p) for c, p in zip(run.classes, probs)})
  if dist is not None:
    row["distance"] = float(dist)
    row["familiar"] = "yes" if dist <= run.familiarity["threshold"] else "no"
  if threshold is not None:
    low = float(np.max(probs)) < threshold
    unf = row.get("familiar") == "no"
    row["abstained"] = "yes" if low or unf else "no"
    row["reason"] = ("both" if low and unf else "low confidence" if low
                     else "unfamiliar" if unf else "")
  return row


def chunks(files: list[str], normalize_by: str) -> list[list[str]]:
  """`CHUNK` files at a time; under 'folder' a folder's files stay together
  (their statistics need all of them)."""
  if normalize_by != "folder":
    return [files[s:s + CHUNK] for s in range(0, len(files), CHUNK)]
  out = []
  for f in files:
    folder = os.path.dirname(os.path.abspath(f))
    if out and os.path.dirname(os.path.abspath(out[-1][-1])) == folder:
      out[-1].append(f)
    else:
      out.append([f])
  return out


def predict_files(run: TrainedRun, files: list[str], *, on_rows=None,
                  progress: bool = True, threshold=None,
                  normalize_by: str = "auto") -> list[dict]:
  """Rows for every file, `CHUNK` files at a time; `on_rows(rows)` is called
  after each chunk (the CSV writer)."""
  normalize_by = resolve_normalize_by(run, normalize_by)
  logging.info("Inputs standardised %s.", {
      "none": "with the run's training statistics (inductive, as the "
              "learning curve's arms without _speaker)",
      "folder": "per folder with that folder's own files (transductive, as "
                "the learning curve's _speaker arms: one folder, one "
                "speaker)",
      "file": "per file with that file's own statistics"}[normalize_by])
  rows, t0, done = [], time.perf_counter(), 0
  stream = load_many(run, files)
  for chunk in chunks(files, normalize_by):
    loaded = [next(stream) for _ in chunk]
    new = rows_for(run, chunk, loaded, threshold, normalize_by)
    rows += new
    if on_rows:
      on_rows(new)
    done += len(chunk)
    if progress:
      dt = time.perf_counter() - t0
      rate = done / max(dt, 1e-9)
      print(f"\rpredict: {done}/{len(files)} files, {rate:.1f} files/s, "
            f"ETA {(len(files) - done) / max(rate, 1e-9):.0f} s",
            end="" if done < len(files) else "\n", file=sys.stderr, flush=True)
  return rows


def run(config, workdir: str, audio: list[str], output: str | None = None,
        abstain_below: str | None = None,
        normalize_by: str = "auto") -> list[dict]:
  """Predicts every file; `abstain_below` ('coverage=0.8' | 'prob=0.5') adds
  the `abstained` (yes/no) and `reason` columns; `normalize_by`: see
  rows_for.
  `config` is None: this mode reads the trained run's own config from
  `workdir` (every mode's entry point is `run(config, workdir, ...)`)."""
  files = expand(audio)
  if not files:
    raise DataError("no audio files given: use --audio FILE|DIR|GLOB")
  run = inference.load_run(workdir)
  normalize_by = resolve_normalize_by(run, normalize_by)
  threshold = parse_abstain(abstain_below, run)
  cols = ["file", "window", "start_s", "end_s", "prediction", *run.classes,
          "distance", "familiar", "error"]
  if threshold is not None:
    cols += ["abstained", "reason"]
  out = sys.stdout
  fh = writer = None
  if output:
    fh = open(output, "w", newline="")
    writer = csv.DictWriter(fh, fieldnames=cols)
    writer.writeheader()

  def write(rows):
    if writer:
      for r in rows:
        writer.writerow({k: r.get(k, "") for k in cols})
      fh.flush()

  logging.info("Predicting %d file(s) with %s (checkpoint step %d).",
               len(files), workdir, run.step)
  try:
    rows = predict_files(run, files, on_rows=write, threshold=threshold,
                         normalize_by=normalize_by)
  finally:
    if fh:
      fh.close()
  width = max(12, min(48, max(len(r["file"]) for r in rows)))
  fam = run.familiarity is not None
  print(f"run {workdir}, checkpoint step {run.step}", file=out)
  print(f"{'file':<{width}} {'window':>6} {'start':>6} {'end':>6} "
        f"{'prediction':<11}" + "".join(f" {c[:9]:>9}" for c in run.classes)
        + (f" {'distance':>8} {'familiar':>8}" if fam else "")
        + (" abstained" if threshold is not None else ""), file=out)
  for r in rows:
    name = r["file"][-width:]
    if r["error"]:
      print(f"{name:<{width}} {r['window']:>6}  error: {r['error']}", file=out)
      continue
    print(f"{name:<{width}} {r['window']:>6} {r['start_s']:>6} "
          f"{r['end_s']:>6} {r['prediction']:<11}"
          + "".join(f" {r[c]:>9.3f}" for c in run.classes)
          + (f" {r['distance']:>8.1f} {r['familiar']:>8}" if "distance" in r
             else "")
          + (f" {r['abstained']:>3} {r['reason']}" if "abstained" in r
             else ""), file=out)
  files_all = [r for r in rows if r["window"] == "all" and not r["error"]]
  unfamiliar = sum(r.get("familiar") == "no" for r in files_all)
  errors = sum(bool(r["error"]) for r in rows)
  print(f"{len(files_all)} file(s) classified"
        + (f", {errors} could not be read (see their error rows)" if errors
           else "") + ".", file=out)
  if threshold is not None and files_all:
    n_abs = sum(r["abstained"] == "yes" for r in files_all)
    print(f"Abstained on {n_abs} of {len(files_all)} file(s) (calibrated "
          f"confidence below {threshold:.3f} ({abstain_below}) or unfamiliar); "
          "their predictions are in the table but should not be acted on.",
          file=out)
  if fam and files_all:
    print(f"{unfamiliar} of {len(files_all)} file(s) lie farther from the "
          f"run's training data than {100 * run.familiarity['quantile']:.0f}% "
          f"of its validation clips (distance > "
          f"{run.familiarity['threshold']:.1f}): treat their predictions with "
          "caution, and see README 'Does it generalise?'.", file=out)
  return rows
