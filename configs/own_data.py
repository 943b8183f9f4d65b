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
"""

from fser_jax import config as config_lib


def get_config(path: str = ""):
  c = config_lib.base()
  c.data.dataset = "own"
  c.data.own_path = path
  c.data.protocol = "paper"
  c.features.kind = "rgb"
  config_lib.fast_recipe(c, num_epochs=60, eval_every_epochs=2)
  return c
