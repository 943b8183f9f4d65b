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

# Each corpus's native rate (corpora.md); the builder resamples to 16 kHz.
RATES = {"emodb": 16000, "emovo": 48000, "savee": 44100, "ravdess": 48000}
# The complete corpora's codes, from ../shared/corpora.md (written out here,
# not read from the registry under test).
EMODB_COUNTS = {"W": 127, "L": 81, "N": 79, "F": 71, "A": 69, "T": 62, "E": 46}
EMODB_SPEAKERS = ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")
EMODB_TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09",
               "b10")
EMOVO_SPEAKERS = ("f1", "f2", "f3", "m1", "m2", "m3")
EMOVO_EMOTIONS = ("dis", "gio", "neu", "pau", "rab", "sor", "tri")
EMOVO_SENTENCES = ("b1", "b2", "b3", "d1", "d2", "l1", "l2", "l3", "l4", "n1",
                   "n2", "n3", "n4", "n5")
SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
SAVEE_CODES = ("a", "d", "f", "h", "n", "sa", "su")
RAVDESS_EMOTIONS = ("01", "02", "03", "04", "05", "06", "07", "08")


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
  speakers, texts = EMODB_SPEAKERS, EMODB_TEXTS
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
          for spk in EMOVO_SPEAKERS for emo in EMOVO_EMOTIONS
          for sent in EMOVO_SENTENCES]


def savee_names(flat: bool = False) -> list[str]:
  names = []
  for spk in SAVEE_SPEAKERS:
    for code in SAVEE_CODES:
      for k in range(1, (30 if code == "n" else 15) + 1):
        names.append(f"{spk}_{code}{k:02d}.wav" if flat
                     else f"AudioData/{spk}/{code}{k:02d}.wav")
  return names


