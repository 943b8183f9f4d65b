"""configs/fser_fast.py plus the recording's channel: waveform augmentation.

  python launch.py --config configs/fser_robust.py --workdir runs/robust
  python launch.py --mode robustness --workdir runs/robust

Every training batch's waveforms go through a random channel on the device
before the front-end (fser_jax/frontend/wave_augment.py): speed, a synthetic
room, white or pink noise, gain with clipping and a telephone channel, each
with its own probability (configs/common.py's `robust`, as values). Point
augment.wave.noise_dir / ir_dir at folders of your own background noise and
room impulse responses to add them:

  python launch.py --config configs/fser_robust.py --workdir runs/robust_mine \
      --config.augment.wave.noise_dir=~/noise --config.augment.wave.ir_dir=~/irs

Defaults to the embedded corpus, speaker-independent fold 0; accepts
data.dataset / data.protocol / data.fold like configs/fser_fast.py. Trains
120 epochs, twice the fast recipe: at 60 the channel leaves it underfitted.

Expected: clean test UA 1.00 on fold 0 over seeds 0-1, 2.6-5.2 points lost at 10 dB SNR and 2.1 on the telephone channel under --mode robustness (2-core Intel Xeon with AVX-512 and AMX).
Results: docs/results/robustness/fser_robust_seed{0,1}_xeon-amx_2026-12-06.json
"""

from configs import common


def get_config():
  c = common.embedded_speaker_folds()
  # Twice the fast recipe's epochs: the channel makes the task harder, and at
  # 60 epochs the model underfits.
  common.fast(c, num_epochs=120, eval_every_epochs=4)
  common.robust(c)
  return c
