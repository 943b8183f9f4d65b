"""How many of my clips must I label, and what do I do with them?

  python launch.py --mode learning_curve --config configs/own_data.py:DATA \
      --config.train.init_from=RUN --workdir OUT

1. A test set is fixed once: the data's speaker fold `data.fold` when the
   clips carry speakers (speaker-independent), else a stratified
   `learning_curve.test_fraction` of the clips. It never changes across the
   curve (OUT/test_set.csv lists it).
2. From the other clips, k labelled clips per class are drawn for every k in
   `learning_curve.shots` (-1: all), `learning_curve.repeats` times. Draws are
   nested: for one repeat, the clips of k=10 include those of k=5 (each
   repeat is one seeded permutation per class, cut at k).
3. Arms (`learning_curve.arms`), every one on the same cells:
   - `baseline`: fser_jax/baseline.py's per-clip statistics into a logistic
     regression: the bar every other arm must clear;
   - `probe`: a logistic regression on RUN's embedding (its last hidden
     layer and its pooled convolution blocks, through fser_jax.inference,
     the way every mode scores a clip) beside the baseline's, their
     log-probabilities summed (a product of experts); reported with it:
     `probe_cv` (the embedding's weight chosen by cross-validation holding
     out whole speakers, fser_jax.baseline.fusion_weight; 0 = the baseline
     alone) and `probe_embedding` (the embedding's regression alone);
   - `scratch`: the config trained from random initialisation;
   - `finetune`: from RUN, with the fine-tuning recipe: learning rate
     `learning_curve.finetune_learning_rate`, the output layer alone for
     `learning_curve.finetune_head_only_steps` steps (a linear probe), then
     every layer, gradients clipped to `learning_curve.finetune_clip_grad_norm`;
   - once, `zero_shot`: RUN as it is on the test set through the label
     mapping (fser_jax/labels.py), over the mapped classes only.
   An arm that cannot run is skipped with the reason; a CNN cell whose loss
   stops being finite is counted in its row's `diverged`, not lost.
4. Budget of a CNN cell: `learning_curve.epochs` epochs over its clips within
   [`min_steps`, `max_steps`] steps (`learning_curve.steps` > 0: that many
   for every cell). No validation split (k=5 leaves nothing to spare): each
   cell reports its final state.

Each CNN cell is an ordinary run (protocol `file`) in OUT/<arm>/k<k>_r<r>, so
an interrupted curve resumes: finished cells are read back, the unfinished
one resumes from its checkpoint. OUT gets learning_curve.json (shape below),
learning_curve.md (its first lines: which arm to use at each k, and a
warning when RUN calls most clips one class) and learning_curve.png.

  {"test_clips": int, "classes": [...],
   "arms": {"scratch": [{"shots": k, "n_train": int, "ua_mean": f, "ua_std": f,
                         "acc_mean": f, ...}, ...],
            "finetune": [...], "baseline": [...], "probe": [...],
            "probe_cv": [...], "probe_embedding": [...],
            "zero_shot": {"ua": f, "acc": f, "mapped_classes": [...],
                          "degenerate": {"class", "share"} | null}},
   "recommendation": [{"shots": k, "arm": str, "ua_mean": f,
                       "margin_over_baseline": f | null, "text": str}]}
("all" is shots -1; a skipped arm is [] or null, with `skipped[arm]` saying why.)
"""

from __future__ import annotations

import copy
import csv
import json
import os

import numpy as np
from absl import logging

from fser_jax import baseline as baseline_lib
from fser_jax import config as config_lib
from fser_jax import input_pipeline
from fser_jax import metrics as metrics_lib
from fser_jax import plots
from fser_jax import run as run_lib
from fser_jax import rundir
from fser_jax import scoring
from fser_jax import splits as splits_lib
from fser_jax.errors import DataError
from fser_jax.train import TrainingDiverged

CNN_ARMS = ("scratch", "finetune")  # trained cells, OUT/<arm>/k<k>_r<r>
ARMS = ("baseline", "probe", "scratch", "finetune")  # learning_curve.arms
ROWS = ARMS + ("probe_cv", "probe_embedding")  # rows in learning_curve.json
NEEDS_RUN = ("probe", "finetune", "zero_shot")


