"""How much does a trained run lose when the recording's channel changes?

  python launch.py --mode robustness --workdir RUN [--data SOURCE] \
      [--label_map ...] [--output_dir OUT]

Takes RUN's test split (the clips its splits.csv marks `test`) or SOURCE (as
--mode evaluate: a label folder, a CSV manifest or a built TFDS name, with
the same label mapping), puts every clip through each condition of
fser_jax.frontend.wave_augment.CONDITIONS (clean; white noise at 20/10/5/0 dB SNR,
pink at 10; the telephone channel; synthetic rooms of RT60 0.3/0.6/1.0 s;
gain -20/+10 dB with clipping; speed 0.9/1.1; phone + 10 dB noise) and scores
the degraded clips through --mode evaluate's one path (TrainedRun.classify:
the run's front-end, normalisation and windowing).

Deterministic: each clip's noise and room come from a key folded from
`--seed` (default 0) and the clip's index, and each clip is padded to a
length that depends on its own length only, so the same run, data and seed
give the same table whatever the batching. Resumable: each condition's result
is written to OUT/conditions/<name>.json when it is done, and a rerun skips
the conditions already there (for the same run checkpoint, data and seed).

OUT (default RUN/robustness) gets
  robustness.json  {"conditions": [{"name", "ua", "acc", "unfamiliar", ...}]}
  robustness.md    UA and accuracy per condition, the drop against clean, the
                   share of clips the familiarity score flags, and how well
                   that score tells a degraded clip from its clean original
                   (AUROC: 0.5 = not at all)
  robustness.png   UA per condition, clean marked
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from fser_jax.evaluation import metrics as metrics_lib
from fser_jax.data import dataset_io
from fser_jax.frontend import wave_augment
from fser_jax.errors import DataError
from fser_jax.train import rundir
from fser_jax.runs import scoring
from fser_jax.runs import trained as inference
from fser_jax.runs.trained import TrainedRun

PAD_MULTIPLE = 8192  # clips are padded per own length: batching-independent
BATCH = 16  # clips per call (padded; small: the source clips' lengths vary)


def run_test_split(run: TrainedRun):
  """(names, waveforms, labels, meta) of the clips RUN's splits.csv marks
  `test`, read through the run's own data config."""
  if not os.path.exists(rundir.path(run.workdir, rundir.SPLITS)):
    raise DataError(f"{run.workdir}: no splits.csv; pass --data SOURCE to "
                    "score other clips")
  wavs, y, classes, meta = dataset_io.load_clips(run.config.data)
  keep = np.flatnonzero(rundir.split_of(run.workdir, meta["filename"])
                        == "test").tolist()
  if not keep:
    raise DataError(f"{run.workdir}: none of the test clips of splits.csv is "
                    f"in {run.config.data.dataset}; pass --data SOURCE")
  return ([meta["filename"][i] for i in keep], [wavs[i] for i in keep],
          [classes[y[i]] for i in keep],
          {k: meta[k][keep] for k in scoring.META})


def degrade(waveforms: list[np.ndarray], name: str, sample_rate: int,
            seed: int = 0) -> list[np.ndarray]:
  """Every clip under condition `name`, on the device, deterministically."""
  factor = wave_augment.condition_length_factor(name)
  padded = [_bucket(int(np.ceil(w.size * factor))) for w in waveforms]
  out: list[np.ndarray | None] = [None] * len(waveforms)
  base = jax.random.key(seed)
  for n in sorted(set(padded)):
    ids = [i for i, p in enumerate(padded) if p == n]
    for s in range(0, len(ids), BATCH):
      chunk = ids[s:s + BATCH]
      # Batches padded to BATCH rows: one compilation per padded length.
      wav = np.zeros((BATCH, n), np.float32)
      lengths = np.full((BATCH,), n, np.int32)
      for row, i in enumerate(chunk):
        wav[row, :waveforms[i].size] = waveforms[i]
        lengths[row] = waveforms[i].size
      rows = np.arange(BATCH) + len(waveforms)  # padding rows: unused keys
      rows[:len(chunk)] = chunk
      keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(
          jnp.asarray(rows))
      y, new_len = wave_augment.condition(keys, jnp.asarray(wav),
                                          jnp.asarray(lengths), name=name,
                                          sample_rate=sample_rate)
      y, new_len = np.asarray(y), np.asarray(new_len)
      for row, i in enumerate(chunk):
        out[i] = y[row, :new_len[row]]
  return out


