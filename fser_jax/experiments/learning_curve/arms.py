"""The learning curve's linear arms, and the choice among them.

The features they read, cached per clip's audio (`curve_features`): per-clip
statistics (fser_jax.evaluation.linear), eGeMAPS, a trained run's embedding, a
pretrained encoder's pooled states (fser_jax/encoders, kept in a store).
Their blocks, inductive and standardised per speaker with each speaker's
own clips (`linear_blocks`). One cell of every arm, its hyperparameters by
out-of-fold log loss under cross-validation that holds out whole speakers,
the test clips only scored (`linear_cell`); the arm to use chosen by CV UA
with a one-standard-error rule (`choose`), and summarised per k against the
baseline as informed as it (`summarise_choice`).
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
from absl import logging

from fser_jax.evaluation import linear

from fser_jax.frontend import statistics
from fser_jax.evaluation import metrics as metrics_lib
from fser_jax.errors import DataError


# The linear arms, simplest first: the order a tie within the choice rule's
# margin is broken in (the statistics need nothing; per-speaker statistics
# need each speaker's unlabelled clips; the embedding needs a trained run).
LINEAR = ("baseline", "baseline_speaker", "egemaps", "egemaps_speaker",
          "probe_embedding", "probe_embedding_speaker", "probe",
          "probe_speaker", "encoder", "encoder_speaker", "encoder+baseline",
          "encoder+baseline_speaker")




def at_rate(waveforms, rate: int, target: int):
  if rate == target:
    return list(waveforms)
  import librosa
  return [librosa.resample(w, orig_sr=rate, target_sr=target)
          for w in waveforms]


def _digest(waveforms, rate: int, source: str) -> str:
  """What the cached features depend on: every clip's samples, the rate and
  the source run's checkpoint (and the cache's layout)."""
  h = hashlib.sha1(f"v2|{rate}|{source}|{len(waveforms)}".encode())
  for w in waveforms:
    h.update(np.ascontiguousarray(w, np.float32).tobytes())
  return h.hexdigest()


def encoder_features(enc, waveforms, rate: int, batch: int, workdir: str
                     ) -> np.ndarray:
  """[N, layers + 1, 2 d]: a pretrained encoder's every-layer mean and std
  per clip (fser_jax/encoders), at the encoder's 16 kHz; clips longer than
  its 30 s window pooled over consecutive windows. Kept per clip in
  OUT/encoder_states (fser_jax/encoders/extract.py): a killed curve
  resumes its extraction where it stopped."""
  from fser_jax.encoders import extract
  store = extract.Store(os.path.join(workdir, "encoder_states"), enc)
  wavs = at_rate(waveforms, rate, enc.sample_rate)
  keys, stats = extract.extract(enc, wavs, store, batch=batch)
  logging.info("Learning curve: encoder states of %d clips: %d computed, %d "
               "read from %s.", stats["clips"], stats["computed"],
               stats["reused"], store.folder)
  return store.read(keys)


def curve_features(config, waveforms, meta, workdir: str, run=None,
                  egemaps: bool = False, encoder=None) -> dict:
  """{'stats': [N, F] baseline statistics, with `egemaps` 'egemaps' [N, 88],
  and with RUN 'embedding' (RUN's training normalisation) and
  'embedding_speaker' (RUN's per-speaker normalisation when it was trained
  with one, else the same), with ENCODER 'encoder' [N, layers + 1, 2 d]},
  cached in OUT/features.npz keyed by `_digest` of the audio, the rate, the
  source run and the speakers (the encoder's states per clip in
  OUT/encoder_states): anything changed is recomputed, and the log says
  why."""
  path = os.path.join(workdir, "features.npz")
  source = ("" if run is None else
            f"{os.path.abspath(run.workdir)}@{run.step}:{run.normalize}")
  source += "|egemaps" if egemaps else ""
  # The per-speaker embedding depends on who spoke each clip.
  source += "|speakers:" + hashlib.sha1("\x1f".join(
      str(v) for v in meta["speaker"]).encode()).hexdigest()
  key = _digest(waveforms, config.data.sample_rate, source)
  enc = {}
  if encoder is not None:
    logging.info("Learning curve: %s encoder states of %d clips (%s).",
                 encoder.family, len(waveforms), encoder.path)
    enc["encoder"] = encoder_features(encoder, waveforms,
                                      config.data.sample_rate,
                                      config.encoder.batch_size, workdir)
  if os.path.exists(path):
    cached = np.load(path)
    if "key" in cached.files and str(cached["key"]) == key:
      return {**{k: cached[k] for k in cached.files if k != "key"}, **enc}
    logging.info("Learning curve: %s holds features of other clips, another "
                 "rate, another source run or other speakers; recomputing "
                 "them.", path)
  logging.info("Learning curve: per-clip statistics of %d clips%s.",
               len(waveforms), " and the run's embedding" if run else "")
  out = {"stats": statistics.of_clips(waveforms, config.data.sample_rate)}
  if egemaps:
    logging.info("Learning curve: eGeMAPS of %d clips (openSMILE).",
                 len(waveforms))
    out["egemaps"] = statistics.egemaps(waveforms, config.data.sample_rate)
  if run is not None:
    wavs = at_rate(waveforms, config.data.sample_rate, run.sample_rate)
    out["embedding"] = run.classify(wavs, groups=None).embedding
    groups = run.groups_for(meta, len(wavs))
    out["embedding_speaker"] = (out["embedding"] if groups is None else
                                run.classify(wavs, groups=groups).embedding)
  np.savez(path, key=np.asarray(key), **out)
  return {**out, **enc}


def linear_blocks(feats: dict, speakers) -> dict:
  """The linear arms' feature blocks: {'stats', 'embedding'} as computed
  (inductive), and with speakers their '_speaker' twins standardised per
  speaker with each speaker's own clips (transductive, labels unused)."""
  out = {k: feats[k] for k in ("stats", "egemaps", "embedding", "encoder")
         if k in feats}
  if speakers is not None:
    for k in ("stats", "egemaps", "encoder"):
      if k in feats:
        x = feats[k]
        out[k + "_speaker"] = linear.speaker_standardise(
            x.reshape(len(x), -1), speakers).reshape(x.shape)
    if "embedding_speaker" in feats:
      out["embedding_speaker"] = linear.speaker_standardise(
          feats["embedding_speaker"], speakers)
  return out


def _ua(y, pred, num_classes: int) -> float:
  return metrics_lib.summary(y, pred, num_classes)["unweighted_accuracy"]


def is_speaker_arm(arm: str) -> bool:
  """Whether `arm` standardises every speaker with that speaker's own
  unlabelled clips, the test speaker's included (transductive)."""
  return arm.endswith("_speaker")


def linear_cell(blocks: dict, labels, idx, test, num_classes: int,
                speakers=None, encoder_names=None, search: bool = True
                ) -> tuple[dict, str]:
  """Every linear arm on one cell: ({arm: {'cv_ua', 'cv_correct' [n_train
  bool], 'cv_covered' [n_train bool: the clips a fold scored] (None without
  folds), 'report' (test), 'pred' (test predictions), 'hyper', 'tried'
  (settings compared by the cross-validation)}}, how the folds were made).

  `search`: the settings (feature set, C, an encoder's layer, a fusion
  weight) chosen by out-of-fold log loss on the cell's clips; else the
  fixed ones (fser_jax.evaluation.linear.fixed; an encoder's layer mix).
  `test` (a mask over every clip) is only scored. Under the speaker
  family (blocks with speakers), `reference_speaker` is added: the fixed
  per-speaker baseline every choice is held against."""
  y = labels[idx]
  classes = np.unique(y)
  if classes.size < 2:
    raise DataError("learning curve: a cell holds clips of one class only; "
                    "use larger learning_curve.shots")
  groups = None if speakers is None else np.asarray(speakers, object)[idx]
  folds, how = linear.cv_folds(y, groups)
  cov = linear.covered(folds, len(y)) if folds else None
  yt = labels[test]
  out = {}

  def arm(name, oof, logp_test, hyper, tried):
    pred = classes[np.argmax(logp_test, 1)]
    s = metrics_lib.summary(yt, pred, num_classes)
    cv_pred = None if oof is None else classes[np.argmax(
        np.nan_to_num(oof, nan=-np.inf), 1)]
    out[name] = {"cv_ua": None if oof is None else _ua(
                     y[cov], cv_pred[cov], num_classes),
                 "cv_correct": None if oof is None else cv_pred == y,
                 "cv_covered": cov,
                 "report": {k: s[k] for k in ("accuracy", "macro_f1",
                                              "unweighted_accuracy")},
                 "pred": pred, "hyper": hyper, "tried": int(tried)}

  def fit(x, feature_set="full"):
    h = (linear.search(x[idx], y, folds, classes,
                       tuple(linear.FEATURE_SETS) if feature_set != "full"
                       else ("full",)) if search else
         linear.fixed(x[idx], y, folds, classes, feature_set))
    return h, linear.fit_log_proba(x[idx], y, x[test], h, classes)

  def fused(name, hs, lp_s, h2, lp_2, hyper):
    """The statistics' regression plus w x another block's: w in
    FUSION_WEIGHTS by out-of-fold log loss under `search`, else 1."""
    w, oof = 1.0, None
    if folds and search:
      w = min(linear.FUSION_WEIGHTS, key=lambda v: linear.log_loss(
          hs["oof"] + v * h2["oof"], y, classes))
    if folds:
      oof = hs["oof"] + w * h2["oof"]
    arm(name, oof, lp_s + w * lp_2,
        {"features": hs["set"], "C": hs["C"], **hyper, "weight": w},
        hs["tried"] * h2["tried"] * (len(linear.FUSION_WEIGHTS) if search
                                     else 1))

  if search and "stats_speaker" in blocks:  # the fixed bar
    x = blocks["stats_speaker"]
    h = linear.fixed(x[idx], y, folds, classes, linear.FIXED_FEATURES)
    arm("reference_speaker", h["oof"],
        linear.fit_log_proba(x[idx], y, x[test], h, classes),
        {"features": h["set"], "C": h["C"]}, 1)
  for suffix in ("", "_speaker"):
    if "stats" + suffix not in blocks:
      continue
    hs, lp_s = fit(blocks["stats" + suffix], linear.FIXED_FEATURES)
    arm("baseline" + suffix, hs["oof"], lp_s,
        {"features": hs["set"], "C": hs["C"]}, hs["tried"])
    g = blocks.get("egemaps" + suffix)
    if g is not None:
      hg, lp_g = fit(g)
      arm("egemaps" + suffix, hg["oof"], lp_g, {"C": hg["C"]}, hg["tried"])
    enc = blocks.get("encoder" + suffix)
    if enc is not None:  # the layer, then C, by out-of-fold log loss
      names = list(range(enc.shape[1])) if encoder_names is None \
          else list(encoder_names)
      if search:
        layer, hl, _ = linear.search_block(enc[idx], y, folds, classes)
        hl = {**hl, "tried": hl["tried"] * enc.shape[1]}
      else:  # every layer alike, or the middle one
        layer = names.index("mix") if "mix" in names else len(names) // 2
        hl = linear.fixed(enc[idx, layer], y, folds, classes)
      x_e = enc[:, layer]
      lp_l = linear.fit_log_proba(x_e[idx], y, x_e[test], hl, classes)
      arm("encoder" + suffix, hl["oof"], lp_l,
          {"layer": names[layer], "C": hl["C"]}, hl["tried"])
      fused("encoder+baseline" + suffix, hs, lp_s, hl, lp_l,
            {"layer": names[layer], "C_encoder": hl["C"]})
    e = blocks.get("embedding" + suffix)
    if e is None:
      continue
    he, lp_e = fit(e)
    arm("probe_embedding" + suffix, he["oof"], lp_e, {"C": he["C"]},
        he["tried"])
    fused("probe" + suffix, hs, lp_s, he, lp_e, {"C_embedding": he["C"]})
  if not search and "baseline_speaker" in out:
    # Nothing searched: baseline_speaker is the fixed reference itself.
    out["reference_speaker"] = dict(out["baseline_speaker"])
  return out, how


def _se_of_difference(a, b, y) -> float:
  """Standard error of UA(a) - UA(b) from per-clip correctness (paired),
  each class weighted as UA weights it."""
  d = a.astype(float) - b.astype(float)
  cls = np.unique(y)
  var = sum(np.var(d[y == c], ddof=1) / (y == c).sum()
            for c in cls if (y == c).sum() > 1)
  return float(np.sqrt(var)) / cls.size


def candidates(cell: dict, speaker_first: bool = True) -> list[str]:
  """The arms a choice is made among, in the order a tie is broken: when
  the cell has the per-speaker family (every speaker's unlabelled clips
  are there to standardise with), that family first, `baseline_speaker`
  leading, then the inductive arms; else (or without `speaker_first`, the
  order before it) LINEAR's order. Reference rows are never chosen."""
  arms = [a for a in LINEAR if a in cell]
  if not speaker_first:
    return arms
  return sorted(arms, key=lambda a: (not is_speaker_arm(a), LINEAR.index(a)))


def choose(cell: dict, y, rule: str = "one_se", default_only: bool = False,
           speaker_first: bool = True) -> tuple[str, str]:
  """(arm, why) for one draw, from the cross-validation alone: the best
  cross-validated UA, or under 'one_se' the first arm of `candidates`
  within one standard error of it. Without folds, or with `default_only`
  (fewer clips than learning_curve.choose_from), the first candidate: the
  default arm (`baseline_speaker` where speakers are known).
  `speaker_first`: see `candidates`."""
  arms = candidates(cell, speaker_first)
  if default_only:
    return arms[0], ("the default arm: too few clips per class to choose "
                     "an arm on (learning_curve.choose_from)")
  if cell[arms[0]]["cv_ua"] is None:
    return arms[0], "no cross-validation possible: the default arm"
  best = max(arms, key=lambda a: (cell[a]["cv_ua"], -arms.index(a)))
  if rule == "best":
    return best, "best cross-validated UA"
  cov = cell[arms[0]].get("cv_covered")
  if cov is None:
    cov = np.ones(len(y), bool)
  for a in arms:
    se = _se_of_difference(cell[best]["cv_correct"][cov],
                           cell[a]["cv_correct"][cov], np.asarray(y)[cov])
    if cell[a]["cv_ua"] >= cell[best]["cv_ua"] - se:
      return a, ("best cross-validated UA" if a == best else
                 f"within one standard error of `{best}`")
  return best, "best cross-validated UA"


def nested_cv_ua(blocks: dict, labels, idx, num_classes: int, speakers=None,
                 encoder_names=None, search: bool = True,
                 rule: str = "one_se", default_only: bool = False
                 ) -> float | None:
  """The whole procedure's cross-validated UA, nested: on each fold of the
  cell's clips (whole speakers held out), every arm and the choice are
  made again from the other clips alone, and the arm chosen there scores
  the held-out clips. Honest where an arm's own `cv_ua` is not: that one
  is the best of the settings and arms tried on the same folds. None
  without folds."""
  # Held-out predictions come back in clip order: idx must be sorted (as
  # curve.draws makes it) for them to line up with idx[va].
  if np.any(np.diff(idx) <= 0):
    raise ValueError("nested_cv_ua: idx must be sorted and unique")
  y = labels[idx]
  groups = None if speakers is None else np.asarray(speakers, object)[idx]
  folds, _ = linear.cv_folds(y, groups)
  if not folds:
    return None
  pred = np.full(len(y), -1)
  for tr, va in folds:
    held = np.zeros(len(labels), bool)
    held[idx[va]] = True
    try:
      cell, _ = linear_cell(blocks, labels, idx[tr], held, num_classes,
                            speakers, encoder_names, search)
    except DataError:  # the fold's training part holds one class
      continue
    arm, _ = choose(cell, labels[idx[tr]], rule, default_only)
    pred[va] = cell[arm]["pred"]
  ok = pred >= 0
  return _ua(y[ok], pred[ok], num_classes) if ok.any() else None


def sample_sd(v: list) -> float | None:
  """The sample standard deviation over draws (0 for one, None for none)."""
  return float(np.std(v, ddof=1)) if len(v) > 1 else (0.0 if v else None)


def matched_baseline(arm: str) -> str:
  """The baseline with the same information as `arm`."""
  return "baseline_speaker" if arm.endswith("_speaker") else "baseline"


FIXED_POLICIES = ("baseline_speaker", "probe_speaker", "encoder_speaker")


def summarise_choice(k: int, per_draw: list[tuple[str, str]], cells: list,
                     rows: dict, how: str, nested: list) -> dict:
  """The choice at one k over its draws: the arm chosen most often (ties:
  the simpler), the procedure's test UA (the mean over the draws of the arm
  each draw chose) beside its nested cross-validated estimate (`nested`,
  per draw), the fixed policies (always the same arm) and the fixed
  reference, and the best arm in hindsight (by mean test UA, not used for
  the choice)."""
  chosen = [a for a, _ in per_draw]
  arm = max(LINEAR, key=lambda a: (chosen.count(a), -LINEAR.index(a)))
  test = [c[a]["report"]["unweighted_accuracy"] for c, a in zip(cells, chosen)]
  cv_arm = [c[a]["cv_ua"] for c, a in zip(cells, chosen)]
  # The baseline as informed as the chosen arm: per-speaker statistics when
  # the arm uses them.
  matched = [c[matched_baseline(a)]["report"]["unweighted_accuracy"]
             for c, a in zip(cells, chosen)]
  scored = {a: r[-1]["ua_mean"] for a, r in rows.items()
            if r and r[-1]["ua_mean"] is not None and a in LINEAR}
  order = [a for a in rows if a in LINEAR]  # ties go to the simpler arm
  best = max(scored, key=lambda a: (scored[a], -order.index(a)))
  mean = lambda v: None if not v or None in v else float(np.mean(v))
  policies = {a: scored[a] for a in FIXED_POLICIES if a in scored}
  procedure = float(np.mean(test))
  ref = rows.get("reference_speaker")
  out = {"shots": k, "arm": arm, "arms": chosen,
         "why": [w for _, w in per_draw], "how": how,
         "test_ua": procedure, "test_ua_std": sample_sd(test),
         "draws": len(test),
         # The procedure's estimate, nested (the choice made again inside
         # each fold), beside what the chosen arm's own folds said (the
         # best of what was tried on them: optimistic).
         "cv_ua": mean(nested), "cv_ua_per_draw": nested,
         "cv_ua_of_chosen_arm": mean(cv_arm),
         "cv_gap": None if mean(nested) is None else mean(nested) - procedure,
         "arm_test_ua": scored.get(arm),
         "margin_over_matched_baseline": float(np.mean(test) -
                                               np.mean(matched)),
         "fixed_policies": policies,
         "regret_vs_best_fixed_policy": (
             None if not policies else procedure - max(policies.values())),
         "best_in_hindsight": {"arm": best, "ua": scored[best]}}
  if ref and ref[-1]["ua_mean"] is not None:
    out["reference_speaker"] = ref[-1]["ua_mean"]
    out["margin_over_reference"] = procedure - ref[-1]["ua_mean"]
  return out
