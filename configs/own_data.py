"""Train on your own recordings.

  python launch.py --config configs/own_data.py:/path/to/data[,RECIPE] --workdir runs/mine

/path/to/data is either a folder with one subfolder per label
(data/happy/x.wav, data/angry/y.mp3, ...) or a CSV manifest with columns
path,label and optional speaker,gender,corpus,language (paths relative to the
manifest). Any label set, language, format and sample rate librosa reads.
The dataset is built into ~/tensorflow_datasets (a name derived from the path
and labels) on first use; unreadable files are skipped and listed.

RECIPE (default fast): `fast` (configs/fser_fast.py's: the paper's RGB
image, SGD + Nesterov 0.02, cosine, 60 epochs, clip 20), `plus`
(configs/fser_plus.py's front-end and augmentation: log-mel at its own frame
rate, statistics pooling, SpecAugment, per-speaker statistics) or `robust`
(configs/fser_robust.py's channel simulation, 120 epochs). Fine-tuning a
run needs the run's recipe (its front-end).

Protocol: speaker-independent with --config.data.protocol=speaker when the
manifest has a speaker column, else a stratified random split (paper).

What to do with a few hundred clips of your own (docs/learning_curve.md):
  python launch.py --mode learning_curve \
      --config configs/own_data.py:/path/to/manifest.csv,plus \
      --config.train.init_from=runs/plus --config.data.protocol=speaker \
      --workdir runs/curve
Measured on four target sets unlike the training data (2-core Intel Xeon,
AVX-512 and AMX, 2026-12-06, docs/learning_curve.md): the arm chosen without
the test speaker is at or above the linear baseline at every k = 5..50 on all
four (k = 20: +5.0, +41.1, +13.8, +30.8 UA points), mostly by standardising
each speaker's features on that speaker's own clips; the CNN arms (scratch,
finetune) underfit a few dozen clips and are off by default.
Your manifest's own column names: --columns path=file,label=emotion,...
"""

from configs import common
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
  common.fast(c, num_epochs=60, eval_every_epochs=2)
  if recipe == "plus":
    common.plus(c)
  elif recipe == "robust":
    common.fast(c, num_epochs=120, eval_every_epochs=4)
    common.robust(c)
  return c
