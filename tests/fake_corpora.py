"""Tiny stand-ins of the four corpora in their real layouts, for tests.

`write_dummy_data(dir)` writes the committed `dummy_data/` (a few clips per
corpus plus files the builder must skip: a corrupt wav, a RAVDESS song, a
badly named file). `write_full_layout(dir)` writes one tiny clip for every
file name of the complete corpora (3043 clips), from which `fser/all` must
reproduce the paper's Table 1 exactly.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import soundfile as sf

from fser_jax.datasets import corpora

# Each corpus's native rate (corpora.md); the builder resamples to 16 kHz.
RATES = {"emodb": 16000, "emovo": 48000, "savee": 44100, "ravdess": 48000}
EMODB_COUNTS = {"W": 127, "L": 81, "N": 79, "F": 71, "A": 69, "T": 62, "E": 46}


def _tone(path: str, rate: int, seconds: float, seed: int) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  rng = np.random.default_rng(seed)
  t = np.arange(int(rate * seconds)) / rate
  f0 = 100 + 200 * rng.random()
  wav = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)
  sf.write(path, wav.astype(np.float32), rate, subtype="PCM_16")


def emodb_names() -> list[str]:
  """535 EmoDB names with the real per-emotion counts (speakers, texts and
  versions cycled: real names differ, counts and speakers are what matter)."""
  speakers = sorted(corpora.EMODB_MALE | corpora.EMODB_FEMALE)
  texts = sorted(corpora.EMODB_TEXTS)
  names, i = [], 0
  for emo, count in EMODB_COUNTS.items():
    for k in range(count):
      spk, text = speakers[i % 10], texts[(i // 10) % 10]
      names.append(f"wav/{spk}{text}{emo}{'abcdef'[k // 100 % 6]}.wav")
      i += 1
  assert len(set(names)) == len(names) == 535, len(set(names))
  return names


def emovo_names() -> list[str]:
  return [f"EMOVO/{spk}/{emo}-{spk}-{sent}.wav"
          for spk in sorted(corpora.EMOVO_SPEAKERS)
          for emo in sorted(corpora.EMOVO_EMOTIONS)
          for sent in sorted(corpora.EMOVO_SENTENCES)]


def savee_names(flat: bool = False) -> list[str]:
  names = []
  for spk in sorted(corpora.SAVEE_SPEAKERS):
    for code in sorted(corpora.SAVEE_EMOTIONS):
      for k in range(1, (30 if code == "n" else 15) + 1):
        names.append(f"{spk}_{code}{k:02d}.wav" if flat
                     else f"AudioData/{spk}/{code}{k:02d}.wav")
  return names


def ravdess_names() -> list[str]:
  names = []
  for actor in range(1, 25):
    for emo, inten, stmt, rep in itertools.product(
        sorted(corpora.RAVDESS_EMOTIONS), ("01", "02"), ("01", "02"),
        ("01", "02")):
      if emo == "01" and inten == "02":
        continue  # neutral has no strong intensity
      names.append(f"Actor_{actor:02d}/03-01-{emo}-{inten}-{stmt}-{rep}-"
                   f"{actor:02d}.wav")
  return names


FULL = {"emodb": emodb_names, "emovo": emovo_names, "savee": savee_names,
        "ravdess": ravdess_names}


def write_full_layout(root: str, seconds: float = 0.05) -> None:
  """Every clip name of the four complete corpora, as tiny tones."""
  for corpus, names in FULL.items():
    for i, name in enumerate(names()):
      _tone(os.path.join(root, corpus, name), RATES[corpus], seconds, i)


DUMMY = {
    "emodb": ["wav/03a01Wa.wav", "wav/08b02La.wav", "wav/11a04Tb.wav",
              "wav/16b10Ab.wav"],
    "emovo": ["EMOVO/f1/dis-f1-b1.wav", "EMOVO/m2/pau-m2-n3.wav",
              "EMOVO/f3/sor-f3-l2.wav"],
    "savee": ["AudioData/DC/a01.wav", "AudioData/JE/sa03.wav",
              "AudioData/KL/su12.wav", "JK_n23.wav"],
    "ravdess": ["Actor_01/03-01-05-01-01-01-01.wav",
                "Actor_12/03-01-06-02-02-01-12.wav",
                "Actor_24/03-01-02-01-01-02-24.wav"],
}
# Files the builder must skip, and report.
DUMMY_BAD = {
    "emodb": {"wav/03a01Xa.wav": "tone"},  # unknown emotion letter
    "emovo": {"EMOVO/f2/gio-f2-b2.wav": "corrupt"},
    "savee": {"AudioData/DC/x01.wav": "tone"},  # unknown emotion code
    "ravdess": {"Actor_01/03-02-05-01-01-01-01.wav": "tone",  # song
                "Actor_02/01-01-05-01-01-01-02.wav": "tone"},  # audio-video
}


def write_dummy_data(root: str) -> None:
  for corpus, names in DUMMY.items():
    for i, name in enumerate(names):
      _tone(os.path.join(root, corpus, name), RATES[corpus], 0.1, i)
    for name, kind in DUMMY_BAD[corpus].items():
      path = os.path.join(root, corpus, name)
      if kind == "corrupt":
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
          f.write(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
      else:
        _tone(path, RATES[corpus], 0.1, 99)


if __name__ == "__main__":
  write_dummy_data(os.path.join(os.path.dirname(__file__), "dummy_data"))
