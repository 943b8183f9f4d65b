"""How many of my clips must I label? Scratch vs fine-tuned vs zero-shot.

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
3. Three arms: `scratch` (the config from random initialisation),
   `finetune` (from `train.init_from`, with its `train.freeze` and
   normalisation choices) and, once, `zero_shot` (the run evaluated on the
   test set through the label mapping, fser_jax/labels.py; over the mapped
   classes only). An arm that cannot run is skipped with the reason.
4. Budget: every cell trains `learning_curve.steps` steps (batch
   `learning_curve.batch_size`, or the cell's clip count when smaller),
   whatever k is: with a budget in epochs, k=5 would get a handful of steps
   and the curve would measure under-training, not data. No validation split
   (k=5 leaves nothing to spare): each cell reports its final state.

Each cell is an ordinary run (protocol `file`) in OUT/<arm>/k<k>_r<r>, so an
interrupted curve resumes: finished cells are read back, the unfinished one
resumes from its checkpoint. OUT gets learning_curve.json (shape below),
learning_curve.md and learning_curve.png.

  {"test_clips": int, "classes": [...],
   "arms": {"scratch": [{"shots": k, "n_train": int, "ua_mean": f, "ua_std": f,
                         "acc_mean": f, ...}, ...],
            "finetune": [...],
            "zero_shot": {"ua": f, "acc": f, "mapped_classes": [...]}}}
("all" is shots -1; a skipped arm is [] or null, with `skipped[arm]` saying why.)
"""

from __future__ import annotations

import copy
import csv
import json
import os

import numpy as np
from absl import logging

from fser_jax import config as config_lib
from fser_jax import input_pipeline
from fser_jax import plots
from fser_jax import run as run_lib
from fser_jax import splits as splits_lib
from fser_jax.errors import DataError

ARMS = ("scratch", "finetune")


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


