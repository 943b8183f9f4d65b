"""Stage 2: waveforms -> mel spectrograms -> model images, on the accelerator.

The paper's front-end (section 3): `librosa.feature.melspectrogram` with an FFT
of 512, hop 512 and a Hann window of 512 (a narrow-band spectrogram), shown in
dB through librosa's default colormap for such data, matplotlib's `coolwarm`
(low amplitudes light blue, high dark red), saved as an image and loaded back as
a 64x64 RGB picture. Here every step is a jitted JAX function over a padded
batch of clips:

  waveform [B, L] + lengths [B]
    -> power mel spectrogram [B, n_mels, T]   (equals librosa's, tested)
    -> dB (librosa.power_to_db, ref=max, top_db=80: per-clip)
    -> coolwarm RGB through a 256-entry lookup table
    -> resize to [B, 64, 64, 3], each clip's own length stretched to 64 columns.

Beside them, `kind='logmel_time'` (`time_image`): time at a fixed frame
rate instead of stretched, a fixed dB reference, each clip tiled to a fixed
number of columns; the model averages over time (model.FSER time_pool).

Beside it, `kind='logmel'`: one channel of log-mel power with a fixed reference,
so loudness survives (the paper's ref=max per clip discards it); the input
pipeline standardises it with training-set statistics.

Clips of different lengths share a padded buffer; the valid frame count of each
clip masks the dB reference and drives its own resize, so padding never leaks
into an image.
"""

from __future__ import annotations

import functools
import gc

import jax
import jax.numpy as jnp
import numpy as np

AMIN = 1e-10


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int,
                   fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
  """librosa's Slaney mel filterbank, [n_mels, n_fft // 2 + 1] float32."""
  import librosa
  return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels,
                             fmin=fmin, fmax=fmax).astype(np.float32)


@functools.lru_cache(maxsize=4)
def colormap_lut(name: str = "coolwarm", n: int = 256) -> np.ndarray:
  """The colormap as an [n, 3] float32 RGB lookup table in [0, 1]."""
  import matplotlib
  cmap = matplotlib.colormaps[name].resampled(n)
  return cmap(np.arange(n))[:, :3].astype(np.float32)


def num_frames(num_samples, hop_length: int):
  """Frames of a centred STFT (librosa's `center=True`) of `num_samples`."""
  return 1 + num_samples // hop_length


