"""A linear head on a frozen pretrained encoder, as a run like any other.

  python launch.py --config configs/encoder_head.py:/data/manifest.csv \
      --config.encoder.path=~/models/wavlm-base-plus --workdir runs/head

The clips are split as any run's (data.protocol), windowed as predict
windows them (predict.window_seconds / hop_seconds), and each window's
states pooled per layer (fser_jax/encoders, kept in WORKDIR/encoder_states).
On the training windows: the layer and the regularisation C by
cross-validation that holds out whole speakers (with fewer than two
training speakers, whole clips; out-of-fold log loss), then
an L2 logistic regression (fser_jax.evaluation.linear's). Its scaler and weights are
folded into one linear map and saved (encoder_head.npz, with the encoder's
weights digest); familiarity (training windows) and calibration
(validation windows) are fitted and the test clips scored exactly as for a
network's run, through `inference.EncoderHeadRun`, which `--mode evaluate`,
`predict` and `robustness` load from the same folder. The report carries
the baseline (per-clip statistics, normalised as the head's inputs are)
beside it.
"""

from __future__ import annotations

import os
import types

import numpy as np
from absl import logging

from fser_jax.config import ConfigError
from fser_jax.data import dataset_io
from fser_jax.data import input_pipeline
from fser_jax.evaluation import linear
from fser_jax.frontend import normalisation
from fser_jax.frontend import statistics
from fser_jax.runs import report
from fser_jax.runs import trained as inference
from fser_jax.train import rundir


def _fit(x, y, c: float, classes) -> tuple[np.ndarray, np.ndarray, dict]:
  """(weight [D, K], bias [K], scaler) of baseline's regression on x,
  folded into one linear map of the raw features: logits = x W + b give
  the pipeline's probabilities (classes it never saw: logit -27.6)."""
  pipe = linear.logistic(c, x.shape).fit(x, y)  # noqa: SLF001
  steps = dict(pipe.steps)
  scaler, lr = steps["standardscaler"], steps["logisticregression"]
  proj = np.eye(x.shape[1])
  offset = np.zeros(x.shape[1])
  if "pca" in steps:
    proj = steps["pca"].components_.T
    offset = steps["pca"].mean_
  coef, icpt = lr.coef_, lr.intercept_
  if coef.shape[0] == 1:  # binary: sklearn keeps one row
    coef = np.concatenate([np.zeros_like(coef), coef])
    icpt = np.concatenate([[0.0], icpt])
  k = len(classes)
  w = np.zeros((x.shape[1], k))
  b = np.full(k, np.log(1e-12))
  cols = np.searchsorted(classes, lr.classes_)
  m = proj @ coef.T  # standardised features -> logits
  w[:, cols] = m / scaler.scale_[:, None]
  b[cols] = icpt - (scaler.mean_ / scaler.scale_) @ m - offset @ m
  return w, b, {"mean": scaler.mean_, "scale": scaler.scale_}


def fold_groups(speakers, clips) -> tuple[np.ndarray, str]:
  """(each training window's fold group, what it is): its speaker where
  the windows name two or more speakers, else its clip, so that a clip's
  windows never straddle a fold."""
  speakers = np.asarray(speakers, object)
  if len(set(speakers.tolist()) - {""}) >= 2:
    return speakers, "speakers"
  return np.array([f"clip:{c}" for c in clips], object), "clips"


def choose(blocks: np.ndarray, y, groups, classes, unit: str = "speakers"
           ) -> dict:
  """The candidate block (a layer, or their mix), then C, by out-of-fold
  log loss with whole speakers (else clips) held out: {'layer' (index into
  the candidates), 'C', 'how', 'cv_loss' per candidate}."""
  folds, how = linear.cv_folds(y, groups, unit=unit)
  layer, hyper, losses = linear.search_block(blocks, y, folds, classes)
  return {"layer": layer, "C": hyper["C"], "how": how, "cv_loss": losses}


