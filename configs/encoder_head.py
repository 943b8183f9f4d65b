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

What it gives (docs/encoders.md#a-head-as-a-run; whisper-base, speaker
fold 0, one unseen test speaker, 2-core Intel Xeon with AVX-512 and AMX,
about 50 s a set): UA 91.7 / 92.0 / 70.8 / 69.4 on the shift suite's
greek_phone / spanish_mobile / french_room / english_gsm sets, against
88.3 / 91.8 / 67.5 / 72.2 for the per-speaker baseline: level within a few
clips; synthetic speech, where prosody statistics already carry emotion.
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
