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
3. Arms (`learning_curve.arms`), every one on the same cells. The linear
   arms are logistic regressions whose feature set, C and fusion weight are
   fixed below `learning_curve.search_from`, else chosen by cross-validation
   on the cell's labelled clips that holds out whole speakers
   (fser_jax/evaluation/linear.py):
   - `baseline`: per-clip statistics (fser_jax/evaluation/linear.py), standardised
     with the training clips' statistics;
   - `egemaps` (with `learning_curve.egemaps`): the 88 eGeMAPS functionals
     by openSMILE (pip install fser_jax[egemaps]; audEERING's research
     licence), the field's standard small feature set;
   - `probe_embedding`: RUN's embedding (its last hidden layer and its
     pooled convolution blocks, through fser_jax.runs.trained, the way every
     mode scores a clip), computed with RUN's training statistics;
   - `probe`: both regressions, their log-probabilities summed with the
     embedding's weighted (FUSION_WEIGHTS, by cross-validation);
   - each with a `_speaker` twin (`baseline_speaker`, ...): every block
     standardised per speaker with that speaker's own clips, labels unused,
     the test speaker's included (transductive: it needs the test speaker's
     unlabelled audio, as a user has it); RUN's embedding there uses RUN's
     own per-speaker normalisation when RUN was trained with it;
   - `scratch`, `finetune`: CNN cells (the config from random initialisation;
     RUN with the fine-tuning recipe), reported beside the others but never
     chosen (they get no cross-validation); each cell's final training loss
     is reported, and a cell above 90% of ln(classes) is flagged as not
     having learned;
   - once, `zero_shot`: RUN as it is on the test set through the label
     mapping (fser_jax/data/labels.py, `--label_map`), over the mapped classes.
   An arm that cannot run is skipped with the reason; a CNN cell whose loss
   stops being finite is counted in its row's `diverged`, not lost.
4. The choice (`choice`): below `learning_curve.choose_from` clips per class
   the default arm (`baseline_speaker` with speakers, else `baseline`);
   from it on, in every draw, the linear arm with the best cross-validated
   UA on the draw's labelled clips, or the first candidate (the per-speaker
   family first) within one standard error of it
   (`learning_curve.choice_rule='one_se'`; 'best': the best alone). Below
   `learning_curve.search_from` every arm's settings are fixed. The choice's
   `cv_ua` is nested (the choice made again inside every fold). The test
   speaker is not used. The test set then scores the chosen arm; every arm's
   test UA is reported too, marked as not used for the choice, with the best
   in hindsight beside the chosen one.
5. Budget of a CNN cell: `learning_curve.epochs` epochs over its clips within
   [`min_steps`, `max_steps`] steps (`learning_curve.steps` > 0: that many
   for every cell). No validation split (k=5 leaves nothing to spare): each
   cell reports its final state.

Each CNN cell is an ordinary run (protocol `file`) in OUT/<arm>/k<k>_r<r>, so
an interrupted curve resumes: finished cells are read back, the unfinished
one resumes from its checkpoint. Per-clip features are cached in
OUT/features.npz, keyed by the clips' audio, the rate, RUN's checkpoint and
the speakers.
OUT gets learning_curve.json (shape below), learning_curve.md (its first
lines: what was chosen at each k and how, and a warning when RUN calls most
clips one class) and learning_curve.png.

  {"test_clips": int, "classes": [...],
   "arms": {"baseline": [{"shots": k, "n_train": int, "ua_mean": f,
                          "ua_std": f, "cv_ua_mean": f, "acc_mean": f, ...}],
            "baseline_speaker": [...], "probe": [...], ...,
            "scratch": [{..., "final_loss": [f], "not_learned": int}],
            "zero_shot": {"ua": f, "acc": f, "mapped_classes": [...],
                          "degenerate": {"class", "share", "n"} | null}},
   "choice": [{"shots": k, "arm": str, "arms": [str per draw], "how": str,
               "cv_ua": f, "test_ua": f, "test_ua_std": f,
               "best_in_hindsight": {"arm": str, "ua": f}}],
   "recommendation": [{"shots": k, "arm": str, "ua_mean": f,
                       "margin_over_baseline": f | null, "text": str}]}