def _bucket(n: int) -> int:
  """The padded length of a clip of n samples: PAD_MULTIPLE times 1, 2, 3,
  4, 6, 8, 12, ... (a few compilations, at most 50% padding)."""
  m = -(-n // PAD_MULTIPLE)
  p = 1
  while True:
    for k in (p, 3 * p // 2) if p > 1 else (1,):
      if k >= m:
        return k * PAD_MULTIPLE
    p *= 2


def flag_auroc(clean_d: np.ndarray, degraded_d: np.ndarray) -> float | None:
  """How well the familiarity distance tells degraded clips from their
  clean originals (AUROC; 0.5 for identical distances)."""
  from sklearn.metrics import roc_auc_score
  if clean_d is None or degraded_d is None:
    return None
  y = np.r_[np.zeros(len(clean_d)), np.ones(len(degraded_d))]
  return float(roc_auc_score(y, np.r_[clean_d, degraded_d]))


def score_condition(run: TrainedRun, name: str, wavs, labels, meta, *,
                    label_map=None, seed: int = 0) -> tuple[dict, np.ndarray]:
  """(the condition's row, per-clip familiarity distances or None)."""
  degraded = degrade(wavs, name, run.sample_rate, seed)
  rep, rows = scoring.evaluate(run, degraded, labels, meta,
                                    label_map=label_map)
  dist = (np.array([r["distance"] for r in rows]) if "distance" in rows[0]
          else None)
  fam = rep.get("familiarity") or {}
  row = {"name": name, "ua": rep["unweighted_accuracy"],
         "acc": rep["accuracy"], "macro_f1": rep["macro_f1"],
         "unfamiliar": fam.get("all_clips_unfamiliar_fraction"),
         "accuracy_familiar": fam.get("accuracy_familiar"),
         "accuracy_unfamiliar": fam.get("accuracy_unfamiliar"),
         "n_clips": rep["n_mapped"]}
  return row, dist


def run(config, workdir: str, *, data: str = "", output_dir: str = "",
        label_map=None, data_dir: str = "", seed: int = 0, columns: str = "",
        conditions=None) -> dict:
  """The trained run in `workdir` under each channel condition (its test
  clips, or `data`'s); JSON, Markdown and a plot in `output_dir`.
  `config` is None: this mode reads the trained run's own config from
  `workdir` (every mode's entry point is `run(config, workdir, ...)`)."""
  conditions = list(conditions or wave_augment.CONDITIONS)
  if "clean" not in conditions:
    conditions.insert(0, "clean")
  unknown = [c for c in conditions if c not in wave_augment.CONDITIONS]
  if unknown:
    raise DataError(f"--conditions: unknown {', '.join(unknown)}; known: "
                    f"{', '.join(wave_augment.CONDITIONS)}")
  run = inference.load_run(workdir)
  out_dir = output_dir or os.path.join(workdir, "robustness")
  cond_dir = os.path.join(out_dir, "conditions")
  os.makedirs(cond_dir, exist_ok=True)
  if data:
    names, wavs, labels, meta, problems = scoring.load_labelled(
        data, run, data_dir, columns)
    if problems:
      logging.warning("Skipped %d file(s):\n  %s", len(problems),
                      "\n  ".join(problems))
  else:
    names, wavs, labels, meta = run_test_split(run)
  if not wavs:
    raise DataError("no clips to score")
  ident = {"run": os.path.abspath(workdir), "checkpoint_step": run.step,
           "data": data or "test split", "n_clips": len(wavs), "seed": seed,
           "label_map": label_map or ""}
  rows, dists = {}, {}
  for i, name in enumerate(conditions):
    path = os.path.join(cond_dir, f"{name}.json")
    if os.path.exists(path):
      with open(path) as f:
        saved = json.load(f)
      if saved.get("ident") == ident:
        rows[name] = saved["row"]
        dists[name] = (None if saved.get("distance") is None
                       else np.asarray(saved["distance"]))
        logging.info("[%d/%d] %s: done before (UA %.3f).", i + 1,
                     len(conditions), name, rows[name]["ua"])
        continue
    row, dist = score_condition(run, name, wavs, labels, meta,
                                label_map=label_map, seed=seed)
    rows[name], dists[name] = row, dist
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump({"ident": ident, "row": row,
                 "distance": None if dist is None else dist.tolist()}, f)
    os.replace(tmp, path)  # a kill never leaves half a file
    logging.info("[%d/%d] %s: UA %.3f, accuracy %.3f, unfamiliar %s.", i + 1,
                 len(conditions), name, row["ua"], row["acc"],
                 "-" if row["unfamiliar"] is None
                 else f"{100 * row['unfamiliar']:.0f}%")
  clean = rows["clean"]
  table = []
  for name in conditions:
    r = dict(rows[name])
    r["drop_ua"] = clean["ua"] - r["ua"]
    r["drop_acc"] = clean["acc"] - r["acc"]
    r["flag_auroc"] = (None if name == "clean" else
                       flag_auroc(dists["clean"], dists[name]))
    table.append(r)
  result = {**ident, "conditions": table}
  with open(os.path.join(out_dir, "robustness.json"), "w") as f:
    json.dump(result, f, indent=2)
  with open(os.path.join(out_dir, "robustness.md"), "w") as f:
    f.write(to_markdown(result))
  plot(result, os.path.join(out_dir, "robustness.png"))
  logging.info("Robustness of %s: clean UA %.3f; worst %s. Report: %s",
               workdir, clean["ua"],
               min(table, key=lambda r: r["ua"])["name"],
               os.path.join(out_dir, "robustness.md"))
  return result


def to_markdown(result: dict) -> str:
  lines = [f"# Robustness of `{result['run']}` (checkpoint step "
           f"{result['checkpoint_step']})", "",
           f"{result['n_clips']} clips ({result['data']}), seed "
           f"{result['seed']}. Drop: points of UA lost against clean. "
           "Unfamiliar: share of clips the run's familiarity score flags. "
           "Flag AUROC: how well that score tells the degraded clips from "
           "their clean originals (0.5: not at all).", "",
           "| condition | UA % | drop | accuracy % | unfamiliar % | "
           "flag AUROC |", "|---|---|---|---|---|---|"]
  for r in result["conditions"]:
    auc = "-" if r["flag_auroc"] is None else f"{r['flag_auroc']:.2f}"
    lines.append(f"| {r['name']} | {metrics_lib.pct(r['ua'], 1)} | "
                 f"{100 * r['drop_ua']:+.1f} | {metrics_lib.pct(r['acc'], 1)} | "
                 f"{metrics_lib.pct(r['unfamiliar'], 1)} | {auc} |")
  return "\n".join(lines) + "\n"


def plot(result: dict, path: str) -> None:
  plot_many([result], [os.path.basename(result["run"].rstrip("/"))], path)


def plot_many(results: list[dict], labels: list[str], path: str) -> None:
  """UA per condition of one or more runs, side by side (the README's
  picture: python -c 'from fser_jax.experiments import robustness as r; ...')."""
  from fser_jax.evaluation import plots  # noqa: F401  (sets the Agg backend)
  import matplotlib.pyplot as plt
  names = [r["name"] for r in results[0]["conditions"]]
  width = 0.8 / len(results)
  fig, ax = plt.subplots(figsize=(2 + 0.6 * len(names), 4))
  for k, (res, label) in enumerate(zip(results, labels)):
    ua = {r["name"]: 100 * r["ua"] for r in res["conditions"]}
    ax.bar(np.arange(len(names)) + (k - (len(results) - 1) / 2) * width,
           [ua.get(n, np.nan) for n in names], width, label=label)
  ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
  ax.set_ylabel("UA %")
  ax.set_ylim(0, 100)
  ax.set_title(f"UA under each condition ({results[0]['n_clips']} clips)")
  if len(results) > 1:
    ax.legend(loc="lower left")
  ax.grid(axis="y", alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
