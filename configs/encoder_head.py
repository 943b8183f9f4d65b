"""A linear head on a pretrained speech encoder you have on disk, as a run.

  python launch.py --config configs/encoder_head.py:/path/to/manifest.csv \
      --config.encoder.path=~/models/whisper-base --workdir runs/head
  python launch.py --mode evaluate --workdir runs/head --data other.csv
  python launch.py --mode predict --workdir runs/head --audio clips/*.wav

/path/to/manifest.csv as configs/own_data.py takes it (a folder with one
subfolder per label works too). The recipe, as values below: clips split
by speaker (data.protocol='speaker'; a manifest without a speaker column:
--config.data.protocol=paper), windows of 4 s every 2 s as predict takes
them, every layer's mean and std over positions, each speaker's windows
standardised with that speaker's own statistics (features.normalize=
'speaker': most of every gain measured in docs/learning_curve.md), the
layer and C (0.03-1) by cross-validation holding out whole speakers, an L2
logistic regression; familiarity on the training windows, temperature on
the validation ones. The report puts the per-clip-statistics baseline,
normalised the same way, beside it.

On synthetic speech, where prosody statistics already carry emotion, the
head and the baseline end level within a few clips
(docs/encoders.md#a-head-as-a-run).

Expected: test UA 0.69-0.92 with whisper-base on speaker fold 0 of the shift suite's four sets (2-core Intel Xeon with AVX-512 and AMX), the per-speaker linear baseline 0.67-0.92 beside it.
Results: docs/results/encoder_head/{greek_phone,spanish_mobile,french_room,english_gsm}.json
"""

from fser_jax import config as config_lib


def get_config(arg: str = ""):
  c = config_lib.base()
  c.data.dataset = "own"
  c.data.own_path = arg
  c.data.protocol = "speaker"
  c.features.normalize = "speaker"
  c.encoder.head = True
  c.encoder.batch_size = 8
  c.predict.window_seconds = 4.0
  c.predict.hop_seconds = 2.0
  return c
