"""fser_jax entry point. Intentionally thin: the logic lives in the library.

  python launch.py --config configs/fser_fast.py --workdir runs/demo
  python launch.py --config configs/fser_fast.py --workdir runs/gen --mode generalisation
  python launch.py --mode predict --workdir runs/demo --audio my_clips/*.wav other.mp3
  python launch.py --mode evaluate --workdir runs/demo --data my_clips/ --output_dir runs/demo_on_mine
  python launch.py --mode learning_curve --config configs/own_data.py:my_clips/ \
      --config.train.init_from=runs/demo --workdir runs/curve
  python launch.py --mode robustness --workdir runs/demo [--data my_clips/]
  python launch.py --mode embed --config configs/own_data.py:my_clips/ \
      --config.encoder.path=~/models/whisper-base --workdir runs/emb
"""

import importlib
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory of the run (train, "
                    "generalisation, learning_curve: where it goes; predict, "
                    "evaluate: the trained run to use).", required=True)
flags.DEFINE_enum("mode", "train", ["train", "generalisation", "predict",
                                    "evaluate", "learning_curve",
                                    "robustness", "embed"],
                  "What to do.")
config_flags.DEFINE_config_file(
    "config", None, "A configs/*.py file (not needed for predict / evaluate).",
    lock_config=True)
flags.DEFINE_bool("overwrite", False,
                  "Delete the run in --workdir (any config) and start anew.")
flags.DEFINE_multi_string("audio", [], "predict: files, folders or globs "
                          "(--audio a.wav b.wav 'dir/*.mp3').")
flags.DEFINE_string("output", None, "predict: write the table to this CSV.")
flags.DEFINE_string("abstain_below", None, "predict: 'coverage=0.8' (abstain "
                    "below the confidence that kept 80% of the run's "
                    "validation clips) or 'prob=0.5' (a calibrated "
                    "probability); unfamiliar clips abstain too.")
flags.DEFINE_enum("normalize_by", "auto", ["auto", "folder", "file", "none"],
                  "predict: standardise each folder's files (one speaker or "
                  "session) or each file with its own statistics, or use "
                  "the run's training statistics ('none'); 'auto': 'folder' "
                  "for runs trained with features.normalize=speaker|corpus, "
                  "else 'none'.")
flags.DEFINE_list("protocols", ["paper", "speaker", "corpus"],
                  "generalisation: the protocols to run (paper, speaker, "
                  "corpus; cross: the cross-corpus matrix, one run per "
                  "corpus).")
flags.DEFINE_string("data", None, "evaluate: a folder with one subfolder per "
                    "label, a CSV manifest, or a built TFDS name (fser/emodb).")
flags.DEFINE_string("data_dir", "", "evaluate: TFDS data dir for --data "
                    "fser/... ('' = $TFDS_DATA_DIR or ~/tensorflow_datasets).")
flags.DEFINE_string("output_dir", None, "evaluate: where the report goes; "
                    "robustness: default WORKDIR/robustness.")
flags.DEFINE_list("conditions", [], "robustness: a subset of the conditions "
                  "(default all: clean, snr_20, ..., phone+snr_10).")
flags.DEFINE_integer("seed", 0, "robustness: the seed of the noise and rooms.")
flags.DEFINE_string("coordinator_address", "", "Several processes (hosts): "
                    "the first process's HOST:PORT (else $JAX_COORDINATOR_"
                    "ADDRESS); see fser_jax/train/distributed.py.")
flags.DEFINE_integer("num_processes", 0, "Several processes: how many (else "
                     "$JAX_NUM_PROCESSES).")
flags.DEFINE_integer("process_id", -1, "Several processes: this one's index, "
                     "0 first (else $JAX_PROCESS_ID).")
flags.DEFINE_string("label_map", "", "evaluate, robustness, learning_curve "
                    "(its zero-shot arm): 'data_label=run_class,...' or a "
                    "JSON file; 'label=' marks a label with no counterpart.")
flags.DEFINE_string("columns", "", "Your manifest's column names, for every "
                    "mode that reads it: 'path=file,label=emotion,"
                    "speaker=talker' (ours=yours).")