def fixed_test(config, labels: np.ndarray, meta: dict) -> tuple[np.ndarray, str]:
  """(bool mask of the test clips, how they were chosen)."""
  d, lc = config.data, config.learning_curve
  speakers = set(meta["speaker"].tolist()) - {""}
  if len(speakers) >= 2:
    split = splits_lib.assign("speaker", {**meta, "label": labels},
                              fold=d.fold, folds=d.num_folds,
                              seed=d.split_seed)
    test = split == splits_lib.TEST
    name = splits_lib.fold_name("speaker", meta, d.fold, folds=d.num_folds)
    return test, f"speaker-independent: speaker fold {d.fold} ({name})"
  rng = np.random.default_rng([d.split_seed, 7])
  idx = splits_lib.stratified_take(np.arange(labels.size), labels,
                                   lc.test_fraction, rng)
  test = np.zeros(labels.size, bool)
  test[idx] = True
  return test, (f"stratified random {100 * lc.test_fraction:.0f}% (the data "
                "has no speaker ids)")


def draws(labels: np.ndarray, pool: np.ndarray, shots, repeats: int,
          seed: int) -> dict:
  """{(k, r): sorted clip indices}: k per class from `pool`, nested in k."""
  out = {}
  for r in range(repeats):
    rng = np.random.default_rng([seed, 11, r])
    perms = {c: rng.permutation(pool[labels[pool] == c])
             for c in np.unique(labels[pool])}
    for k in shots:
      take = [p if k < 0 else p[:k] for p in perms.values()]
      out[(k, r)] = np.sort(np.concatenate(take))
  return out


