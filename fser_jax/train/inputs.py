"""What the jitted train step gathers its batches from.

`training_inputs(config, data, key)` turns the training split into the
arrays that live on the device and the augmentation the step applies:

- the training images and the image augmentation (augment.py); or
- with `augment.wave`, every training clip's samples, and a function that
  simulates the recording's channel (wave_augment.py), runs the front-end
  (features.py) and the run's standardisation, then the image augmentation,
  inside the step; or
- with `augment.offline_copies`, the paper's Algorithm 1: fixed augmented
  copies drawn once, then used as they are; or
- streamed (data.stream, fser_jax/data/stream.py): nothing on the device; each
  dispatch's clips are read from the dataset (`batches`) and go through the
  waveform route above (the channel simulation when augment.wave is on).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from fser_jax.frontend import augment as augment_lib
from fser_jax.frontend import spectrogram as features_lib
from fser_jax.data import stream as stream_lib
from fser_jax.frontend import wave_augment
from fser_jax.config import ConfigError


@dataclasses.dataclass
class TrainingInputs:
  """The training split as the jitted step sees it."""
  x: Any  # images [N, H, W, C], or {'wav', 'length', 'norm'} per clip
  y: np.ndarray  # [N] labels
  aug_fn: Callable  # (key, batch[, extras]) -> images, inside the step
  extras: dict | None  # device-resident banks the augmentation reads
  # Streamed: (idx [K, B]) -> ({'wav', 'length', 'norm'} [K, B, ...], y
  # [K, B]), this process's share of the batch; x is then None.
  batches: Callable | None = None

  @property
  def n(self) -> int:
    return int(self.y.shape[0])


def training_inputs(config, data, key) -> TrainingInputs:
  """What each step gathers its batch from: the training images with the
  image augmentation; or, with `augment.wave`, the training waveforms, the
  channel simulation and the front-end; or the paper's offline copies
  (Algorithm 1), drawn once with `key` and then used as they are."""
  time_crop = (config.features.frames
               if config.features.kind == "logmel_time" else None)
  aug_fn = augment_lib.from_config(config.augment, crop_to=time_crop)
  extras, batches = None, None
  m = data.split == "train"
  if data.streamed:
    if config.augment.offline_copies:
      raise ConfigError("config augment.offline_copies (the paper's fixed "
                        "copies) needs every image in memory; set "
                        "--config.data.stream=off")
    x, y = None, data.labels[m]
    batch, n_proc = config.train.batch_size, jax.process_count()
    share = batch // n_proc  # plan() checks batch % devices
    p = jax.process_index()
    batches = stream_lib.Batches(
        data.source, np.flatnonzero(m), y, data.clip_norm[m], data.pad_to,
        local=(p * share, (p + 1) * share) if n_proc > 1 else None)
  else:
    x, y = data.subset("train")
  if data.wav is not None or data.streamed:
    if data.wav is not None:
      x = {"wav": data.wav[m], "length": data.wav_lengths[m],
           "norm": data.clip_norm[m]}
    aug_fn = make_wave_batch_fn(config, config.data.sample_rate, aug_fn)
    noise, irs = wave_augment.load_banks(config.augment.wave,
                                         config.data.sample_rate)
    extras = {k: np.asarray(v) for k, v in (("noise", noise), ("ir", irs))
              if v is not None}
    extras.update(wave_augment.noise_banks(config.data.sample_rate,
                                           config.seed))
    logging.info("Waveform route: %d training clips of %d samples %s%s.",
                 y.size, data.pad_to if x is None else x["wav"].shape[1],
                 "streamed" if x is None else "on the device",
                 "".join(f", {k} bank {np.shape(v)}"
                         for k, v in extras.items()))
  if config.augment.offline_copies:
    logging.info("Offline augmentation: %d copies of %d training images.",
                 config.augment.offline_copies, x.shape[0])
    x, y = offline_augment(key, x, y, config.augment.offline_copies, aug_fn)
    aug_fn = lambda k, x: x  # the paper trained on the fixed copies
  return TrainingInputs(x, y, aug_fn, extras, batches)


def make_wave_batch_fn(config, sample_rate: int, image_aug_fn):
  """`(key, {'wav', 'length', 'norm'}, extras) -> images`: the recording's channel
  (wave_augment.py), the front-end, the run's standardisation and the image
  augmentation, inside the jitted step. extras: {'noise': [M] | None,
  'ir': [K, R] | None}, the user's folders."""
  wave = wave_augment.from_config(config.augment.wave, sample_rate)
  frontend = features_lib.frontend(config.features, sample_rate)

  def fn(key, batch, extras):
    k_wave, k_img = jax.random.split(key)
    wav, lengths = wave_augment.augment(k_wave, batch["wav"],
                                        batch["length"], wave, extras)
    norm = batch["norm"][:, :, None, None, :]  # each clip's (mean, std)
    images = (frontend(wav, lengths) - norm[:, 0]) / norm[:, 1]
    return image_aug_fn(k_img, images)
  return fn


def offline_augment(key, images: np.ndarray, labels: np.ndarray, copies: int,
                    aug_fn, batch: int = 256):
  """The paper's Algorithm 1: `copies` augmented images per training image,
  drawn once on the device and kept (originals first)."""
  out_x, out_y = [images], [labels]
  for c in range(copies):
    kc = jax.random.fold_in(key, c)
    for s in range(0, images.shape[0], batch):
      x = jnp.asarray(images[s:s + batch])
      out_x.append(np.asarray(aug_fn(jax.random.fold_in(kc, s), x)))
    out_y.append(labels)
  return np.concatenate(out_x), np.concatenate(out_y)


def epoch_indices(key, epoch: int, n: int, batch: int, steps: int):
  perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
  return perm[:steps * batch].reshape(steps, batch)


def feeder(inputs, key, steps_per_epoch: int, batch: int, plan_,
           place=None):
  """((epoch, offset, k), what train_chunk's `idx` gets) for each dispatch
  of `plan_`: the batch indices (the data is on the device), or, streamed,
  the batches read ahead in threads (stream.Prefetcher). Several processes:
  each reads its share and the shares form one global batch (`place`, a
  distributed.Placement: its shardings are None in one process)."""
  batch_sharding = None if place is None else place.feed
  replicated = None if place is None else place.index
  perm = functools.lru_cache(maxsize=2)(lambda epoch: np.asarray(
      epoch_indices(key, epoch, inputs.n, batch, steps_per_epoch)))
  if inputs.batches is None:
    for epoch, offset, k in plan_:
      idx = perm(epoch)[offset:offset + k]
      yield (epoch, offset, k), (idx if replicated is None
                                 else jax.device_put(idx, replicated))
    return

  def read(d):
    epoch, offset, k = d
    x, y = inputs.batches(perm(epoch)[offset:offset + k])
    out = {"x": x, "y": y}
    if batch_sharding is not None:
      out = jax.tree.map(lambda a: jax.make_array_from_process_local_data(
          batch_sharding, a), out)
    return out
  yield from stream_lib.Prefetcher(read, plan_)
