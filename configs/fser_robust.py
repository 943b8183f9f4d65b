"""configs/fser_fast.py plus the recording's channel: waveform augmentation.

  python launch.py --config configs/fser_robust.py --workdir runs/robust
  python launch.py --mode robustness --workdir runs/robust

Every training batch's waveforms go through a random channel on the device
before the front-end (fser_jax/wave_augment.py): speed 0.9-1.1, a synthetic
room (RT60 0.2-1.0 s), white or pink noise at 0-20 dB SNR, gain -20..+10 dB
with clipping, and a telephone channel (300-3400 Hz, 8 kHz, mu-law), each
with its own probability. Point augment.wave.noise_dir / ir_dir at folders of
your own background noise and room impulse responses to add them:

  python launch.py --config configs/fser_robust.py --workdir runs/robust_mine \
      --config.augment.wave.noise_dir=~/noise --config.augment.wave.ir_dir=~/irs

Defaults to the embedded corpus, speaker-independent fold 0; accepts
data.dataset / data.protocol / data.fold like configs/fser_fast.py.
Measured figures: README "Robust to your channel".
"""

from fser_jax import config as config_lib


def get_config():
  c = config_lib.base()
  c.data.dataset = "fser/synthetic"
  c.data.protocol = "speaker"
  c.data.num_folds = 4
  c.features.kind = "rgb"
  config_lib.fast_recipe(c, num_epochs=60, eval_every_epochs=4)
  w = c.augment.wave
  w.noise_prob = 0.5
  w.noise_snr_db = (0.0, 20.0)
  w.phone_prob = 0.3
  w.gain_prob = 0.3
  w.speed_prob = 0.3
  w.reverb_prob = 0.3
  w.reverb_rt60 = (0.2, 1.0)
  return c