def cell_steps(lc, n_train: int, batch_size: int) -> int:
  """A CNN cell's budget: `lc.steps` when set, else `lc.epochs` epochs
  within [lc.min_steps, lc.max_steps]."""
  if lc.steps > 0:
    return int(lc.steps)
  per_epoch = max(1, n_train // batch_size)
  return int(np.clip(lc.epochs * per_epoch, lc.min_steps, lc.max_steps))


def cell_config(config, arm: str, split_file: str, n_train: int, repeat: int):
  c = copy.deepcopy(config)
  lc = config.learning_curve
  with c.unlocked():
    c.seed = config.seed + repeat
    c.baseline = False  # the curve's own baseline arm scores the same cells
    c.data.protocol = "file"
    c.data.split_file = os.path.abspath(split_file)
    c.data.fold = 0
    c.train.batch_size = min(lc.batch_size, n_train)
    steps = cell_steps(lc, n_train, c.train.batch_size)
    c.train.num_steps = steps
    epochs = -(-steps // max(1, n_train // c.train.batch_size))
    c.train.num_epochs = epochs
    c.train.eval_every_epochs = max(1, epochs // 4)
    c.train.checkpoint_every_epochs = max(1, epochs // 4)
    if arm == "scratch":
      c.train.init_from = ""
      c.train.freeze = "none"
      c.train.init_from_norm = False
      c.train.init_label_map = ""
      c.train.head_only_steps = 0
    else:  # the fine-tuning recipe, warmup counted in steps
      head = min(int(lc.finetune_head_only_steps), steps // 2)
      c.train.learning_rate = float(lc.finetune_learning_rate)
      c.train.clip_grad_norm = float(lc.finetune_clip_grad_norm)
      c.train.head_only_steps = head
      c.train.warmup_epochs = 0
      c.train.warmup_steps = head + max(1, steps // 10)
  return c


def _write_split(path: str, filenames, train_idx, test_mask) -> None:
  rows = [(filenames[i], splits_lib.TEST) for i in np.flatnonzero(test_mask)]
  rows += [(filenames[i], splits_lib.TRAIN) for i in train_idx]
  text = "filename,split\n" + "".join(f"{a},{b}\n" for a, b in sorted(rows))
  if os.path.exists(path):
    with open(path) as f:
      if f.read() == text:
        return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(text)


def _run_cell(c, cdir: str, overwrite: bool) -> dict | None:
  """The cell's report (read back when it finished before), or None when
  its training diverged (logged, and kept in OUT/<arm>/<cell>/DIVERGED)."""
  flag = os.path.join(cdir, "DIVERGED")
  if not overwrite and os.path.exists(flag):
    rundir.prepare(c, cdir)  # refuses a changed config
    return None
  try:
    return run_lib.train_or_read_back(c, cdir, overwrite=overwrite)
  except TrainingDiverged as e:
    logging.warning("learning curve cell %s diverged: %s", cdir, e)
    with open(flag, "w") as f:
      f.write(str(e) + "\n")
    return None


def _at_rate(waveforms, rate: int, target: int):
  if rate == target:
    return list(waveforms)
  import librosa
  return [librosa.resample(w, orig_sr=rate, target_sr=target)
          for w in waveforms]


def zero_shot(config, run, waveforms, labels, classes, test: np.ndarray,
              meta: dict) -> dict:
  wavs = _at_rate([waveforms[i] for i in np.flatnonzero(test)],
                  config.data.sample_rate, run.sample_rate)
  rep, _ = scoring.evaluate(
      run, wavs, [classes[i] for i in labels[test]],
      meta={k: np.asarray(v)[test] for k, v in meta.items()},
      label_map=config.learning_curve.get("label_map", ""))
  mapped = sorted({v for v in rep["label_map"].values() if v is not None})
  return {"ua": rep["unweighted_accuracy"], "acc": rep["accuracy"],
          "mapped_classes": mapped, "n_mapped": rep["n_mapped"],
          "unmapped": rep["unmapped"], "label_map": rep["label_map"],
          "restricted": rep["restricted"], "degenerate": rep["degenerate"]}


def clip_features(config, waveforms, meta, workdir: str, run=None) -> dict:
  """{'stats': [N, F] baseline statistics, 'embedding': [N, D] RUN's
  embedding or absent}, cached in OUT/features.npz by file name and run."""
  path = os.path.join(workdir, "features.npz")
  names = np.asarray([str(f) for f in meta["filename"]])
  source = np.asarray("" if run is None else
                      f"{os.path.abspath(run.workdir)}@{run.step}")
  if os.path.exists(path):
    cached = np.load(path)
    fresh = np.array_equal(cached["filenames"], names)
    if run is not None:  # the embedding must be this run's
      fresh = fresh and "source" in cached.files and str(
          cached["source"]) == str(source) and "embedding" in cached.files
    if fresh:
      return {k: cached[k] for k in cached.files
              if k not in ("filenames", "source")}
  logging.info("Learning curve: per-clip statistics of %d clips%s.",
               len(waveforms), " and the run's embedding" if run else "")
  out = {"stats": baseline_lib.features(waveforms, config.data.sample_rate)}
  if run is not None:
    wavs = _at_rate(waveforms, config.data.sample_rate, run.sample_rate)
    out["embedding"] = run.classify(
        wavs, groups=run.groups_for(meta, len(wavs))).embedding
  np.savez(path, filenames=names, source=source, **out)
  return out


def linear_cell(blocks: list, labels, idx, test, num_classes: int,
                speakers=None, fusion: str = "product") -> dict:
  """The report on the cell of logistic regressions on feature `blocks`,
  fused as fser_jax/baseline.py does (`fusion='cv'`: weighted by
  speaker-held-out cross-validation when the clips have speakers)."""
  groups = None
  if speakers is not None:
    g = np.asarray(speakers)[idx]
    groups = g if len(set((g[g != ""]).tolist())) >= 2 else None
  rep = baseline_lib.fit_and_score([x[idx] for x in blocks], labels[idx],
                                   [x[test] for x in blocks], labels[test],
                                   num_classes, groups_train=groups,
                                   fusion=fusion)
  if rep is None:
    raise DataError("learning curve: a cell holds clips of one class only; "
                    "use larger learning_curve.shots")
  return rep


def _row(k: int, n_train: int, reps: list[dict | None]) -> dict:
  ok = [r for r in reps if r is not None]
  ua = [r["unweighted_accuracy"] for r in ok]
  acc = [r["accuracy"] for r in ok]
  f1 = [r["macro_f1"] for r in ok]
  mean = lambda v: float(np.mean(v)) if v else None
  row = {"shots": k, "n_train": n_train, "ua_mean": mean(ua),
         "ua_std": float(np.std(ua)) if ua else None,
         "acc_mean": mean(acc), "acc_std": float(np.std(acc)) if acc else None,
         "macro_f1_mean": mean(f1), "ua": ua,
         "diverged": len(reps) - len(ok)}
  if ok and "fusion_weight" in ok[0]:
    row["fusion_weight"] = [r["fusion_weight"] for r in ok]
  return row


def recommend(out: dict) -> list[dict]:
  """Per k: the arm with the best mean UA, and its margin over the
  baseline arm (what a user should do with that many clips)."""
  arms = {a: rows for a, rows in out["arms"].items()
          if isinstance(rows, list) and rows}
  if not arms:
    return []
  base = {r["shots"]: r["ua_mean"] for r in arms.get("baseline", [])}
  recs = []
  for i, row in enumerate(next(iter(arms.values()))):
    k = row["shots"]
    scored = sorted(((rows[i]["ua_mean"], a) for a, rows in arms.items()
                     if rows[i]["ua_mean"] is not None), reverse=True)
    if not scored:
      continue
    ua, best = scored[0]
    b = base.get(k)
    margin = None if b is None else ua - b
    kk = "all" if k < 0 else str(k)
    spread = arms[best][i]["ua_std"]
    text = (f"With {kk} clips per class use `{best}`: UA {100 * ua:.1f} "
            f"± {100 * spread:.1f}%")
    if best == "baseline":
      rival = next(((u, a) for u, a in scored[1:]), None)
      text += (", the CNN-based arms do not beat it here"
               + (f" (best: `{rival[1]}`, {100 * (ua - rival[0]):.1f} points "
                  "below)" if rival else "") + ".")
    elif margin is not None:
      text += (f", {100 * margin:+.1f} points against the baseline "
               f"({100 * b:.1f}%).")
    else:
      text += "."
    recs.append({"shots": k, "arm": best, "ua_mean": ua,
                 "margin_over_baseline": margin, "text": text})
  return recs


def run_curve(config, workdir: str, *, overwrite: bool = False) -> dict:
  config_lib.validate(config)
  lc = config.learning_curve
  shots = [int(k) for k in lc.shots]
  if not shots or any(k == 0 or k < -1 for k in shots):
    raise config_lib.ConfigError(f"config learning_curve.shots={lc.shots!r}: "
                                 "clips per class, positive or -1 (all)")
  # A tuple, or one string 'baseline,probe' (as a command line passes it).
  wanted = [a.strip() for x in lc.arms for a in str(x).split(",") if a.strip()]
  unknown = sorted(set(wanted) - set(ARMS))
  if unknown or not wanted:
    raise config_lib.ConfigError(f"config learning_curve.arms={lc.arms!r}: "
                                 f"expected some of {ARMS}")
  shots = sorted(set(shots), key=lambda k: (k < 0, k))
  os.makedirs(workdir, exist_ok=True)
  waveforms, labels, classes, meta = input_pipeline.load_clips(config.data)
  if not waveforms:
    raise DataError(f"dataset {config.data.dataset} has no clips")
  test, test_how = fixed_test(config, labels, meta)
  pool = np.flatnonzero(~test)
  if not pool.size or not test.any():
    raise DataError(f"learning curve: the fixed test set ({test_how}) leaves "
                    f"{pool.size} clips to train on and {int(test.sum())} to "
                    "test; more data or another data.fold")
  filenames = [str(f) for f in meta["filename"]]
  with open(os.path.join(workdir, "test_set.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["filename", "label", "speaker"])
    for i in np.flatnonzero(test):
      w.writerow([filenames[i], classes[labels[i]], meta["speaker"][i]])
  cells = draws(labels, pool, shots, lc.repeats, config.data.split_seed)
  arms = wanted
  skipped = {}
  run = None
  if config.train.init_from:
    from fser_jax.inference import TrainedRun
    run = TrainedRun(os.path.expanduser(config.train.init_from))
  else:
    for a in NEEDS_RUN:
      if a in arms or a == "zero_shot":
        skipped[a] = "no train.init_from (the run to start from)"
    arms = [a for a in arms if a not in NEEDS_RUN]
  out = {"dataset": config.data.dataset, "test_clips": int(test.sum()),
         "test_set": test_how, "classes": list(classes),
         "steps_per_cell": {("all" if k < 0 else str(k)): cell_steps(
             lc, int(cells[(k, 0)].size),
             min(lc.batch_size, int(cells[(k, 0)].size))) for k in shots},
         "repeats": int(lc.repeats),
         "init_from": config.train.init_from or None,
         "freeze": config.train.freeze, "arms": {}, "skipped": skipped}
  if run is not None:
    try:
      out["arms"]["zero_shot"] = zero_shot(config, run, waveforms, labels,
                                           classes, test, meta)
    except DataError as e:  # no mappable class
      skipped["zero_shot"] = str(e)
  out["arms"].setdefault("zero_shot", None)

  # --- the linear arms: seconds per cell ---------------------------------------
  linear = [a for a in arms if a in ("baseline", "probe")]
  if linear:
    feats = clip_features(config, waveforms, meta, workdir,
                          run if "probe" in arms else None)
    inputs = {"baseline": ([feats["stats"]], "product")}
    if "probe" in arms:
      both = [feats["stats"], feats["embedding"]]
      inputs["probe"] = (both, "product")
      inputs["probe_cv"] = (both, "cv")
      inputs["probe_embedding"] = ([feats["embedding"]], "product")
    for arm, (x, fusion) in inputs.items():
      out["arms"][arm] = [
          _row(k, int(cells[(k, 0)].size),
               [linear_cell(x, labels, cells[(k, r)], test, len(classes),
                            meta["speaker"], fusion)
                for r in range(lc.repeats)]) for k in shots]

  # --- the CNN arms: trained cells -----------------------------------------------
  trained = [a for a in CNN_ARMS if a in arms]
  total = len(trained) * len(cells)
  done = 0
  for arm in trained:
    rows = []
    for k in shots:
      reps = []
      for r in range(lc.repeats):
        idx = cells[(k, r)]
        done += 1
        tag = f"k{'all' if k < 0 else k}_r{r}"
        cdir = os.path.join(workdir, arm, tag)
        split_file = os.path.join(cdir, "split.csv")
        _write_split(split_file, filenames, idx, test)
        logging.info("=== learning curve cell %d/%d: %s, %s clips per class "
                     "(%d clips), repeat %d ===", done, total, arm,
                     "all" if k < 0 else k, idx.size, r)
        reps.append(_run_cell(cell_config(config, arm, split_file, idx.size,
                                          r), cdir, overwrite))
      rows.append(_row(k, int(cells[(k, 0)].size), reps))
    out["arms"][arm] = rows
  for arm in ROWS:
    out["arms"].setdefault(arm, [])
  out["recommendation"] = recommend(out)
  with open(os.path.join(workdir, "learning_curve.json"), "w") as f:
    json.dump(out, f, indent=2)
  md = to_markdown(out)
  with open(os.path.join(workdir, "learning_curve.md"), "w") as f:
    f.write(md)
  plots.learning_curve(out, os.path.join(workdir, "learning_curve.png"))
  print(md)
  return out


def _cell(row: dict) -> str:
  if row["ua_mean"] is None:
    return "diverged"
  text = f"{100 * row['ua_mean']:.1f} ± {100 * row['ua_std']:.1f}"
  return text + (f" ({row['diverged']} diverged)" if row.get("diverged")
                 else "")


def to_markdown(out: dict) -> str:
  arms = out["arms"]
  z = arms.get("zero_shot")
  lines = [f"# Learning curve: `{out['dataset']}`", ""]
  first = metrics_lib.dominant_line((z or {}).get("degenerate"),
                                    (z or {}).get("n_mapped", 0))
  if first:
    lines += [first, ""]
  lines += [r["text"] for r in out.get("recommendation", [])]
  steps = ", ".join(f"{s} (k={k})" for k, s in out["steps_per_cell"].items())
  lines += ["", f"Test set: {out['test_clips']} clips, {out['test_set']}; "
            f"fixed for every cell. CNN cells train {steps} steps; "
            f"{out['repeats']} draws per k (nested), mean ± std of UA %.", ""]
  if z:
    lines += [f"Zero-shot (`{out['init_from']}` as it is, through the label "
              f"map, over the mapped classes {', '.join(z['mapped_classes'])}; "
              f"{z['n_mapped']} of {out['test_clips']} test clips): UA "
              f"{100 * z['ua']:.1f}%, accuracy {100 * z['acc']:.1f}%.", ""]
  for arm, why in out["skipped"].items():
    lines += [f"Skipped `{arm}`: {why}.", ""]
  have = [a for a in ("baseline", "probe", "probe_cv", "probe_embedding")
          + CNN_ARMS if arms.get(a)]
  lines += ["| clips per class | train clips | "
            + " | ".join(f"{a} UA %" for a in have) + " |",
            "|---|---|" + "---|" * len(have)]
  n = max(len(arms[a]) for a in have) if have else 0
  for i in range(n):
    row = arms[have[0]][i]
    k = "all" if row["shots"] < 0 else str(row["shots"])
    lines.append(f"| {k} | {row['n_train']} | "
                 + " | ".join(_cell(arms[a][i]) for a in have) + " |")
  return "\n".join(lines) + "\n"
