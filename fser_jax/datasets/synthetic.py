"""A procedurally synthesised emotional-speech corpus, the embedded default data.

Source-filter additive synthesis: a glottal source of harmonics of a pitch
contour, shaped by formant resonances of a vowel sequence (the "sentence"),
syllable envelopes, breath noise and a constant recording-noise floor. Emotions
differ as the SER literature describes them (pitch level and range, speaking
rate, loudness, voice quality: spectral tilt, breathiness, jitter/tremor,
contour shape); speakers differ in pitch, vocal-tract length (formant scale),
rate and loudness; two "languages" use different vowel (formant) inventories
and syllable counts.

Corpus layout: 12 speakers (6 per language, 3 female and 3 male each), 8 FSER
emotions, `utterances` clips per speaker and emotion (8 by default: 768 clips,
about 1.6 s each at 16 kHz). Deterministic from the seed: every clip has its
own generator seeded by (seed, speaker, emotion, utterance).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fser_jax.datasets.corpora import FSER_CLASSES

LANGUAGES = {
    # Vowel inventories as (F1, F2, F3) in Hz for an adult male vocal tract.
    "alpha": [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240),
              (530, 1840, 2480), (570, 840, 2410)],
    "beta": [(660, 1720, 2410), (390, 1990, 2550), (440, 1020, 2240),
             (490, 1350, 2500), (310, 1600, 2200), (640, 1190, 2390)],
}

# Emotion prosody, relative to a speaker's neutral voice:
# f0 scale, pitch range (semitones), rate, loudness (dB), breath noise,
# spectral tilt (dB/octave, more negative = darker), jitter, tremor depth,
# contour ('fall', 'rise', 'risefall', 'flat', 'fallrise').
EMOTIONS = {
    "anger": dict(f0=1.30, range=7.0, rate=1.20, loud=9.0, breath=0.02,
                  tilt=-3.0, jitter=0.010, tremor=0.0, contour="fall"),
    "anxiety": dict(f0=1.50, range=3.0, rate=1.40, loud=1.0, breath=0.25,
                    tilt=-9.0, jitter=0.020, tremor=0.06, contour="flat"),
    "calm": dict(f0=0.90, range=1.0, rate=0.75, loud=-7.0, breath=0.12,
                 tilt=-13.0, jitter=0.003, tremor=0.0, contour="flat"),
    "disgust": dict(f0=0.92, range=5.0, rate=0.80, loud=2.0, breath=0.05,
                    tilt=-8.0, jitter=0.050, tremor=0.0, contour="fallrise"),
    "happiness": dict(f0=1.35, range=9.0, rate=1.15, loud=5.0, breath=0.04,
                      tilt=-5.0, jitter=0.005, tremor=0.0,
                      contour="risefall"),
    "neutral": dict(f0=1.00, range=2.5, rate=1.00, loud=0.0, breath=0.04,
                    tilt=-10.0, jitter=0.004, tremor=0.0, contour="fall"),
    "sadness": dict(f0=0.82, range=1.5, rate=0.65, loud=-9.0, breath=0.30,
                    tilt=-15.0, jitter=0.008, tremor=0.02, contour="fall"),
    "surprise": dict(f0=1.45, range=11.0, rate=1.05, loud=5.0, breath=0.06,
                     tilt=-6.0, jitter=0.005, tremor=0.0, contour="rise"),
}
assert set(EMOTIONS) == set(FSER_CLASSES)

# The embedded "your recordings" set (`user_recordings`): a third language,
# other speakers, a phone channel with noise, 5 of FSER's emotions under the
# user's own names (fear for anxiety), and less acted (weaker) emotion.
USER_LANGUAGE = ("gamma", [(700, 1220, 2600), (350, 2050, 2900),
                           (420, 900, 2350), (580, 1500, 2550),
                           (300, 1300, 2300)])
USER_LABELS = {"anger": "angry", "happiness": "happy", "sadness": "sad",
               "anxiety": "fear", "neutral": "neutral"}


@dataclasses.dataclass(frozen=True)
class Speaker:
  id: str
  language: str
  gender: str
  f0: float  # neutral mean pitch, Hz
  formant_scale: float
  rate: float
  loudness: float  # dB


def speakers(seed: int = 0, per_language: int = 6,
             languages=tuple(LANGUAGES)) -> list[Speaker]:
  rng = np.random.default_rng([seed, 1])
  out = []
  for lang in languages:
    for i in range(per_language):
      gender = "female" if i < per_language // 2 else "male"
      f0 = rng.uniform(185, 235) if gender == "female" else rng.uniform(100, 135)
      scale = (1.15 if gender == "female" else 1.0) * rng.uniform(0.95, 1.05)
      out.append(Speaker(f"{lang}_{gender[0]}{i % (per_language // 2) + 1}",
                         lang, gender, f0, scale, rng.uniform(0.9, 1.1),
                         rng.uniform(-3, 3)))
  return out


def _vowels(language: str):
  return USER_LANGUAGE[1] if language == USER_LANGUAGE[0] else \
      LANGUAGES[language]


def sentences(language: str, n: int = 8, seed: int = 0) -> list[list[int]]:
  """`n` fixed vowel sequences (the language's "texts")."""
  rng = np.random.default_rng([seed, 2, len(language), ord(language[0])])
  n_vowels = len(_vowels(language))
  lo, hi = (5, 8) if language == "alpha" else (6, 10)
  return [list(rng.integers(0, n_vowels, rng.integers(lo, hi)))
          for _ in range(n)]


def _contour(shape: str, t: np.ndarray) -> np.ndarray:
  """Pitch excursion in [-1, 1] over normalised time t in [0, 1]."""
  return {"fall": 0.5 - t, "rise": t * t * 2 - 0.5,
          "risefall": np.sin(np.pi * t) - 0.3, "flat": 0.0 * t,
          "fallrise": np.cos(2 * np.pi * t) * 0.5}[shape]


def synthesize(spk: Speaker, emotion: str, text: list[int], seed,
               sample_rate: int = 16000, strength: float = 1.0) -> np.ndarray:
  """One utterance as float32 in [-1, 1]. `strength` < 1 moves every prosodic
  parameter of the emotion toward neutral (less acted speech)."""
  rng = np.random.default_rng(seed)
  e = {k: (v if isinstance(v, str) else
           EMOTIONS["neutral"][k] + strength * (v - EMOTIONS["neutral"][k]))
       for k, v in EMOTIONS[emotion].items()}
  jitter = lambda s: 1.0 + rng.uniform(-s, s)
  syll = 0.22 / (e["rate"] * spk.rate * jitter(0.08))
  pause = 0.12
  n_syll = len(text)
  dur = 2 * pause + n_syll * syll
  n = int(dur * sample_rate)
  t = np.arange(n) / sample_rate
  u = np.clip((t - pause) / (n_syll * syll), 0, 1)

  # Pitch: level * contour excursion (semitones) * jitter * tremor.
  f0 = spk.f0 * e["f0"] * jitter(0.05)
  semis = e["range"] * jitter(0.15) * _contour(e["contour"], u)
  # Word-level accents: a small bump on every other syllable.
  accent = 0.3 * e["range"] / 4 * np.sin(np.pi * (u * n_syll % 2) / 2)
  f0_t = f0 * 2 ** ((semis + accent) / 12)
  f0_t *= 1 + e["tremor"] * np.sin(2 * np.pi * 7.0 * t)
  # Jitter: slowly varying random pitch perturbation.
  knots = rng.standard_normal(int(dur * 60) + 2)
  f0_t *= 1 + e["jitter"] * np.interp(t * 60, np.arange(knots.size), knots)
  phase = 2 * np.pi * np.cumsum(f0_t) / sample_rate

  # Formant tracks: each syllable's vowel, smoothly interpolated.
  vowels = np.array([_vowels(spk.language)[v] for v in text], np.float64)
  centres = (np.arange(n_syll) + 0.5) / n_syll
  formants = np.stack([np.interp(u, centres, vowels[:, k]) for k in range(3)],
                      axis=-1) * spk.formant_scale  # [n, 3]
  bandwidths = np.array([80.0, 100.0, 150.0])

  # Additive synthesis: harmonic k's amplitude from the formant envelope and
  # spectral tilt, computed at a control rate of 1 ms and held in between.
  n_harm = int(min(48, 0.45 * sample_rate / f0_t.min()))
  hop = sample_rate // 1000
  ctrl = slice(0, n, hop)
  k = np.arange(1, n_harm + 1, dtype=np.float32)
  fk = f0_t[ctrl, None].astype(np.float32) * k  # [nc, K]
  env = np.sum(1.0 / (1.0 + ((fk[..., None] - formants[ctrl, None, :])
                             / bandwidths) ** 2), axis=-1)
  tilt = 10 ** (e["tilt"] * np.log2(np.maximum(fk, 50) / 100) / 20)
  amp = np.where(fk < 0.48 * sample_rate, env * tilt, 0).astype(np.float32)
  amp = np.repeat(amp, hop, axis=0)[:n]
  out = np.sum(amp * np.sin(phase[:, None].astype(np.float32) * k), axis=-1)
  out = out.astype(np.float64)

  # Syllable envelopes with short gaps (consonant closures) between them.
  pos = (u * n_syll) % 1.0
  env = np.sin(np.pi * np.clip(pos, 0, 1)) ** 0.6
  voiced = ((t >= pause) & (t <= dur - pause)).astype(float)
  out *= env * voiced
  out /= np.max(np.abs(out)) + 1e-9
  # Breath: noise shaped by the same syllable envelope, plus fricative bursts
  # at syllable onsets.
  noise = np.diff(rng.standard_normal(n + 1))
  burst = np.exp(-((pos * syll) / 0.02)) * voiced
  out += (e["breath"] * env * voiced + 0.15 * burst) * noise
  gain = 10 ** ((e["loud"] + spk.loudness + rng.uniform(-1.5, 1.5) - 12) / 20)
  out *= gain
  # Recording-noise floor at a constant level: loudness shows as SNR.
  out += 10 ** (-55 / 20) * rng.standard_normal(n)
  return np.clip(out, -1, 1).astype(np.float32)


def items(seed: int = 0, utterances: int = 8) -> list[tuple[int, int, int]]:
  """(speaker index, emotion index, utterance) of every clip, in order."""
  return [(si, ei, k) for si in range(len(speakers(seed)))
          for ei in range(len(FSER_CLASSES)) for k in range(utterances)]


def clip(seed: int, item: tuple[int, int, int], sample_rate: int = 16000):
  """(key, metadata dict, waveform) of one clip: each clip depends on its
  own (seed, speaker, emotion, utterance) only, so clips can be made in any
  order, on any worker."""
  si, ei, k = item
  spk = speakers(seed)[si]
  emotion = FSER_CLASSES[ei]
  texts = sentences(spk.language, seed=seed)
  text_id = (k + ei) % len(texts)
  wav = synthesize(spk, emotion, texts[text_id], [seed, si, ei, k],
                   sample_rate)
  fname = f"{spk.id}/{emotion}_{k:02d}.wav"
  return fname, dict(label=emotion, speaker=f"synth_{spk.id}",
                     gender=spk.gender, corpus=f"synth_{spk.language}",
                     language=spk.language, filename=fname,
                     text_id=f"{spk.language}_s{text_id}",
                     intensity=""), wav


def phone_channel(wav: np.ndarray, sample_rate: int, snr_db: float,
                  rng: np.random.Generator) -> np.ndarray:
  """A telephone line: band-pass 300-3400 Hz, 8 kHz, additive noise at
  `snr_db`. Returns 8 kHz float32 samples."""
  from scipy import signal
  sos = signal.butter(4, [300, 3400], btype="bandpass", fs=sample_rate,
                      output="sos")
  x = signal.sosfiltfilt(sos, wav)
  x = signal.resample_poly(x, 8000, sample_rate)
  noise = rng.standard_normal(x.size)
  p_sig = np.mean(x ** 2) + 1e-12
  noise *= np.sqrt(p_sig / 10 ** (snr_db / 10) / np.mean(noise ** 2))
  x = x + noise
  return (x / max(1.0, np.max(np.abs(x)) / 0.99)).astype(np.float32)


def write_user_recordings(out_dir: str, *, seed: int = 1, utterances: int = 20,
                          strength: float = 0.7, snr_db=(12.0, 24.0)) -> str:
  """Writes the embedded stand-in for a user's recordings, which look nothing
  like the training corpora: 6 speakers of a third language ("gamma"), a
  phone channel (300-3400 Hz, 8 kHz WAV files) with noise at 12-24 dB SNR,
  weaker emotion (prosody 70% of the way from neutral), and 5 of FSER's
  emotions under the user's own names (angry, happy, sad, fear, neutral).
  600 clips by default, as OUT/<label>/<speaker>_<nn>.wav, plus
  OUT/manifest.csv (path,label,speaker,gender). Returns the manifest path."""
  import os
  import soundfile as sf
  from fser_jax.datasets import files
  os.makedirs(out_dir, exist_ok=True)
  rows = []
  spks = speakers(seed, languages=(USER_LANGUAGE[0],))
  for si, spk in enumerate(spks):
    texts = sentences(spk.language, seed=seed)
    for ei, (emotion, label) in enumerate(USER_LABELS.items()):
      os.makedirs(os.path.join(out_dir, label), exist_ok=True)
      for k in range(utterances):
        wav = synthesize(spk, emotion, texts[(k + ei) % len(texts)],
                         [seed, 100 + si, ei, k], 16000, strength=strength)
        rng = np.random.default_rng([seed, 200 + si, ei, k])
        phone = phone_channel(wav, 16000, rng.uniform(*snr_db), rng)
        rel = f"{label}/{spk.id}_{k:02d}.wav"
        sf.write(os.path.join(out_dir, rel), phone, 8000, subtype="PCM_16")
        rows.append((rel, label, spk.id, spk.gender))
  return files.write_manifest(out_dir, rows)