class _QuietLibraries:
  """Keeps orbax's per-save INFO lines out of the progress log."""

  def filter(self, record):
    return record.levelno >= 30 or "/orbax/" not in record.pathname  # WARNING


def main(argv):
  extra = argv[1:]
  if extra and FLAGS.mode != "predict":
    raise app.UsageError(f"Unexpected arguments: {' '.join(extra)}")
  logging.get_absl_handler().addFilter(_QuietLibraries())
  from fser_jax.train import distributed
  logging.info("Processes: %s", distributed.initialize(
      FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
      auto=bool(FLAGS.config and FLAGS.config.mesh.distributed)))
  # Keep TensorFlow (used by TFDS for reading data) off the GPUs.
  import tensorflow as tf
  tf.config.set_visible_devices([], "GPU")

  import jax
  from fser_jax.cpu import cache as jax_cache
  from fser_jax.cpu import xla as xla_cpu
  logging.info("XLA:CPU backend: %s", xla_cpu.CHOICE)
  precision = (FLAGS.config.train.precision
               if FLAGS.config else "float32")
  from fser_jax.cpu import onednn
  logging.info("model.conv_impl='auto' here in %s: %s", precision,
               "%s (%s)" % xla_cpu.conv_impl(jax.default_backend(), precision,
                                             onednn_ok=onednn.ok,
                                             winograd_ok=onednn.winograd_ok,
                                             bfloat16_ok=onednn.bfloat16_ok))
  logging.info("JAX compilation cache: %s", jax_cache.CHOICE)
  # Every mode's entry point is `run(config, workdir, **options)`; the
  # modes that use a trained run read its config from the workdir.
  reads_a_run = {
      "predict": lambda: dict(audio=FLAGS.audio + extra, output=FLAGS.output,
                              abstain_below=FLAGS.abstain_below,
                              normalize_by=FLAGS.normalize_by),
      "evaluate": lambda: dict(data=FLAGS.data, output_dir=FLAGS.output_dir,
                               label_map=FLAGS.label_map,
                               data_dir=FLAGS.data_dir, columns=FLAGS.columns),
      "robustness": lambda: dict(data=FLAGS.data or "",
                                 output_dir=FLAGS.output_dir or "",
                                 label_map=FLAGS.label_map,
                                 columns=FLAGS.columns,
                                 data_dir=FLAGS.data_dir, seed=FLAGS.seed,
                                 conditions=FLAGS.conditions or None),
  }
  # `--audio a.wav b.wav` (what a shell glob expands to): the paths after
  # the first arrive as positional arguments, hence `extra` above.
  if FLAGS.mode in reads_a_run:
    module = importlib.import_module(f"fser_jax.experiments.{FLAGS.mode}")
    module.run(None, FLAGS.workdir, **reads_a_run[FLAGS.mode]())
    return
  if FLAGS.config is None:
    raise app.UsageError("--config is required for --mode "
                         f"{FLAGS.mode} (e.g. configs/fser_fast.py)")
  from fser_jax import config as config_lib
  config_lib.apply_flags(FLAGS.config, columns=FLAGS.columns,
                         label_map=FLAGS.label_map)
  trains = {
      "train": ("fser_jax.runs.head" if FLAGS.config.encoder.head
                else "fser_jax.runs.cnn", dict(overwrite=FLAGS.overwrite)),
      "embed": ("fser_jax.experiments.embed", {}),
      "learning_curve": ("fser_jax.experiments.learning_curve.curve",
                         dict(overwrite=FLAGS.overwrite)),
      "generalisation": ("fser_jax.experiments.generalisation",
                         dict(protocols=FLAGS.protocols,
                              overwrite=FLAGS.overwrite)),
  }
  name, options = trains[FLAGS.mode]
  importlib.import_module(name).run(FLAGS.config, FLAGS.workdir, **options)


def _run():
  from fser_jax import cpu, errors
  cpu.configure()  # this CPU's XLA flags and caches, before JAX starts
  try:
    app.run(main)
  except errors.Interrupted as e:  # SIGTERM / Ctrl-C: checkpoint saved
    import signal
    print(e.args[0], file=sys.stderr)
    sys.exit(128 + (e.args[1] if len(e.args) > 1 else signal.SIGTERM))
  except errors.UserError as e:  # a clear message, not a traceback
    logging.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  _run()
