"""One run from config to report: what `launch.py --mode train` calls.

The run directory's files are fser_jax/train/rundir.py's. After training, the
report scores the splits' clips the one way every mode does
(fser_jax.runs.trained.TrainedRun: the best checkpoint restored from the
workdir, each clip from its audio through the run's front-end,
standardisation and windows), so a run's report and `--mode evaluate` on
the same clips give the same numbers, whatever the clips' length.
"""

from __future__ import annotations

import os

import numpy as np
from absl import logging

from fser_jax import config as config_lib
from fser_jax.data import input_pipeline
from fser_jax.evaluation import plots
from fser_jax.frontend import normalisation
from fser_jax.runs import report
from fser_jax.runs import trained
from fser_jax.train import distributed
from fser_jax.train import loop as train_lib
from fser_jax.train import rundir
from fser_jax.train import transfer


def evaluate_and_report(config, data, result: train_lib.FitResult,
                        workdir: str, init_info: dict | None = None) -> dict:
  """Scores the splits' windows through the run read back from `workdir`
  (familiarity on training windows, calibration on validation windows, the
  test clips as `--mode evaluate` scores them: runs/report.py), and writes
  report.json, report.md and the plots."""
  run = trained.TrainedRun(workdir, trust=False)  # T = 1, no distances
  read, chunk = input_pipeline.clip_reader(config, data)

  def windows(split):
    idx = np.flatnonzero(data.split == split)
    return run.window_outputs_read(
        read, idx, groups=run.groups_for(data.meta_of(split), idx.size),
        chunk=chunk)

  splits = ("train", "validation", "test")
  a = report.assess(run, workdir, {s: windows(s) for s in splits},
                    {s: data.labels[data.split == s] for s in splits},
                    data.classes, data.meta_of("test"))
  rep = a.report
  rep.update({
      "dataset": config.data.dataset, "protocol": config.data.protocol,
      "fold": config.data.fold, "best_step": int(result.best_step),
      "init_from": init_info,
      "baseline": report.baseline_of(data, config.features.normalize),
  })
  about = (f"Dataset `{config.data.dataset}`, protocol `{config.data.protocol}` "
           f"fold {config.data.fold}; train {rep['n_train']}, validation "
           f"{rep['n_validation']} clips; best checkpoint by validation "
           f"accuracy: step {rep['best_step']}.")
  if init_info:
    about += (f" Initialised from `{init_info['run']}` (step "
              f"{init_info['checkpoint_step']}): transferred "
              f"{', '.join(init_info['transferred'])}; output layer "
              f"{init_info['head']}"
              + (f" ({', '.join(f'{a} <- {b}' for a, b in init_info['head_rows_copied'].items())})"
                 if init_info["head_rows_copied"] else "")
              + f"; frozen: {init_info['freeze']}; input normalisation: "
              f"{init_info['normalisation']}.")
  paper = config.data.dataset == "fser/all" and config.data.protocol == "paper"
  report.write(workdir, a, about, classes=data.classes,
               history=result.history, paper=paper)
  return rep


def run(config, workdir: str, *, overwrite: bool = False) -> dict:
  """Trains (resuming if the workdir holds a run) and writes the report."""
  config_lib.validate(config)
  rundir.prepare(config, workdir, overwrite)
  distributed.barrier("workdir prepared")  # the lead's --overwrite is done
  data = input_pipeline.load(config, norm=transfer.source_norm(config))
  if distributed.is_lead():
    rundir.write_splits_csv(rundir.path(workdir, rundir.SPLITS), data)
    plots.example_images(data.raw_images(), data.labels[data.rows()],
                         data.classes,
                         os.path.join(plots.ensure_dir(workdir), "inputs.png"))
  rundir.write_normalisation(workdir, data.norm, data.classes,
                             normalisation.normalize_mode(config.features))
  distributed.barrier("normalisation written")
  init_params, init_info = None, None
  if config.train.init_from:
    init_params, init_info = transfer.load_init(config, data.classes,
                                                data.channels)
    logging.info("Initialised from %s (step %d): %d tensors transferred, "
                 "output layer %s; frozen: %s.", init_info["run"],
                 init_info["checkpoint_step"], len(init_info["transferred"]),
                 init_info["head"], init_info["freeze"])
  result = train_lib.fit(config, data, workdir, init_params=init_params)
  rep = evaluate_and_report(config, data, result, workdir, init_info)
  logging.info("Test (%s, fold %d, %d clips): accuracy %.4f, UA %.4f, "
               "macro-F1 %.4f. Report: %s", config.data.protocol,
               config.data.fold, rep["n_test"], rep["accuracy"],
               rep["unweighted_accuracy"], rep["macro_f1"],
               rundir.path(workdir, rundir.REPORT_MD))
  return rep


def train_or_read_back(config, workdir: str, *, overwrite: bool = False
                       ) -> dict:
  """The report of the run of `config` in `workdir`: read back when it
  finished before (after checking the config is the same), else trained
  (resuming from its checkpoint)."""
  rep = None if overwrite else rundir.read_report(workdir)
  if rep is None:
    return run(config, workdir, overwrite=overwrite)
  rundir.prepare(config, workdir)  # refuses a changed config
  return rep