def run(config, workdir: str, *, overwrite: bool = False) -> dict:
  """Trains the head (the run in WORKDIR, if finished, is read back) and
  writes the run's files and report."""
  if not config.encoder.path:
    raise ConfigError("an encoder head needs --config.encoder.path=DIR (a "
                      "checkpoint folder, docs/encoders.md)")
  rundir.prepare(config, workdir, overwrite)
  if not overwrite and os.path.exists(rundir.path(workdir, rundir.REPORT_JSON)):
    logging.info("Encoder head: %s holds this config's finished run; its "
                 "report is read back, not trained again (--overwrite to "
                 "train anew).", workdir)
    return rundir.read_report(workdir)
  from fser_jax import encoders
  from fser_jax.encoders import extract
  d = config.data
  wavs, labels, classes, meta = dataset_io.load_clips(d)
  split = input_pipeline.assign_split(d, labels, meta)
  input_pipeline.check_split(d, split, labels, meta)
  mode = normalisation.normalize_mode(config.features)
  enc = encoders.from_config(config.encoder)
  store = extract.Store(rundir.path(workdir, "encoder_states"), enc)
  rundir.write_splits_csv(
      rundir.path(workdir, rundir.SPLITS),
      types.SimpleNamespace(meta=meta, classes=classes, labels=labels,
                            split=split))
  if int(d.sample_rate) != enc.sample_rate:
    import librosa
    wavs = [librosa.resample(w, orig_sr=int(d.sample_rate),
                             target_sr=enc.sample_rate) for w in wavs]

  # Every window's states of every layer, once (the store).
  owner, flat = [], []
  for i, w in enumerate(wavs):
    for _, x in inference.clip_windows(config.predict, enc.sample_rate, w):
      owner.append(i)
      flat.append(x)
  owner = np.asarray(owner)
  logging.info("Encoder head: %s states of %d windows of %d clips (%s).",
               enc.family, len(flat), len(wavs), enc.path)
  keys, stats = extract.extract(enc, flat, store,
                                batch=int(config.encoder.batch_size),
                                chunk=int(config.encoder.chunk))
  states = store.read(keys)
  logging.info("Encoder head: %d windows computed, %d read from %s.",
               stats["computed"], stats["reused"], store.folder)

  # Normalisation as the run's mode says: per speaker (or corpus) with the
  # group's own training windows (as `window_outputs` standardises a
  # split's clips), else the head's own scaler (identity here).
  tr = split[owner] == "train"
  d_feat = states.shape[-1]
  states = states[tr]
  if mode != "global":
    groups = normalisation.norm_groups(meta, mode)[owner[tr]]
    flat_states = states.reshape(len(states), -1)
    states = normalisation.standardise_clips(
        flat_states, normalisation.group_norms(flat_states, groups)
    ).reshape(states.shape)
  rundir.write_normalisation(workdir, ([0.0] * d_feat, [1.0] * d_feat),
                             classes, mode)

  y_w = labels[owner]
  cls = np.arange(len(classes))
  cv_groups, unit = fold_groups(
      np.asarray(meta["speaker"], object)[owner[tr]], owner[tr])
  from fser_jax.encoders import pooling
  blocks, names = pooling.candidates(states, config.encoder.layers,
                                     config.encoder.pooling)
  pick = choose(blocks, y_w[tr], cv_groups, cls, unit)
  pick["name"] = names[pick["layer"]]
  logging.info("Encoder head: state %s of %s, C=%g (%s).", pick["name"],
               names, pick["C"], pick["how"])
  w, b, scaler = _fit(blocks[:, pick["layer"]], y_w[tr], pick["C"], cls)
  np.savez(rundir.path(workdir, rundir.HEAD), weight=w.astype(np.float32),
           bias=b.astype(np.float32), layer=np.int64(pick["layer"]),
           layer_name=np.asarray(str(pick["name"])),
           scaler_mean=scaler["mean"].astype(np.float32),
           scaler_scale=scaler["scale"].astype(np.float32),
           encoder_digest=np.asarray(enc.digest),
           encoder_family=np.asarray(enc.family))

  # From here as any run's report: the one way from audio (the run loaded
  # from its folder), familiarity on training windows, calibration on
  # validation windows, test scored.
  run = inference.EncoderHeadRun(workdir, trust=False, store=store)

  def windows(s):
    idx = np.flatnonzero(split == s)
    sub = {k: np.asarray(v)[idx] for k, v in meta.items()}
    return run.window_outputs([wavs[i] for i in idx],
                              groups=run.groups_for(sub, idx.size)), idx

  splits = ("train", "validation", "test")
  made = {s: windows(s) for s in splits}
  meta_te = {k: np.asarray(v)[made["test"][1]] for k, v in meta.items()}
  a = report.assess(run, workdir, {s: made[s][0] for s in splits},
                    {s: labels[made[s][1]] for s in splits}, classes, meta_te)
  rep = a.report
  # The baseline on the same split, normalised as the head's inputs are.
  data = types.SimpleNamespace(
      clip_stats=statistics.of_clips(wavs, enc.sample_rate), split=split,
      labels=labels, meta=meta, classes=classes)
  rep.update({
      "dataset": d.dataset, "protocol": d.protocol, "fold": d.fold,
      "best_step": 0,
      "head": {"encoder": {"family": enc.family, "path": enc.path,
                           "digest": enc.digest, "layers": enc.num_layers},
               "layer": pick["name"], "C": pick["C"], "cv": pick["how"],
               "candidates": names,
               "cv_log_loss_per_candidate": [round(v, 4)
                                             for v in pick["cv_loss"]],
               "windows_train": int(tr.sum()), "normalisation": mode},
      "init_from": None,
      "baseline": report.baseline_of(data, mode),
  })
  h = rep["head"]
  about = (f"A linear head on the frozen {enc.family} encoder at "
           f"`{enc.path}` (weights sha1 {enc.digest}): state {h['layer']} "
           f"of {h['candidates']} (0: the transformer's input; mix: their "
           f"average), pooled {config.encoder.pooling}, C = {h['C']},"
           f" chosen by {h['cv']} on {h['windows_train']} training windows; "
           f"inputs normalised: {mode}. Dataset `{d.dataset}`, protocol "
           f"`{d.protocol}` fold {d.fold}; train {rep['n_train']}, "
           f"validation {rep['n_validation']} clips.")
  report.write(workdir, a, about, classes=classes)
  logging.info("Encoder head, test (%s, %d clips): accuracy %.4f, UA %.4f; "
               "baseline UA %s. Report: %s", d.protocol, rep["n_test"],
               rep["accuracy"], rep["unweighted_accuracy"],
               "-" if not rep.get("baseline") else
               f"{rep['baseline']['unweighted_accuracy']:.4f}",
               rundir.path(workdir, rundir.REPORT_MD))
  return rep
