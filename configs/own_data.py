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
Most of what the chosen arm gains comes from standardising each speaker's
features on that speaker's own clips (docs/learning_curve.md); the CNN arms
(scratch, finetune) underfit a few dozen clips and are off by default.
Your manifest's own column names: --columns path=file,label=emotion,...

Expected: the learning curve's chosen arm 2.3-43.1 UA points above the linear baseline at every k = 5-50, 5 draws, on the shift suite's four sets (2-core Intel Xeon with AVX-512 and AMX); your own data: not measured in a committed result.
Results: docs/results/learning_curve/plus_*.json
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
