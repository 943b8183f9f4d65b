"""The recipes the configs share, stated as values (each config's docstring
says what they give). fser_jax/config.py holds the base (every key and its
default), the allowed choices and validation."""

from fser_jax import config as config_lib


def embedded_speaker_folds():
  """The base with the recipes' default data: the embedded corpus,
  speaker-independent folds (4), the paper's RGB image."""
  c = config_lib.base()
  c.data.dataset = "fser/synthetic"
  c.data.protocol = "speaker"
  c.data.num_folds = 4
  c.features.kind = "rgb"
  return c


def fast(c, num_epochs: int, eval_every_epochs: int = 4):
  """SGD with Nesterov momentum, a warmup and a cosine decay: converges in
  tens of epochs where the paper's plain SGD at 1e-3 needs hundreds.
  Gradients clipped at norm 20, above what a healthy run's gradients reach
  (the step logs grad_norm), so it stops only a bad step: a bound that
  healthy steps reach clips them too, and cost fser_fast test accuracy."""
  c.train.num_epochs = num_epochs
  c.train.optimizer = "sgd"
  c.train.learning_rate = 0.02
  c.train.momentum = 0.9
  c.train.nesterov = True
  c.train.schedule = "cosine"
  c.train.warmup_epochs = 2
  c.train.clip_grad_norm = 20.0
  c.train.batch_size = 64
  c.train.eval_every_epochs = eval_every_epochs
  c.train.checkpoint_every_epochs = eval_every_epochs
  return c


def plus(c):
  """fser_plus's front-end, pooling and augmentation: log-mel at the hop's
  rate with a fixed dB reference, statistics pooling over time, SpecAugment
  masks, no zoom or flip, each speaker's own statistics."""
  c.features.kind = "logmel_time"
  c.features.frames = 128
  c.features.normalize = "speaker"
  c.model.time_pool = "mean_std"  # statistics pooling: mean and spread
  c.augment.width_shift = 0.05
  c.augment.height_shift = 0.0
  c.augment.zoom = 0.0
  c.augment.horizontal_flip = False  # columns are time: a flip reverses it
  c.augment.time_masks = 2
  c.augment.freq_masks = 2
  c.augment.mask_width = 0.1
  return c


def robust(c):
  """fser_robust's channel on the training waveforms: noise (p 0.5, 0-20 dB
  SNR), telephone band (0.3), gain (0.3), speed (0.3), a synthetic room
  (0.3, RT60 0.2-1.0 s)."""
  w = c.augment.wave
  w.noise_prob = 0.5
  w.noise_snr_db = (0.0, 20.0)
  w.phone_prob = 0.3
  w.gain_prob = 0.3
  w.speed_prob = 0.3
  w.reverb_prob = 0.3
  w.reverb_rt60 = (0.2, 1.0)
  return c