def cell_config(config, arm: str, split_file: str, n_train: int, repeat: int):
  c = copy.deepcopy(config)
  lc = config.learning_curve
  with c.unlocked():
    c.seed = config.seed + repeat
    c.data.protocol = "file"
    c.data.split_file = os.path.abspath(split_file)
    c.data.fold = 0
    c.train.num_steps = lc.steps
    c.train.batch_size = min(lc.batch_size, n_train)
    epochs = -(-lc.steps // max(1, n_train // c.train.batch_size))
    c.train.num_epochs = epochs
    c.train.eval_every_epochs = max(1, epochs // 4)
    c.train.checkpoint_every_epochs = max(1, epochs // 4)
    if arm == "scratch":
      c.train.init_from = ""
      c.train.freeze = "none"
      c.train.init_from_norm = False
      c.train.init_label_map = ""
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


def _run_cell(c, cdir: str, overwrite: bool) -> dict:
  path = os.path.join(cdir, "report.json")
  if os.path.exists(path) and not overwrite:
    run_lib.prepare_workdir(c, cdir)  # refuses a changed config
    with open(path) as f:
      return json.load(f)
  return run_lib.train_and_evaluate(c, cdir, overwrite=overwrite)


def zero_shot(config, waveforms, labels, classes, test: np.ndarray) -> dict:
  from fser_jax.experiments import evaluate as evaluate_lib
  from fser_jax.inference import TrainedRun
  run = TrainedRun(os.path.expanduser(config.train.init_from))
  wavs = [waveforms[i] for i in np.flatnonzero(test)]
  if run.sample_rate != config.data.sample_rate:
    import librosa
    wavs = [librosa.resample(w, orig_sr=config.data.sample_rate,
                             target_sr=run.sample_rate) for w in wavs]
  rep, _ = evaluate_lib.evaluate(
      run, wavs, [classes[i] for i in labels[test]],
      label_map=config.learning_curve.get("label_map", ""))
  mapped = sorted({v for v in rep["label_map"].values() if v is not None})
  return {"ua": rep["unweighted_accuracy"], "acc": rep["accuracy"],
          "mapped_classes": mapped, "n_mapped": rep["n_mapped"],
          "unmapped": rep["unmapped"], "label_map": rep["label_map"],
          "restricted": rep["restricted"]}


def run_curve(config, workdir: str, *, overwrite: bool = False) -> dict:
  config_lib.validate(config)
  lc = config.learning_curve
  shots = [int(k) for k in lc.shots]
  if not shots or any(k == 0 or k < -1 for k in shots):
    raise config_lib.ConfigError(f"config learning_curve.shots={lc.shots!r}: "
                                 "clips per class, positive or -1 (all)")
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
  arms = ["scratch"]
  skipped = {}
  if config.train.init_from:
    arms.append("finetune")
  else:
    skipped["finetune"] = "no train.init_from (the run to start from)"
    skipped["zero_shot"] = "no train.init_from (the run to evaluate)"
  out = {"dataset": config.data.dataset, "test_clips": int(test.sum()),
         "test_set": test_how, "classes": list(classes),
         "steps_per_cell": int(lc.steps), "repeats": int(lc.repeats),
         "init_from": config.train.init_from or None,
         "freeze": config.train.freeze, "arms": {}, "skipped": skipped}
  if "zero_shot" not in skipped:
    try:
      out["arms"]["zero_shot"] = zero_shot(config, waveforms, labels, classes,
                                           test)
    except DataError as e:  # no mappable class
      skipped["zero_shot"] = str(e)
  out["arms"].setdefault("zero_shot", None)
  total = len(arms) * len(cells)
  done = 0
  for arm in ARMS:
    rows = []
    for k in shots:
      ua, acc, f1, n_train = [], [], [], 0
      for r in range(lc.repeats):
        idx = cells[(k, r)]
        n_train = int(idx.size)
        if arm not in arms:
          continue
        done += 1
        tag = f"k{'all' if k < 0 else k}_r{r}"
        cdir = os.path.join(workdir, arm, tag)
        split_file = os.path.join(cdir, "split.csv")
        _write_split(split_file, filenames, idx, test)
        logging.info("=== learning curve cell %d/%d: %s, %s clips per class "
                     "(%d clips), repeat %d ===", done, total, arm,
                     "all" if k < 0 else k, n_train, r)
        rep = _run_cell(cell_config(config, arm, split_file, n_train, r),
                        cdir, overwrite)
        ua.append(rep["unweighted_accuracy"])
        acc.append(rep["accuracy"])
        f1.append(rep["macro_f1"])
      if arm in arms:
        rows.append({"shots": k, "n_train": n_train,
                     "ua_mean": float(np.mean(ua)), "ua_std": float(np.std(ua)),
                     "acc_mean": float(np.mean(acc)),
                     "acc_std": float(np.std(acc)),
                     "macro_f1_mean": float(np.mean(f1)), "ua": ua})
    out["arms"][arm] = rows
  with open(os.path.join(workdir, "learning_curve.json"), "w") as f:
    json.dump(out, f, indent=2)
  md = to_markdown(out)
  with open(os.path.join(workdir, "learning_curve.md"), "w") as f:
    f.write(md)
  plots.learning_curve(out, os.path.join(workdir, "learning_curve.png"))
  print(md)
  return out


def to_markdown(out: dict) -> str:
  arms = out["arms"]
  lines = [f"# Learning curve: `{out['dataset']}`", "",
           f"Test set: {out['test_clips']} clips, {out['test_set']}; fixed for "
           f"every cell. Each cell trains {out['steps_per_cell']} steps; "
           f"{out['repeats']} draws per k (nested), mean ± std of UA %.", ""]
  z = arms.get("zero_shot")
  if z:
    lines += [f"Zero-shot (`{out['init_from']}` as it is, through the label "
              f"map, over the mapped classes {', '.join(z['mapped_classes'])}; "
              f"{z['n_mapped']} of {out['test_clips']} test clips): UA "
              f"{100 * z['ua']:.1f}%, accuracy {100 * z['acc']:.1f}%.", ""]
  for arm, why in out["skipped"].items():
    lines += [f"Skipped `{arm}`: {why}.", ""]
  have = [a for a in ARMS if arms.get(a)]
  lines += ["| clips per class | train clips | "
            + " | ".join(f"{a} UA %" for a in have) + " |",
            "|---|---|" + "---|" * len(have)]
  n = max(len(arms[a]) for a in have) if have else 0
  for i in range(n):
    row = arms[have[0]][i]
    k = "all" if row["shots"] < 0 else str(row["shots"])
    cells = [f"{100 * arms[a][i]['ua_mean']:.1f} ± {100 * arms[a][i]['ua_std']:.1f}"
             for a in have]
    lines.append(f"| {k} | {row['n_train']} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