("all" is shots -1; a skipped arm is [] or null, with `skipped[arm]` saying
why; spreads are sample standard deviations over the draws.)
"""

from __future__ import annotations

import copy
import csv
import json
import os

import numpy as np
from absl import logging

from fser_jax import config as config_lib
from fser_jax.experiments.learning_curve import report as curve_report
from fser_jax.data import dataset_io
from fser_jax.experiments.learning_curve import arms as linear_arms
from fser_jax.experiments.learning_curve.arms import LINEAR
from fser_jax.evaluation import plots
from fser_jax.runs import cnn as run_lib
from fser_jax.train import rundir
from fser_jax.runs import scoring
from fser_jax.data import splits as splits_lib
from fser_jax.errors import DataError
from fser_jax.train.loop import TrainingDiverged

CNN_ARMS = ("scratch", "finetune")  # trained cells, OUT/<arm>/k<k>_r<r>
ARMS = ("baseline", "probe", "scratch", "finetune")  # learning_curve.arms
ROWS = LINEAR + ("reference_speaker",) + CNN_ARMS  # learning_curve.json
NEEDS_RUN = ("probe", "finetune", "zero_shot")
NOT_LEARNED = 0.9  # a CNN cell's final loss above this x ln(classes)


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
          seed: int, classes=None) -> dict:
  """{(k, r): sorted clip indices}: k per class from `pool`, nested in k. A
  class with fewer than k clips in the pool gives all it has (logged)."""
  have = np.bincount(labels[pool], minlength=int(labels.max()) + 1)
  for k in shots:
    short = [int(c) for c in np.unique(labels[pool]) if 0 < k and have[c] < k]
    if short:
      names = [str(c if classes is None else classes[c]) for c in short]
      logging.warning("learning curve: k=%d but %s ha%s only %s clips to "
                      "draw from; those cells take all of them", k,
                      ", ".join(names), "s" if len(short) == 1 else "ve",
                      "/".join(str(have[c]) for c in short))
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


def zero_shot(config, run, waveforms, labels, classes, test: np.ndarray,
              meta: dict) -> dict:
  wavs = linear_arms.at_rate([waveforms[i] for i in np.flatnonzero(test)],
                  config.data.sample_rate, run.sample_rate)
  rep, _ = scoring.evaluate(
      run, wavs, [classes[i] for i in labels[test]],
      meta={k: np.asarray(v)[test] for k, v in meta.items()},
      label_map=config.learning_curve.label_map)
  mapped = sorted({v for v in rep["label_map"].values() if v is not None})
  return {"ua": rep["unweighted_accuracy"], "acc": rep["accuracy"],
          "mapped_classes": mapped, "n_mapped": rep["n_mapped"],
          "unmapped": rep["unmapped"], "label_map": rep["label_map"],
          "restricted": rep["restricted"], "degenerate": rep["degenerate"]}


def _row(k: int, n_train: int, reps: list[dict | None],
         cv: list | None = None) -> dict:
  ok = [r for r in reps if r is not None]
  ua = [r["unweighted_accuracy"] for r in ok]
  acc = [r["accuracy"] for r in ok]
  f1 = [r["macro_f1"] for r in ok]
  mean = lambda v: float(np.mean(v)) if v else None
  row = {"shots": k, "n_train": n_train, "ua_mean": mean(ua),
         "ua_std": linear_arms.sample_sd(ua), "acc_mean": mean(acc),
         "acc_std": linear_arms.sample_sd(acc),
         "macro_f1_mean": mean(f1), "ua": ua, "draws": len(ua),
         "diverged": len(reps) - len(ok)}
  if cv is not None:
    vals = [v for v in cv if v is not None]
    row["cv_ua"] = cv
    row["cv_ua_mean"] = mean(vals)
  return row


def recommend(out: dict) -> list[dict]:
  """Per k: the arm chosen most often, that arm's own mean test UA, its
  margin over the baseline arm's, in a sentence; the procedure's UA (the
  arm each draw chose, averaged) under its own key."""
  base = {r["shots"]: r["ua_mean"] for r in out["arms"].get("baseline") or []}
  recs = []
  for c in out.get("choice", []):
    k, arm = c["shots"], c["arm"]
    ua = c["arm_test_ua"]
    b = base.get(k)
    margin = None if b is None or ua is None else ua - b
    kk = "all" if k < 0 else str(k)
    mixed = len(set(c["arms"])) > 1
    text = (f"With {kk} clips per class use `{arm}`"
            + (f" (chosen in {c['arms'].count(arm)} of {c['draws']} draws; "
               f"the others: {', '.join(sorted(set(c['arms']) - {arm}))})"
               if mixed else "")
            + f": its test UA {100 * ua:.1f}%"
            + (f", {100 * margin:+.1f} points against the baseline "
               f"({100 * b:.1f}%)" if margin is not None else "")
            + (f"; the choice as made in each draw: {100 * c['test_ua']:.1f}%"
               if mixed else "")
            + ".")
    recs.append({"shots": k, "arm": arm, "ua_mean": ua,
                 "procedure_ua": c["test_ua"],
                 "margin_over_baseline": margin,
                 "margin_over_matched_baseline":
                     c["margin_over_matched_baseline"], "text": text})
  return recs


def source_overlap(run, test: np.ndarray, meta: dict) -> list[str] | None:
  """The curve's test clips the source run (train.init_from) trained or
  validated on, by corpus and file (its path within the corpus: bare names
  repeat across speakers) or by corpus and speaker, from its splits.csv;
  None when the run has no splits.csv (not checked)."""
  path = rundir.path(run.workdir, rundir.SPLITS)
  if not os.path.exists(path):
    return None
  with open(path, newline="") as f:
    seen = [r for r in csv.DictReader(f)
            if r["split"] in (splits_lib.TRAIN, splits_lib.VAL)]
  files = {(r["corpus"], r["filename"]) for r in seen}
  voices = {(r["corpus"], r["speaker"]) for r in seen if r["speaker"]}
  hits = set()
  for i in np.flatnonzero(test):
    corpus, name = str(meta["corpus"][i]), str(meta["filename"][i])
    voice = (corpus, str(meta["speaker"][i]))
    if (corpus, name) in files:
      hits.add(f"file {name}")
    elif voice in voices:
      hits.add(f"speaker {voice[1]} of {voice[0]}")
  return sorted(hits)


def _final_loss(cdir: str) -> float | None:
  """The last logged training loss of a CNN cell (metrics.jsonl)."""
  p = os.path.join(cdir, "metrics.jsonl")
  if not os.path.exists(p):
    return None
  last = None
  with open(p) as f:
    for line in f:
      rec = json.loads(line)
      if "train_loss" in rec:
        last = rec["train_loss"]
  return last


def _arm_list(lc) -> list[str]:
  # A tuple, or one string 'baseline,probe' (as a command line passes it).
  wanted = [a.strip() for x in lc.arms for a in str(x).split(",") if a.strip()]
  unknown = sorted(set(wanted) - set(ARMS))
  if unknown or not wanted:
    raise config_lib.ConfigError(f"config learning_curve.arms={lc.arms!r}: "
                                 f"expected some of {ARMS}")
  if "baseline" not in wanted:  # the bar every arm is measured against
    logging.info("learning curve: the baseline arms run whatever "
                 "learning_curve.arms says (%s)", lc.arms)
  return wanted


def run(config, workdir: str, *, overwrite: bool = False) -> dict:
  config_lib.validate(config)
  lc = config.learning_curve
  shots = [int(k) for k in lc.shots]
  if not shots or any(k == 0 or k < -1 for k in shots):
    raise config_lib.ConfigError(f"config learning_curve.shots={lc.shots!r}: "
                                 "clips per class, positive or -1 (all)")
  wanted = _arm_list(lc)
  shots = sorted(set(shots), key=lambda k: (k < 0, k))
  os.makedirs(workdir, exist_ok=True)
  waveforms, labels, classes, meta = dataset_io.load_clips(config.data)
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
  cells = draws(labels, pool, shots, lc.repeats, config.data.split_seed,
                classes)
  arms = wanted
  skipped = {}
  run = None
  overlap = []  # None: the source run has no splits.csv to check
  if config.train.init_from:
    from fser_jax.runs.trained import TrainedRun
    run = TrainedRun(os.path.expanduser(config.train.init_from))
    overlap = source_overlap(run, test, meta)
    if overlap is None:
      logging.warning("learning curve: %s has no splits.csv; whether it "
                      "trained on the test speaker is not checked",
                      config.train.init_from)
    if overlap and not lc.allow_source_overlap:
      raise DataError(
          f"learning curve: the source run {config.train.init_from} trained "
          f"on the test set's {', '.join(overlap[:3])}"
          + (f" and {len(overlap) - 3} more" if len(overlap) > 3 else "")
          + ": its scores on them would not say what a new voice gets; use "
          "a run that never saw them, another data.fold, or "
          "--config.learning_curve.allow_source_overlap=True (said in the "
          "report)")
  else:
    for a in NEEDS_RUN:
      if a in arms or a == "zero_shot":
        skipped[a] = "no train.init_from (the run to start from)"
    arms = [a for a in arms if a not in NEEDS_RUN]
  speakers = np.asarray(meta["speaker"], object)
  has_speakers = len(set(speakers.tolist()) - {""}) >= 2
  if not has_speakers:
    skipped["baseline_speaker"] = ("the clips have no speakers: no per-speaker "
                                   "statistics")
  out = {"dataset": config.data.dataset, "test_clips": int(test.sum()),
         "test_set": test_how, "classes": list(classes),
         "train_speakers": len(set(speakers[pool].tolist()) - {""}),
         "steps_per_cell": {("all" if k < 0 else str(k)): cell_steps(
             lc, int(cells[(k, 0)].size),
             min(lc.batch_size, int(cells[(k, 0)].size))) for k in shots},
         "repeats": int(lc.repeats), "choice_rule": lc.choice_rule,
         "init_from": config.train.init_from or None,
         "source_overlap": overlap,
         "search_from": int(lc.search_from),
         "choose_from": int(lc.choose_from),
         "freeze": config.train.freeze, "arms": {}, "skipped": skipped}
  # What each arm reads of the test speaker beyond its labels: the
  # per-speaker family, and runs normalised per speaker, standardise the
  # test speaker with its own unlabelled clips (transductive).
  trans = {a: "standardised per speaker with each speaker's own unlabelled "
              "clips, the test speaker's included"
           for a in ROWS if linear_arms.is_speaker_arm(a)}
  if run is not None and run.normalize != "global":
    trans["zero_shot"] = (f"the source run normalises per {run.normalize}: "
                          "the test speaker's inputs are standardised with "
                          "its own clips")
  if config.features.normalize != "global":
    for a in CNN_ARMS:
      trans[a] = (f"features.normalize='{config.features.normalize}': the "
                  "test speaker's inputs are standardised with its own clips")
  out["transductive"] = trans
  if run is not None:
    try:
      out["arms"]["zero_shot"] = zero_shot(config, run, waveforms, labels,
                                           classes, test, meta)
    except DataError as e:  # no mappable class
      skipped["zero_shot"] = str(e)
  out["arms"].setdefault("zero_shot", None)

  # --- the linear arms and the choice: seconds per cell ----------------------
  encoder = None
  if config.encoder.path:
    from fser_jax import encoders
    encoder = encoders.from_config(config.encoder)
    out["encoder"] = {"family": encoder.family, "path": encoder.path,
                      "layers": encoder.num_layers,
                      "d_model": encoder.config.d_model}
  feats = linear_arms.curve_features(config, waveforms, meta, workdir,
                                    run if "probe" in arms else None,
                                    egemaps=bool(lc.egemaps), encoder=encoder)
  names = None
  if "encoder" in feats:  # the states the head chooses among
    from fser_jax.encoders import pooling
    feats = dict(feats)
    feats["encoder"], names = pooling.candidates(
        feats["encoder"], config.encoder.layers, config.encoder.pooling)
    out["encoder"]["candidates"] = names
  blocks = linear_arms.linear_blocks(feats,
                                     speakers if has_speakers else None)
  scored_rows = LINEAR + ("reference_speaker",)
  linear_rows = {a: [] for a in scored_rows}
  out["choice"] = []
  spk = speakers if has_speakers else None
  for k in shots:
    per_cell, per_draw, nested = [], [], []
    search = k < 0 or k >= int(lc.search_from)
    default_only = 0 < k < int(lc.choose_from)
    for r in range(lc.repeats):
      idx = cells[(k, r)]
      cell, how = linear_arms.linear_cell(blocks, labels, idx, test,
                                          len(classes), spk, names, search)
      per_cell.append(cell)
      per_draw.append(linear_arms.choose(cell, labels[idx], lc.choice_rule,
                                         default_only))
      # No choice made: the default arm's own CV is already nested (nothing
      # was selected on its folds; test_learning_curve checks they agree).
      nested.append(cell[per_draw[-1][0]]["cv_ua"] if default_only else
                    linear_arms.nested_cv_ua(
                        blocks, labels, idx, len(classes), spk, names, search,
                        lc.choice_rule))
    logging.info("learning curve k=%s: chosen %s", "all" if k < 0 else k,
                 ", ".join(a for a, _ in per_draw))
    for a in scored_rows:
      if a in per_cell[0]:
        linear_rows[a].append(_row(
            k, int(cells[(k, 0)].size), [c[a]["report"] for c in per_cell],
            [c[a]["cv_ua"] for c in per_cell]))
        linear_rows[a][-1]["hyper"] = [c[a]["hyper"] for c in per_cell]
        linear_rows[a][-1]["settings_tried"] = per_cell[0][a]["tried"]
    settings = ("settings searched by cross-validation" if search else
                "fixed settings (C, feature set, layer, weight: "
                f"k < learning_curve.search_from={lc.search_from})")
    if default_only:
      settings += ("; the default arm, no choice (k < "
                   f"learning_curve.choose_from={lc.choose_from})")
    out["choice"].append(linear_arms.summarise_choice(
        k, per_draw, per_cell, {a: v for a, v in linear_rows.items() if v},
        f"cross-validation on each draw's labelled clips ({how}); "
        f"{settings}; rule '{lc.choice_rule}', ties to the per-speaker "
        "family when it is there; the test set unused", nested))
  out["arms"].update({a: v for a, v in linear_rows.items() if v})

  # --- the CNN arms: trained cells, reported, never chosen -------------------
  trained = [a for a in CNN_ARMS if a in arms]
  total = len(trained) * len(cells)
  done = 0
  for arm in trained:
    rows = []
    for k in shots:
      reps, losses = [], []
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
        losses.append(_final_loss(cdir))
      row = _row(k, int(cells[(k, 0)].size), reps)
      bar = NOT_LEARNED * np.log(len(classes))
      row["final_loss"] = losses
      row["not_learned"] = int(sum(v is not None and v > bar for v in losses))
      rows.append(row)
    out["arms"][arm] = rows
  for arm in ROWS:
    out["arms"].setdefault(arm, [])
  out["recommendation"] = recommend(out)
  with open(os.path.join(workdir, "learning_curve.json"), "w") as f:
    json.dump(out, f, indent=2)
  md = curve_report.to_markdown(out, ROWS, CNN_ARMS, NOT_LEARNED)
  with open(os.path.join(workdir, "learning_curve.md"), "w") as f:
    f.write(md)
  plots.learning_curve(out, os.path.join(workdir, "learning_curve.png"))
  print(md)
  return out
