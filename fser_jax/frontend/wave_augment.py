"""Stage 2a: the recording's channel, simulated on waveforms on the accelerator.

Users' recordings differ from the corpora less in language than in channel:
phone calls, cheap microphones, background noise, room echo, gain, speaking
rate. This module draws those changes per example from an explicit PRNG key
and applies them to a padded batch of waveforms [B, L] with valid lengths [B],
before the front-end (features.py), so the model's images change the way a
real channel changes them. The same functions, with fixed parameters, make
the conditions of `--mode robustness` (`condition`).

The chain, in the order a recording meets them (each step with its own
probability; a step whose probability is 0 is not traced at all, so a config
without waveform augmentation is exactly the identity):

  speed   resampling by linear interpolation, factor s: duration / s and
          every frequency x s (as `sox speed`);
  reverb  FFT convolution with an exponentially decaying Gaussian-noise
          impulse response of a random RT60 (amplitude exp(-6.91 t / RT60):
          -60 dB at t = RT60), or a real response from a folder; the output
          keeps the input's RMS;
  noise   white, pink (1/f power) or excerpts of a user's noise recordings,
          scaled to a random SNR over the clip's valid samples;
  gain    a random gain in dB, then clipping at full scale (+-1);
  phone   a 300-3400 Hz FIR band-pass (scipy.signal.firwin taps, applied as
          `np.convolve(x, taps, 'same')`), down to 8 kHz, optional 8-bit
          mu-law companding (G.711), and back up with an ideal low-pass.

Everything is jit-compatible with static shapes: transforms that change
duration (speed) return new lengths and zero the samples past them.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

PHONE_BAND = (300.0, 3400.0)
PHONE_RATE = 8000
PHONE_TAPS = 255  # odd: a linear-phase band-pass with an integer delay
LN_1000 = float(np.log(1000.0))  # 60 dB in amplitude: exp(-LN_1000) = 1e-3


# --- single transforms (batch in, batch out) -----------------------------------
def valid_mask(lengths: jax.Array, n: int) -> jax.Array:
  return jnp.arange(n)[None, :] < lengths[:, None]


def fft_size(n: int) -> int:
  """The smallest even 2^a 3^b 5^c >= n: XLA:CPU's FFT of such a size is as
  fast per point as a power of two's, and the size is up to 2x smaller, so
  the FFT up to 2x faster (measured: docs/robustness.md)."""
  best = 1 << (int(n) - 1).bit_length()
  p5 = 1
  while p5 < best:
    p35 = p5
    while p35 < best:
      m = p35 * 2
      while m < n:
        m *= 2
      best = min(best, m)
      p35 *= 3
    p5 *= 5
  return best


def fft_convolve(x: jax.Array, h: jax.Array, *, shift: int = 0) -> jax.Array:
  """Linear convolution of each row of x [B, L] with h ([B, K] or [K]),
  returning L samples starting at output index `shift` (0: causal 'full'
  truncated to L; (K - 1) // 2: numpy's 'same' for odd K)."""
  l, k = x.shape[-1], h.shape[-1]
  n = fft_size(l + k - 1)
  y = jnp.fft.irfft(jnp.fft.rfft(x, n) * jnp.fft.rfft(h, n), n)
  return y[..., shift:shift + l]


def rms(x: jax.Array, lengths: jax.Array) -> jax.Array:
  """[B] RMS over each clip's valid samples."""
  m = valid_mask(lengths, x.shape[-1])
  p = jnp.sum(jnp.where(m, x * x, 0.0), -1) / jnp.maximum(lengths, 1)
  return jnp.sqrt(p)


def white_noise(key, shape) -> jax.Array:
  return jax.random.normal(key, shape, jnp.float32)


def pink_noise(key, shape) -> jax.Array:
  """Gaussian noise with power 1/f (amplitude 1/sqrt(f)), no DC."""
  n = shape[-1]
  spec = jnp.fft.rfft(white_noise(key, shape), axis=-1)
  f = jnp.arange(spec.shape[-1], dtype=jnp.float32)
  spec = spec * jnp.where(f > 0, 1.0 / jnp.sqrt(jnp.maximum(f, 1.0)), 0.0)
  return jnp.fft.irfft(spec, n, axis=-1)


def bank_excerpts(key, bank: jax.Array, batch: int, n: int) -> jax.Array:
  """[batch, n] random excerpts of a 1-D noise bank (wrapping around)."""
  start = jax.random.randint(key, (batch,), 0, bank.shape[0])
  idx = (start[:, None] + jnp.arange(n)[None, :]) % bank.shape[0]
  return bank[idx]


def add_noise(x: jax.Array, lengths: jax.Array, noise: jax.Array,
              snr_db: jax.Array) -> jax.Array:
  """x + noise scaled so that, over each clip's valid samples,
  10 log10(P_signal / P_noise) = snr_db [B]."""
  m = valid_mask(lengths, x.shape[-1])
  noise = jnp.where(m, noise, 0.0)
  scale = rms(x, lengths) / jnp.maximum(rms(noise, lengths), 1e-12) \
      * 10.0 ** (-snr_db / 20.0)
  return x + noise * scale[:, None]


def gain(x: jax.Array, gain_db: jax.Array, clip: bool = True) -> jax.Array:
  y = x * (10.0 ** (gain_db / 20.0))[:, None]
  return jnp.clip(y, -1.0, 1.0) if clip else y


def speed(x: jax.Array, lengths: jax.Array,
          factor: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Plays each clip `factor` [B] times faster: y[t] = x(t * factor), linear
  interpolation; new length floor(length / factor), at most the buffer."""
  b, n = x.shape
  new_len = jnp.minimum(jnp.floor(lengths / factor).astype(jnp.int32), n)
  pos = jnp.arange(n, dtype=jnp.float32)[None, :] * factor[:, None]
  i0 = jnp.floor(pos).astype(jnp.int32)
  frac = pos - i0
  xp = jnp.pad(x, ((0, 0), (0, 1)))
  take = lambda i: jnp.take_along_axis(xp, jnp.clip(i, 0, n), axis=1)
  y = take(i0) * (1.0 - frac) + take(i0 + 1) * frac
  y = jnp.where(valid_mask(new_len, n), y, 0.0)
  return y, new_len


def decaying_ir(key, rt60: jax.Array, ir_len: int, sample_rate: int,
                white_bank: jax.Array | None = None) -> jax.Array:
  """[B, ir_len] Gaussian noise under exp(-ln(1000) t / RT60), unit energy
  (the noise drawn anew, or excerpts of `white_bank`)."""
  t = jnp.arange(ir_len, dtype=jnp.float32) / sample_rate
  env = jnp.exp(-LN_1000 * t[None, :] / rt60[:, None])
  b = rt60.shape[0]
  noise = (white_noise(key, (b, ir_len)) if white_bank is None
           else bank_excerpts(key, white_bank, b, ir_len))
  h = noise * env
  return h / jnp.sqrt(jnp.sum(h * h, -1, keepdims=True))


def reverb(x: jax.Array, lengths: jax.Array, ir: jax.Array) -> jax.Array:
  """Causal convolution with ir [B, K], cut to each clip's length, with the
  input's RMS kept (a room changes the sound, not the recording level)."""
  y = fft_convolve(x, ir)
  y = jnp.where(valid_mask(lengths, x.shape[-1]), y, 0.0)
  return y * (rms(x, lengths) / jnp.maximum(rms(y, lengths), 1e-12))[:, None]


@functools.lru_cache(maxsize=8)
def phone_taps(sample_rate: int) -> np.ndarray:
  """The telephone band-pass: scipy.signal.firwin, Hamming window."""
  from scipy import signal
  return signal.firwin(PHONE_TAPS, PHONE_BAND, pass_zero=False,
                       fs=sample_rate).astype(np.float32)


def ideal_lowpass(x: jax.Array, cutoff: float, sample_rate: int) -> jax.Array:
  """Zeroes every FFT bin above `cutoff` (an ideal resampler's filter)."""
  n = x.shape[-1]
  spec = jnp.fft.rfft(x, axis=-1)
  f = jnp.fft.rfftfreq(n, 1.0 / sample_rate)
  return jnp.fft.irfft(jnp.where(f < cutoff, spec, 0.0), n, axis=-1)


def mu_law(x: jax.Array, mu: int = 255) -> jax.Array:
  """8-bit mu-law companding: compress, quantise to 256 levels, expand."""
  x = jnp.clip(x, -1.0, 1.0)
  c = jnp.sign(x) * jnp.log1p(mu * jnp.abs(x)) / np.log1p(mu)
  q = jnp.round((c + 1.0) / 2.0 * mu) / mu * 2.0 - 1.0
  return jnp.sign(q) * ((1.0 + mu) ** jnp.abs(q) - 1.0) / mu


def phone(x: jax.Array, lengths: jax.Array, sample_rate: int, *,
          companding: bool = True) -> jax.Array:
  """A narrow-band telephone channel: band-pass 300-3400 Hz, 8 kHz, mu-law.

  At rates that are a multiple of 8 kHz the signal is decimated to 8 kHz,
  companded there and brought back by zero insertion and an ideal low-pass
  at 4 kHz; at other rates the companding is applied at the clip's rate
  after the same 4 kHz low-pass.
  """
  y = fft_convolve(x, jnp.asarray(phone_taps(sample_rate)),
                   shift=(PHONE_TAPS - 1) // 2)
  r = sample_rate // PHONE_RATE
  if companding and sample_rate % PHONE_RATE == 0 and r > 1:
    low = mu_law(y[:, ::r])
    up = jnp.zeros_like(y).at[:, ::r].set(low * r)
    y = ideal_lowpass(up, PHONE_RATE / 2, sample_rate)
  else:
    y = ideal_lowpass(y, PHONE_RATE / 2, sample_rate)
    if companding:
      y = mu_law(y)
  return jnp.where(valid_mask(lengths, x.shape[-1]), y, 0.0)


# --- the random chain ----------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WaveAugment:
  """The `augment.wave` config block as static, hashable settings."""
  sample_rate: int
  noise_prob: float = 0.0
  noise_snr_db: tuple[float, float] = (0.0, 20.0)
  noise_kinds: tuple[str, ...] = ("white", "pink")
  phone_prob: float = 0.0
  phone_mu_law: bool = True
  gain_prob: float = 0.0
  gain_db: tuple[float, float] = (-20.0, 10.0)
  clip: bool = True
  speed_prob: float = 0.0
  speed: tuple[float, float] = (0.9, 1.1)
  reverb_prob: float = 0.0
  reverb_rt60: tuple[float, float] = (0.2, 1.0)
  real_ir_share: float = 0.5  # of reverbed clips, when an IR folder is given

  @property
  def active(self) -> bool:
    return any(p > 0 for p in (self.noise_prob, self.phone_prob,
                               self.gain_prob, self.speed_prob,
                               self.reverb_prob))

  @property
  def ir_len(self) -> int:
    return int(round(self.reverb_rt60[1] * self.sample_rate))

  @property
  def length_factor(self) -> float:
    """How much longer than the longest clip the buffer must be (speed < 1)."""
    return 1.0 / self.speed[0] if self.speed_prob > 0 else 1.0


def from_config(wcfg, sample_rate: int) -> WaveAugment:
  """A WaveAugment from the config's `augment.wave`."""
  kinds = tuple(wcfg.noise_kinds) + (("folder",) if wcfg.noise_dir else ())
  return WaveAugment(
      sample_rate=sample_rate, noise_prob=float(wcfg.noise_prob),
      noise_snr_db=tuple(map(float, wcfg.noise_snr_db)),
      noise_kinds=kinds, phone_prob=float(wcfg.phone_prob),
      phone_mu_law=bool(wcfg.phone_mu_law),
      gain_prob=float(wcfg.gain_prob),
      gain_db=tuple(map(float, wcfg.gain_db)),
      clip=bool(wcfg.clip), speed_prob=float(wcfg.speed_prob),
      speed=tuple(map(float, wcfg.speed)),
      reverb_prob=float(wcfg.reverb_prob),
      reverb_rt60=tuple(map(float, wcfg.reverb_rt60)),
      real_ir_share=float(wcfg.real_ir_share))


BANK_SECONDS = 16.0


def noise_banks(sample_rate: int, seed: int = 0) -> dict[str, np.ndarray]:
  """White and pink noise banks of BANK_SECONDS, drawn once: training takes
  random excerpts of them, a copy per step, where a fresh Gaussian draw of
  every sample each step is far slower (measured: docs/robustness.md)."""
  n = int(BANK_SECONDS * sample_rate)
  key = jax.random.key(seed)
  white = np.asarray(white_noise(jax.random.fold_in(key, 0), (1, n)))[0]
  pink = np.asarray(pink_noise(jax.random.fold_in(key, 1), (1, n)))[0]
  return {"white": white, "pink": pink / pink.std()}


def _some(key, p: float, wav, lengths, fn):
  """Applies `fn(wav_sub, lengths_sub) -> wav_sub` to each example with
  probability p, computing it for ceil(p B) rows only (static shapes: a
  random subset of that size, each of its rows kept with probability
  p B / ceil(p B)); the cost of a step scales with its probability."""
  b = wav.shape[0]
  k = min(b, int(np.ceil(p * b)))
  k_perm, k_flag = jax.random.split(key)
  rows = jax.random.permutation(k_perm, b)[:k]
  sub, sub_len = wav[rows], lengths[rows]
  flag = jax.random.bernoulli(k_flag, p * b / k, (k,))
  out = jnp.where(flag[:, None], fn(sub, sub_len), sub)
  return wav.at[rows].set(out)


def augment(key: jax.Array, wav: jax.Array, lengths: jax.Array,
            cfg: WaveAugment, banks: dict | None = None
            ) -> tuple[jax.Array, jax.Array]:
  """The random chain on a batch: per-example draws from `key`.

  Args:
    wav: [B, L] float waveforms, zero past `lengths`.
    banks: noise sources on the device: 'white' and 'pink' (noise_banks;
      drawn anew when absent), 'noise' [M] the user's recordings end to end
      (kind 'folder'), 'ir' [K, cfg.ir_len] the user's impulse responses.

  Returns:
    (wav [B, L], lengths [B]).
  """
  if not cfg.active:
    return wav, lengths
  banks = banks or {}
  b, n = wav.shape
  wav = wav.astype(jnp.float32)
  keys = iter(jax.random.split(key, 16))
  u = lambda lo_hi, m=b: jax.random.uniform(next(keys), (m,),
                                            minval=lo_hi[0], maxval=lo_hi[1])
  source = lambda kind, k, m: (
      bank_excerpts(k, banks[kind], m, n) if kind in banks else
      white_noise(k, (m, n)) if kind == "white" else pink_noise(k, (m, n)))

  if cfg.speed_prob > 0:
    flag = jax.random.bernoulli(next(keys), cfg.speed_prob, (b,))
    factor = jnp.where(flag, u(cfg.speed), 1.0)
    wav, lengths = speed(wav, lengths, factor)
  if cfg.reverb_prob > 0:
    k_ir, k_real, k_pick = next(keys), next(keys), next(keys)

    def room(x, lens):
      m = x.shape[0]
      ir = decaying_ir(k_ir, u(cfg.reverb_rt60, m), cfg.ir_len,
                       cfg.sample_rate, banks.get("white"))
      if "ir" in banks:
        real = banks["ir"][jax.random.randint(k_pick, (m,), 0,
                                              banks["ir"].shape[0])]
        use = jax.random.bernoulli(k_real, cfg.real_ir_share, (m,))
        ir = jnp.where(use[:, None], real, ir)
      return reverb(x, lens, ir)
    wav = _some(next(keys), cfg.reverb_prob, wav, lengths, room)
  if cfg.noise_prob > 0:
    kinds = [k for k in cfg.noise_kinds if k != "folder"]
    if "folder" in cfg.noise_kinds and "noise" in banks:
      kinds.append("noise")
    k_choice, k_src, k_snr = next(keys), next(keys), next(keys)

    def noisy(x, lens):
      m = x.shape[0]
      choice = jax.random.randint(k_choice, (m,), 0, len(kinds))
      noise = jnp.zeros_like(x)
      for i, kind in enumerate(kinds):
        noise = jnp.where((choice == i)[:, None],
                          source(kind, jax.random.fold_in(k_src, i), m), noise)
      snr = jax.random.uniform(k_snr, (m,), minval=cfg.noise_snr_db[0],
                               maxval=cfg.noise_snr_db[1])
      return add_noise(x, lens, noise, snr)
    wav = _some(next(keys), cfg.noise_prob, wav, lengths, noisy)
  if cfg.gain_prob > 0:
    flag = jax.random.bernoulli(next(keys), cfg.gain_prob, (b,))
    g = jnp.where(flag, u(cfg.gain_db), 0.0)
    wav = jnp.where(flag[:, None], gain(wav, g, cfg.clip), wav)
  if cfg.phone_prob > 0:
    wav = _some(next(keys), cfg.phone_prob, wav, lengths,
                lambda x, lens: phone(x, lens, cfg.sample_rate,
                                      companding=cfg.phone_mu_law))
  return wav, lengths


# --- fixed conditions (--mode robustness) ---------------------------------------
# name -> the chain's steps with fixed parameters, applied in this order.
CONDITIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "clean": (),
    "snr_20": (("white", 20.0),),
    "snr_10": (("white", 10.0),),
    "snr_5": (("white", 5.0),),
    "snr_0": (("white", 0.0),),
    "pink_10": (("pink", 10.0),),
    "phone": (("phone", 1.0),),
    "reverb_0.3": (("reverb", 0.3),),
    "reverb_0.6": (("reverb", 0.6),),
    "reverb_1.0": (("reverb", 1.0),),
    "gain_-20": (("gain", -20.0),),
    "gain_+10": (("gain", 10.0),),
    "speed_0.9": (("speed", 0.9),),
    "speed_1.1": (("speed", 1.1),),
    "phone+snr_10": (("white", 10.0), ("phone", 1.0)),
}


def condition_length_factor(name: str) -> float:
  return max([1.0] + [1.0 / v for s, v in CONDITIONS[name] if s == "speed"])


@functools.partial(jax.jit, static_argnames=("name", "sample_rate"))
def condition(keys: jax.Array, wav: jax.Array, lengths: jax.Array, *,
              name: str, sample_rate: int) -> tuple[jax.Array, jax.Array]:
  """One named condition of CONDITIONS on a batch [B, L].

  Args:
    keys: [B] one key per clip: a clip's noise and room depend on its key
      and padded length only, never on the other clips of the batch.
  """
  if name not in CONDITIONS:
    raise KeyError(f"unknown condition {name!r}; known: {', '.join(CONDITIONS)}")
  b, n = wav.shape
  wav = wav.astype(jnp.float32)
  full = lambda v: jnp.full((b,), v, jnp.float32)
  per_row = lambda fn, i: jax.vmap(
      lambda k: fn(jax.random.fold_in(k, i)))(keys)
  for i, (step, value) in enumerate(CONDITIONS[name]):
    if step == "speed":
      wav, lengths = speed(wav, lengths, full(value))
    elif step == "reverb":
      ir_len = int(round(value * sample_rate))
      ir = per_row(lambda k: decaying_ir(k, jnp.full((1,), value), ir_len,
                                         sample_rate)[0], i)
      wav = reverb(wav, lengths, ir)
    elif step in ("white", "pink"):
      gen = white_noise if step == "white" else pink_noise
      src = per_row(lambda k: gen(k, (1, n))[0], i)
      wav = add_noise(wav, lengths, src, full(value))
    elif step == "gain":
      wav = gain(wav, full(value))
    elif step == "phone":
      wav = phone(wav, lengths, sample_rate)
  return wav, lengths


# --- the user's folders ----------------------------------------------------------
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aiff", ".aif")


def _audio_files(folder: str, key: str) -> list[str]:
  from fser_jax.errors import DataError
  path = os.path.expanduser(folder)
  if not os.path.isdir(path):
    raise DataError(f"config augment.wave.{key}={folder!r}: no such folder")
  files = sorted(os.path.join(root, f) for root, _, names in os.walk(path)
                 for f in names if f.lower().endswith(AUDIO_EXTENSIONS))
  if not files:
    raise DataError(f"config augment.wave.{key}={folder!r}: no audio files "
                    f"({', '.join(AUDIO_EXTENSIONS)}) in it")
  return files


def load_banks(wcfg, sample_rate: int):
  """(noise bank [M] or None, impulse responses [K, ir_len] or None) from
  `augment.wave.noise_dir` / `ir_dir`, read once at the run's rate.

  Noise recordings are joined end to end (each standardised to unit RMS, so
  a loud file does not dominate); training draws random excerpts. Impulse
  responses start 1 ms before their peak (the direct sound), are cut or
  zero-padded to the synthetic responses' length and scaled to unit energy.
  """
  from fser_jax.frontend import audio as audio_lib
  settings = from_config(wcfg, sample_rate)
  noise = irs = None
  if wcfg.noise_dir:
    parts = [audio_lib.load_audio(f, sample_rate)
             for f in _audio_files(wcfg.noise_dir, "noise_dir")]
    noise = np.concatenate([p / np.sqrt(np.mean(p ** 2)) for p in parts])
    noise = noise.astype(np.float32)
  if wcfg.ir_dir:
    out = []
    for f in _audio_files(wcfg.ir_dir, "ir_dir"):
      h = audio_lib.load_audio(f, sample_rate)
      start = max(int(np.argmax(np.abs(h))) - sample_rate // 1000, 0)
      h = h[start:start + settings.ir_len]
      h = np.pad(h, (0, settings.ir_len - h.size))
      out.append(h / np.sqrt(np.sum(h ** 2)))
    irs = np.stack(out).astype(np.float32)
  return noise, irs