def ravdess_names() -> list[str]:
  names = []
  for actor in range(1, 25):
    for emo, inten, stmt, rep in itertools.product(
        RAVDESS_EMOTIONS, ("01", "02"), ("01", "02"),
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


# --- the twelve more corpora (fser_jax/datasets/corpora.py) ---------------------
# Each corpus: its native rate, its good files with what the builder must
# read from them (label, speaker, gender[, extra checks]), written by hand
# from the corpus's documented layout, and the files it must skip.
MORE_RATES = {"aesdd": 44100, "crema_d": 16000, "tess": 24414, "cafe": 48000,
              "subesco": 48000, "shemo": 44100, "urdu": 44100, "jl": 44100,
              "emov_db": 44100, "esd": 16000, "mesd": 48000, "oreau": 44100}
_AESDD_TOP = "Acted Emotional Speech Dynamic Database/"
MORE_GOOD = {
    "aesdd": {
        _AESDD_TOP + "anger/a01 (1).wav": ("anger", "aesdd_1", ""),
        _AESDD_TOP + "disgust/d05 (3).wav": ("disgust", "aesdd_3", ""),
        _AESDD_TOP + "fear/f12 (2).wav": ("fear", "aesdd_2", ""),
        _AESDD_TOP + "happiness/h20 (5).wav": ("happiness", "aesdd_5", ""),
        _AESDD_TOP + "sadness/s03 (4).wav": ("sadness", "aesdd_4", ""),
    },
    "crema_d": {
        "AudioWAV/1001_DFA_ANG_XX.wav": ("anger", "crema_d_1001", "male",
                                         {"intensity": "unspecified"}),
        "AudioWAV/1002_IEO_HAP_HI.wav": ("happiness", "crema_d_1002", "female",
                                         {"intensity": "high"}),
        "AudioWAV/1091_WSI_SAD_LO.wav": ("sadness", "crema_d_1091", "",
                                         {"intensity": "low"}),
    },
    "tess": {
        "TESS Toronto emotional speech set data/OAF_angry/OAF_back_angry.wav":
            ("anger", "tess_OAF", "female"),
        "TESS Toronto emotional speech set data/YAF_pleasant_surprised/"
        "YAF_bath_ps.wav": ("pleasant surprise", "tess_YAF", "female"),
        "TESS Toronto emotional speech set data/yaf_Fear/YAF_chair_fear.wav":
            ("fear", "tess_YAF", "female"),
        "TESS Toronto emotional speech set data/OAF_Neutral/OAF_dog_neutral.wav":
            ("neutral", "tess_OAF", "female"),
    },
    "cafe": {
        "Colère/Faible/01-C-1-1.wav": ("anger", "cafe_01", "",
                                       {"intensity": "weak"}),
        "Joie/Fort/02-J-2-3.wav": ("happiness", "cafe_02", "",
                                   {"intensity": "strong"}),
        "Neutre/03-N-1-2.wav": ("neutral", "cafe_03", "", {"intensity": ""}),
    },
    "subesco": {
        "M_01_TAREQ_S_10_ANGRY_1.wav": ("anger", "subesco_M01", "male"),
        "F_05_RINA_S_3_SURPRISE_5.wav": ("surprise", "subesco_F05", "female"),
        "F_01_MITU_S_7_NEUTRAL_2.wav": ("neutral", "subesco_F01", "female"),
    },
    "shemo": {
        "female/F21N23.wav": ("neutral", "shemo_F21", "female"),
        "male/M03A01.wav": ("anger", "shemo_M03", "male"),
        "male/M10W05.wav": ("surprise", "shemo_M10", "male"),
    },
    "urdu": {
        "Angry/SM20_F8_A012.wav": ("anger", "urdu_SM20", "male"),
        "Happy/SF1_F2_H001.wav": ("happiness", "urdu_SF1", "female"),
        "Neutral/SM5_F10_N003.wav": ("neutral", "urdu_SM5", "male"),
        "Sad/SF3_F1_S100.wav": ("sadness", "urdu_SF3", "female"),
    },
    "jl": {
        "Raw JL corpus/male1_angry_1a_1.wav": ("anger", "jl_male1", "male"),
        "Raw JL corpus/female2_excited_10b_2.wav": ("excitement", "jl_female2",
                                                    "female"),
        "Raw JL corpus/female1_sad_3a_1.wav": ("sadness", "jl_female1",
                                               "female"),
    },
    "emov_db": {
        "bea_Amused/amused_1-15_0001.wav": ("amusement", "emov_db_bea",
                                           "female"),
        "sam_Sleepy/sleepy_1-28_0002.wav": ("sleepiness", "emov_db_sam",
                                            "male"),
        "josh_Neutral/neutral_337-364_0337.wav": ("neutral", "emov_db_josh",
                                                  "male"),
    },
    "esd": {
        "Emotional Speech Dataset (ESD)/0001/Angry/0001_000351.wav":
            ("anger", "esd_0001", "", {"language": "mandarin"}),
        "Emotional Speech Dataset (ESD)/0011/Surprise/train/0011_001400.wav":
            ("surprise", "esd_0011", "", {"language": "english"}),
        "Emotional Speech Dataset (ESD)/0015/Neutral/0015_000001.wav":
            ("neutral", "esd_0015", "", {"language": "english"}),
    },
    "mesd": {
        "Mexican Emotional Speech Database (MESD)/Anger_C_A_abajo.wav":
            ("anger", "", ""),
        "Mexican Emotional Speech Database (MESD)/Fear_F_B_hola.wav":
            ("fear", "", "female"),
        "Mexican Emotional Speech Database (MESD)/Happiness_M_A_arriba.wav":
            ("happiness", "", "male"),
    },
    "oreau": {
        "Oreau/10a02Ja.wav": ("happiness", "oreau_10", ""),
        "Oreau/03b10Ca.wav": ("anger", "oreau_03", ""),
        "Oreau/21a05N.wav": ("neutral", "oreau_21", ""),
    },
}
# Files the build must skip and name: a broken file, a name the corpus does
# not use, a clip filed in the wrong folder. ('corrupt' or 'tone'.)
MORE_BAD = {
    "aesdd": {_AESDD_TOP + "sadness/s07 (2).wav": "corrupt",
              _AESDD_TOP + "anger/d02 (1).wav": "tone",
              _AESDD_TOP + "fear/f1 (1).wav": "tone"},
    "crema_d": {"AudioWAV/1001_XYZ_ANG_XX.wav": "tone",
                "AudioWAV/1002_TIE_NEU_XX.wav": "corrupt"},
    "tess": {"OAF_Sad/OAF_dog_sadd.wav": "tone",
             "YAF_sad/YAF_bite_sad.wav": "corrupt"},
    "cafe": {"Peur/Fort/13-P-2-1.wav": "tone",
             "Tristesse/Faible/04-T-1-4.wav": "corrupt"},
    "subesco": {"M_01_TAREQ_S_10_BORED_1.wav": "tone",
                "F_02_MIM_S_1_SAD_2.wav": "corrupt"},
    "shemo": {"male/F02H01.wav": "tone", "female/F01S02.wav": "corrupt"},
    "urdu": {"Sad/SM1_F1_A001.wav": "tone", "Angry/SF2_F3_A004.wav": "corrupt"},
    "jl": {"Raw JL corpus/male2_apologetic_1a_1.wav": "tone",
           "Raw JL corpus/male2_happy_2a_1.wav": "corrupt"},
    "emov_db": {"jenie_Angry/disgusted_1-28_0003.wav": "tone",
                "jenie_Disgusted/disgusted_1-28_0004.wav": "corrupt"},
    "esd": {"0021/Sad/0021_000001.wav": "tone",
            "0012/Happy/0012_000701.wav": "corrupt"},
    "mesd": {"Joy_M_A_x.wav": "tone", "Sadness_F_A_casa.wav": "corrupt"},
    "oreau": {"Oreau/10a02Xa.wav": "tone", "Oreau/05a01Ta.wav": "corrupt"},
}
# Files that are not clips, which the archives carry and the build ignores.
MORE_OTHER = {"crema_d": {"VideoDemographics.csv":
                          "ActorID,Age,Sex,Race,Ethnicity\n"
                          "1001,51,Male,Caucasian,Not Hispanic\n"
                          "1002,21,Female,Caucasian,Not Hispanic\n",
                          "AudioMP3/1001_DFA_ANG_XX.wav": None},
              "esd": {"Emotional Speech Dataset (ESD)/0001/0001.txt":
                      "0001_000351\tsome text\tAngry\n"},
              "aesdd": {_AESDD_TOP + "README.txt": "AESDD\n",
                        _AESDD_TOP + "anger/._a01 (1).wav": "junk"}}


def _write(path: str, kind, rate: int, seed: int) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  if kind == "corrupt":
    with open(path, "wb") as f:
      f.write(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
  elif isinstance(kind, str) and kind != "tone":
    with open(path, "w", encoding="utf-8") as f:
      f.write(kind)
  else:
    _tone(path, rate, 0.1, seed)


def write_more_dummy(root: str, corpora_names=None) -> None:
  """MORE_GOOD, MORE_BAD and MORE_OTHER of each corpus under root/<name>/."""
  for name in corpora_names or MORE_GOOD:
    files = {**{k: "tone" for k in MORE_GOOD[name]}, **MORE_BAD[name],
             **MORE_OTHER.get(name, {})}
    for i, (rel, kind) in enumerate(sorted(files.items())):
      _write(os.path.join(root, name, rel), kind, MORE_RATES[name], i)