def power_mel(wav: jax.Array, *, sample_rate: int, n_fft: int = 512,
              hop_length: int = 512, n_mels: int = 128,
              fmax: float | None = None) -> jax.Array:
  """Power mel spectrogram of a batch, as librosa.feature.melspectrogram.

  Centred frames with zero padding of n_fft // 2 on both sides (librosa's
  defaults `center=True, pad_mode='constant'`), periodic Hann window of
  n_fft, |STFT|^2, Slaney mel filterbank.

  Args:
    wav: [..., L] float waveforms (zero padded past each clip's end).

  Returns:
    [..., n_mels, 1 + L // hop_length] float32.
  """
  wav = wav.astype(jnp.float32)
  pad = [(0, 0)] * (wav.ndim - 1) + [(n_fft // 2, n_fft // 2)]
  padded = jnp.pad(wav, pad)
  n = num_frames(wav.shape[-1], hop_length)
  idx = jnp.arange(n)[:, None] * hop_length + jnp.arange(n_fft)[None, :]
  frames = padded[..., idx]  # [..., T, n_fft]
  window = jnp.asarray(np.hanning(n_fft + 1)[:-1], jnp.float32)  # periodic
  spec = jnp.fft.rfft(frames * window, axis=-1)
  power = spec.real**2 + spec.imag**2  # [..., T, F]
  fb = jnp.asarray(mel_filterbank(sample_rate, n_fft, n_mels, 0.0, fmax))
  mel = jnp.einsum("...tf,mf->...mt", power, fb,
                   precision=jax.lax.Precision.HIGHEST)
  return mel


def power_to_db(mel: jax.Array, valid: jax.Array | None = None, *,
                ref_max: bool = True, top_db: float | None = 80.0) -> jax.Array:
  """librosa.power_to_db(S, ref=np.max or 1.0, amin=1e-10, top_db) per clip.

  Args:
    mel: [B, M, T] power.
    valid: [B, T] bool mask of real frames; the per-clip max is taken over them.
  """
  db = 10.0 * jnp.log10(jnp.maximum(AMIN, mel))
  if valid is None:
    valid = jnp.ones(mel.shape[:1] + mel.shape[-1:], bool)
  masked = jnp.where(valid[:, None, :], db, -jnp.inf)
  peak = jnp.max(masked, axis=(1, 2), keepdims=True)
  if ref_max:
    db = db - peak
    peak = jnp.zeros_like(peak)
  if top_db is not None:
    db = jnp.maximum(db, peak - top_db)
  return db


def resize_weights(n_valid: jax.Array, n_in: int, n_out: int) -> jax.Array:
  """[n_out, n_in] linear-interpolation weights stretching the first `n_valid`
  inputs to `n_out` outputs, antialiased when shrinking (a triangle kernel of
  width max(1, n_valid / n_out), as PIL/jax.image resize), zero past n_valid.
  """
  n_valid = jnp.asarray(n_valid, jnp.float32)
  scale = n_valid / n_out
  width = jnp.maximum(scale, 1.0)
  centers = (jnp.arange(n_out, dtype=jnp.float32) + 0.5) * scale - 0.5
  x = jnp.arange(n_in, dtype=jnp.float32)
  w = jnp.maximum(0.0, 1.0 - jnp.abs(x[None, :] - centers[:, None]) / width)
  w = jnp.where(x[None, :] < n_valid, w, 0.0)
  # Near the edges the kernel hangs over nothing: renormalise what is left.
  return w / jnp.maximum(w.sum(axis=1, keepdims=True), 1e-12)


def _resize(img: jax.Array, n_valid_t: jax.Array, size: int) -> jax.Array:
  """[M, T, C] -> [size, size, C], using only the first n_valid_t columns."""
  m, t = img.shape[:2]
  wf = resize_weights(jnp.asarray(m), m, size)
  wt = resize_weights(n_valid_t, t, size)
  return jnp.einsum("im,mtc,jt->ijc", wf, img, wt,
                    precision=jax.lax.Precision.HIGHEST)


def tile_to(wav: jax.Array, lengths: jax.Array, n: int) -> jax.Array:
  """[B, n]: each clip repeated end to end until it fills `n` samples (cut
  at `n` when longer), so a short clip's columns hold speech, not padding."""
  idx = jnp.arange(n)[None, :] % jnp.maximum(lengths, 1)[:, None]
  return jnp.take_along_axis(wav, idx.astype(jnp.int32), axis=1)


def time_image(wav: jax.Array, lengths: jax.Array, *, sample_rate: int,
               n_fft: int, hop_length: int, n_mels: int, image_size: int,
               frames: int, fmax: float | None = None) -> jax.Array:
  """`kind='logmel_time'`: [B, image_size, frames, 1] log-mel in dB with a
  fixed reference (1.0: a recording's loudness survives), one column per
  hop (time is not stretched: speaking rate survives), each clip tiled to
  `frames` columns (length is not a shortcut: a short clip repeats, and the
  model averages over time), mel bands resized to `image_size` rows."""
  tiled = tile_to(wav, lengths, (frames - 1) * hop_length)
  mel = power_mel(tiled, sample_rate=sample_rate, n_fft=n_fft,
                  hop_length=hop_length, n_mels=n_mels, fmax=fmax)
  db = jnp.flip(power_to_db(mel, None, ref_max=False, top_db=None), axis=1)
  wf = resize_weights(jnp.asarray(n_mels), n_mels, image_size)
  return jnp.einsum("im,bmt->bit", wf, db,
                    precision=jax.lax.Precision.HIGHEST)[..., None]


def images_from_waveforms(wav: jax.Array, lengths: jax.Array, *,
                          sample_rate: int, kind: str = "rgb",
                          n_fft: int = 512, hop_length: int = 512,
                          n_mels: int = 128, image_size: int = 64,
                          top_db: float | None = 80.0,
                          fmax: float | None = None,
                          colormap: str = "coolwarm",
                          frames: int = 128) -> jax.Array:
  """The model's input images for a padded batch of clips (jit-compatible).

  Args:
    wav: [B, L] waveforms, zero past each clip's length.
    lengths: [B] valid samples per clip.
    kind: 'rgb' (the paper's coolwarm picture, [B, S, S, 3] in [0, 1]),
      'logmel' (dB with a fixed reference, [B, S, S, 1], unnormalised) or
      'logmel_time' (`time_image`: [B, S, frames, 1], time not stretched).

  Returns:
    float32 images, low frequencies at the bottom row as in a spectrogram plot.
  """
  if kind == "logmel_time":
    return time_image(wav, lengths, sample_rate=sample_rate, n_fft=n_fft,
                      hop_length=hop_length, n_mels=n_mels,
                      image_size=image_size, frames=frames, fmax=fmax)
  mel = power_mel(wav, sample_rate=sample_rate, n_fft=n_fft,
                  hop_length=hop_length, n_mels=n_mels, fmax=fmax)
  t = mel.shape[-1]
  n_valid = num_frames(lengths, hop_length)
  valid = jnp.arange(t)[None, :] < n_valid[:, None]
  if kind == "rgb":
    db = power_to_db(mel, valid, ref_max=True, top_db=top_db)
    # Matplotlib's default normalisation maps the image's own min..max onto the
    # colormap; after top_db clipping that is [max - top_db, max].
    lo = jnp.min(jnp.where(valid[:, None, :], db, jnp.inf), axis=(1, 2),
                 keepdims=True)
    hi = jnp.max(jnp.where(valid[:, None, :], db, -jnp.inf), axis=(1, 2),
                 keepdims=True)
    unit = (db - lo) / jnp.maximum(hi - lo, 1e-6)
    lut = jnp.asarray(colormap_lut(colormap))
    idx = jnp.clip(jnp.floor(unit * lut.shape[0]).astype(jnp.int32), 0,
                   lut.shape[0] - 1)
    img = lut[idx]  # [B, M, T, 3]
  elif kind == "logmel":
    db = power_to_db(mel, valid, ref_max=False, top_db=None)
    img = db[..., None]
  else:
    raise ValueError(f"features.kind must be 'rgb', 'logmel' or "
                     f"'logmel_time', got {kind!r}")
  img = jnp.flip(img, axis=1)  # high frequencies on top, as the paper's plots
  return jax.vmap(_resize, in_axes=(0, 0, None))(img, n_valid, image_size)


def frontend(cfg, sample_rate: int, frames: int | None = None):
  """`(wav, lengths) -> images` closed over the `features` config, to call
  inside a jitted function (the train step, with waveform augmentation).
  `frames`: logmel_time's columns (default features.frames)."""
  return functools.partial(
      images_from_waveforms, sample_rate=sample_rate, kind=cfg.kind,
      n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
      image_size=cfg.image_size, top_db=cfg.top_db,
      colormap=cfg.colormap,
      frames=frames or cfg.frames)


def image_fn(cfg, sample_rate: int, frames: int | None = None):
  """A jitted `(wav, lengths) -> images` closed over the `features` config;
  one per distinct front-end in a process, so its compilations (one per
  padded length) serve the load, the report and evaluation alike."""
  kw = frontend(cfg, sample_rate, frames).keywords
  return _jitted_frontend(tuple(sorted(kw.items())))


@functools.lru_cache(maxsize=16)
def _jitted_frontend(keywords: tuple):
  return jax.jit(functools.partial(images_from_waveforms, **dict(keywords)))


def time_frames(cfg, longest: int) -> int | None:
  """logmel_time: the columns that hold a clip of `longest` samples whole
  (at least features.frames, a multiple of 16 for the pooling), so stored
  images keep every clip's full length (training crops features.frames at
  random, evaluation averages over all of them); None for other kinds."""
  if cfg.kind != "logmel_time":
    return None
  need = 1 + longest // cfg.hop_length
  return max(cfg.frames, -(-need // 16) * 16)


def num_channels(kind: str) -> int:
  """Input channels of a front-end kind: 3 for 'rgb', 1 for log-mel ones."""
  return 3 if kind == "rgb" else 1


def compute_images(waveforms: list[np.ndarray], cfg, sample_rate: int, *,
                   batch_size: int = 64, progress: bool = False) -> np.ndarray:
  """Images for a list of variable-length clips, batched on the accelerator.

  Clips are sorted by length and padded per batch to a multiple of the hop
  (few distinct shapes, so few compilations).
  """
  n = len(waveforms)
  frames = time_frames(cfg, max((w.size for w in waveforms), default=0))
  fn = image_fn(cfg, sample_rate, frames)
  out = np.zeros((n, cfg.image_size, frames or cfg.image_size,
                  num_channels(cfg.kind)), np.float32)
  order = np.argsort([w.size for w in waveforms])
  bucket = cfg.hop_length * 16
  batches = range(0, n, batch_size)
  if progress:
    from tqdm import tqdm
    batches = tqdm(batches, desc="features", unit="batch")
  for start in batches:
    ids = order[start:start + batch_size]
    longest = max(waveforms[i].size for i in ids)
    pad_to = -(-longest // bucket) * bucket
    wav = np.zeros((batch_size, pad_to), np.float32)
    lengths = np.full((batch_size,), cfg.n_fft, np.int32)
    for row, i in enumerate(ids):
      wav[row, :waveforms[i].size] = waveforms[i]
      lengths[row] = waveforms[i].size
    imgs = np.asarray(fn(jnp.asarray(wav), jnp.asarray(lengths)))
    out[ids] = imgs[:len(ids)]
    del wav
    # jaxlib drops its reference to a transferred host array later, at the
    # next garbage-collector pass (its deferred decrefs run from a gc
    # callback): a young-generation pass returns the padded batch now, so
    # what a streamed load holds does not depend on when the collector runs.
    gc.collect(0)
  return out
