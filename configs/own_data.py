"""Train on your own recordings.

  python launch.py --config configs/own_data.py:/path/to/data --workdir runs/mine

/path/to/data is either a folder with one subfolder per label
(data/happy/x.wav, data/angry/y.mp3, ...) or a CSV manifest with columns
path,label and optional speaker,gender,corpus,language (paths relative to the
manifest). Any label set, language, format and sample rate librosa reads.
The dataset is built into ~/tensorflow_datasets (a name derived from the path
and labels) on first use; unreadable files are skipped and listed.

Protocol: speaker-independent when the manifest has a speaker column
(--config.data.protocol=speaker), else a stratified random split (paper).
Recipe: configs/fser_fast.py's (paper front-end, momentum, cosine).

Start from a trained run (fine-tuning; README "Your recordings"):
  python launch.py --config configs/own_data.py:/path/to/manifest.csv \
      --config.train.init_from=runs/demo --config.data.protocol=speaker \
      --workdir runs/mine_ft [--config.train.freeze=convs|trunk]
How many clips to label (scratch vs fine-tuned vs zero-shot):
  python launch.py --mode learning_curve \
      --config configs/own_data.py:/path/to/manifest.csv \
      --config.train.init_from=runs/demo --workdir runs/curve

Measured on the embedded stand-in for a user's recordings
(`python -m fser_jax.datasets.demo_recordings runs/my_recordings`: 600 phone
clips, 6 speakers, 5 labels) on a 2-core AVX2 CPU, speaker fold 0 (100 test
clips of an unseen speaker): from scratch UA 0.970, fine-tuned from the
quick start's run 0.930 (2 min 10 s each); the learning curve (26 min):
fine-tuned 0.55 / 0.78 / 0.81 / 0.82 / 0.87 at 5 / 10 / 20 / 50 / all clips
per class against scratch 0.60 / 0.62 / 0.78 / 0.79 / 0.75, zero-shot 0.05.
"""

from fser_jax import config as config_lib

RECIPES = ("fast", "plus", "robust")


def get_config(arg: str = ""):
  """arg: 'PATH' or 'PATH,RECIPE' (RECIPE: fast | plus | robust)."""
  path, _, recipe = arg.rpartition(",") if arg.endswith(
      tuple("," + r for r in RECIPES)) else (arg, "", "fast")
  c = config_lib.base()
  c.data.dataset = "own"
  c.data.own_path = path
  c.data.protocol = "paper"
  c.features.kind = "rgb"
  config_lib.fast_recipe(c, num_epochs=60, eval_every_epochs=2)
  if recipe == "plus":
    config_lib.plus_recipe(c)
  elif recipe == "robust":
    config_lib.fast_recipe(c, num_epochs=120, eval_every_epochs=4)
    config_lib.robust_recipe(c)
  return c
