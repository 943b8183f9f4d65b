"""fser_jax entry point. Intentionally thin: the logic lives in the library.

  python launch.py --config configs/synthetic.py --workdir runs/demo
  python launch.py --config configs/synthetic.py --workdir runs/gen --mode generalisation
  python launch.py --mode predict --workdir runs/demo --audio my_clips/*.wav other.mp3
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory of the run.", required=True)
flags.DEFINE_enum("mode", "train", ["train", "generalisation", "predict"],
                  "What to do.")
config_flags.DEFINE_config_file(
    "config", None, "A configs/*.py file (not needed for --mode predict).",
    lock_config=True)
flags.DEFINE_bool("overwrite", False,
                  "Delete the run in --workdir (any config) and start anew.")
flags.DEFINE_multi_string("audio", [], "predict: files, folders or globs "
                          "(--audio a.wav b.wav 'dir/*.mp3').")
flags.DEFINE_string("output", None, "predict: write the table to this CSV.")
flags.DEFINE_list("protocols", ["paper", "speaker", "corpus"],
                  "generalisation: the protocols to run.")


class _QuietLibraries:
  """Keeps orbax's per-save INFO lines out of the progress log."""

  def filter(self, record):
    return record.levelno >= 30 or "/orbax/" not in record.pathname  # WARNING


def main(argv):
  extra = argv[1:]
  if extra and FLAGS.mode != "predict":
    raise app.UsageError(f"Unexpected arguments: {' '.join(extra)}")
  logging.get_absl_handler().addFilter(_QuietLibraries())
  # Keep TensorFlow (used by TFDS for reading data) off the GPUs.
  import tensorflow as tf
  tf.config.set_visible_devices([], "GPU")

  from fser_jax import run
  if FLAGS.mode == "predict":
    from fser_jax import predict
    # `--audio a.wav b.wav` (what a shell glob expands to): the paths after
    # the first arrive as positional arguments.
    predict.main(FLAGS.workdir, FLAGS.audio + extra, output=FLAGS.output)
    return
  if FLAGS.config is None:
    raise app.UsageError("--config is required for --mode "
                         f"{FLAGS.mode} (e.g. configs/synthetic.py)")
  if FLAGS.mode == "train":
    run.train_and_evaluate(FLAGS.config, FLAGS.workdir,
                           overwrite=FLAGS.overwrite)
  else:
    from fser_jax import generalisation
    generalisation.run_all(FLAGS.config, FLAGS.workdir, FLAGS.protocols,
                           overwrite=FLAGS.overwrite)


def _run():
  import signal
  from fser_jax import errors
  try:
    app.run(main)
  except errors.Interrupted as e:  # SIGTERM / Ctrl-C: checkpoint saved
    print(e.args[0], file=sys.stderr)
    sys.exit(128 + (e.args[1] if len(e.args) > 1 else signal.SIGTERM))
  except errors.USER_ERRORS as e:  # a clear message, not a traceback
    logging.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  _run()
