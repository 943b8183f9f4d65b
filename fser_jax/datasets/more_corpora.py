"""Twelve more corpora's layouts: the field's benchmarks, Greek first.

Each `parse_*` takes a clip's path relative to the corpus folder (`/`
separators; archives may add a top folder, which is ignored) and returns a
`corpora.Clip` with the corpus's native label, or raises `FilenameError`
naming the file and what is wrong. Facts from each corpus's documentation
(docs/data.md lists them with their licences). Speaker ids carry the
corpus's name. A gender is given only where the corpus states it (in its
file names, folders or demographics file); elsewhere it is '' (unknown), never
guessed from a speaker number.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from typing import Callable

from fser_jax.datasets.corpora import Clip, FilenameError, _stem


@dataclasses.dataclass(frozen=True)
class Corpus:
  """One corpus: how its files are named and what they hold."""
  name: str
  title: str
  classes: tuple[str, ...]  # native labels (English names)
  parse: Callable[..., Clip]
  example: str  # one file name, as the corpus folder holds it
  clips: str  # as documented
  speakers: str
  rate: str
  access: str
  context: Callable[[str], dict] | None = None  # extra files, read once

  @property
  def language(self) -> str:
    return LANGUAGE[self.name] or "several"


def _last(filename: str, n: int) -> list[str]:
  parts = filename.split("/")
  if len(parts) < n:
    raise FilenameError(filename, f"expected at least {n} path parts")
  return parts[-n:]


LANGUAGE = {"aesdd": "greek", "crema_d": "english", "tess": "english",
            "cafe": "french", "subesco": "bangla", "shemo": "persian",
            "urdu": "urdu", "jl": "english", "emov_db": "english",
            "esd": "", "mesd": "spanish", "oreau": "french"}


def _clip(filename, corpus, label, speaker, gender="", text_id="",
          intensity="", language="") -> Clip:
  return Clip(filename, corpus, label, f"{corpus}_{speaker}" if speaker else "",
              gender, text_id=text_id, intensity=intensity,
              lang=language or LANGUAGE[corpus])


# --- AESDD (Greek): <emotion>/a01 (1).wav -----------------------------------------
AESDD_LETTERS = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness",
                 "s": "sadness"}


def parse_aesdd(filename: str) -> Clip:
  folder, _ = _last(filename, 2)
  stem = _stem(filename)
  m = re.fullmatch(r"([adfhs])(\d\d) ?\((\d+)\)", stem)
  if not m:
    raise FilenameError(filename, "AESDD names look like anger/a01 (1).wav "
                        "(emotion letter a d f h s, utterance, speaker)")
  letter, utt, spk = m.groups()
  label = AESDD_LETTERS[letter]
  if folder.lower() != label:
    raise FilenameError(filename, f"emotion letter {letter!r} ({label}) filed "
                        f"under the folder {folder!r}")
  return _clip(filename, "aesdd", label, spk, text_id=utt)


# --- CREMA-D: AudioWAV/1001_DFA_ANG_XX.wav + VideoDemographics.csv ----------------
CREMA_EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear",
                  "HAP": "happiness", "NEU": "neutral", "SAD": "sadness"}
CREMA_SENTENCES = {"IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH",
                   "DFA", "ITS", "TSI", "WSI"}
CREMA_LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}


def crema_context(root: str) -> dict:
  """{'gender': actor id -> 'female' | 'male'} from VideoDemographics.csv
  (anywhere under the corpus folder)."""
  for dirpath, _, names in os.walk(root):
    if "VideoDemographics.csv" in names:
      with open(os.path.join(dirpath, "VideoDemographics.csv"), newline="",
                encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
      return {"gender": {r["ActorID"].strip(): r["Sex"].strip().lower()
                         for r in rows if r.get("ActorID")}}
  return {"gender": {}}


def parse_crema_d(filename: str, context: dict | None = None) -> Clip:
  stem = _stem(filename)
  m = re.fullmatch(r"(1\d\d\d)_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})", stem)
  if not m:
    raise FilenameError(filename, "CREMA-D names look like 1001_DFA_ANG_XX.wav "
                        "(actor, sentence, emotion, level)")
  actor, sent, emo, level = m.groups()
  if not 1001 <= int(actor) <= 1091:
    raise FilenameError(filename, f"unknown CREMA-D actor {actor!r}")
  if sent not in CREMA_SENTENCES:
    raise FilenameError(filename, f"unknown CREMA-D sentence {sent!r}")
  if emo not in CREMA_EMOTIONS:
    raise FilenameError(filename, f"unknown CREMA-D emotion {emo!r}")
  if level not in CREMA_LEVELS:
    raise FilenameError(filename, f"unknown CREMA-D level {level!r}")
  gender = (context or {}).get("gender", {}).get(actor, "")
  return _clip(filename, "crema_d", CREMA_EMOTIONS[emo], actor, gender,
               text_id=sent, intensity=CREMA_LEVELS[level])


# --- TESS: <folder>/OAF_back_angry.wav --------------------------------------------
TESS_EMOTIONS = {"angry": "anger", "disgust": "disgust", "fear": "fear",
                 "happy": "happiness", "ps": "pleasant surprise",
                 "sad": "sadness", "neutral": "neutral"}


def parse_tess(filename: str) -> Clip:
  stem = _stem(filename)
  m = re.fullmatch(r"([OoYy][Aa][Ff])_([A-Za-z]+)_([A-Za-z]+)", stem)
  if not m:
    raise FilenameError(filename, "TESS names look like OAF_back_angry.wav "
                        "(speaker OAF or YAF, word, emotion)")
  spk, word, emo = m.group(1).upper(), m.group(2).lower(), m.group(3).lower()
  if emo not in TESS_EMOTIONS:
    raise FilenameError(filename, f"unknown TESS emotion {emo!r}")
  # Both TESS speakers are women (the corpus's documentation).
  return _clip(filename, "tess", TESS_EMOTIONS[emo], spk, "female",
               text_id=word)


# --- CaFE (Canadian French): Colère/Faible/01-C-1-1.wav ---------------------------
CAFE_LETTERS = {"C": "anger", "D": "disgust", "J": "happiness", "N": "neutral",
                "P": "fear", "S": "surprise", "T": "sadness"}


def parse_cafe(filename: str) -> Clip:
  stem = _stem(filename)
  m = re.fullmatch(r"(\d\d)-([CDJNPST])-(\d)-(\d)", stem)
  if not m:
    raise FilenameError(filename, "CaFE names look like 01-C-1-1.wav (actor, "
                        "emotion letter C D J N P S T, intensity, sentence)")
  actor, letter, inten, sent = m.groups()
  if not 1 <= int(actor) <= 12:
    raise FilenameError(filename, f"unknown CaFE actor {actor!r}")
  folders = {p.lower() for p in filename.split("/")[:-1]}
  intensity = ("weak" if "faible" in folders else
               "strong" if "fort" in folders else "")
  return _clip(filename, "cafe", CAFE_LETTERS[letter], actor, text_id=sent,
               intensity=intensity)


# --- SUBESCO (Bangla): M_01_NAME_S_10_ANGRY_1.wav ---------------------------------
SUBESCO_EMOTIONS = {"ANGRY": "anger", "DISGUST": "disgust", "FEAR": "fear",
                    "HAPPY": "happiness", "NEUTRAL": "neutral",
                    "SAD": "sadness", "SURPRISE": "surprise"}


def parse_subesco(filename: str) -> Clip:
  stem = _stem(filename)
  m = re.fullmatch(r"([MF])_(\d\d)_([A-Za-z]+)_S_(\d+)_([A-Z]+)_(\d)", stem)
  if not m:
    raise FilenameError(filename, "SUBESCO names look like "
                        "M_01_NAME_S_10_ANGRY_1.wav (gender, speaker, name, "
                        "sentence, emotion, take)")
  sex, num, _, sent, emo, _ = m.groups()
  if emo not in SUBESCO_EMOTIONS:
    raise FilenameError(filename, f"unknown SUBESCO emotion {emo!r}")
  return _clip(filename, "subesco", SUBESCO_EMOTIONS[emo], f"{sex}{num}",
               "male" if sex == "M" else "female", text_id=sent)


# --- ShEMO (Persian): female/F21N23.wav -------------------------------------------
SHEMO_LETTERS = {"A": "anger", "H": "happiness", "N": "neutral",
                 "S": "sadness", "W": "surprise", "F": "fear"}


def parse_shemo(filename: str) -> Clip:
  stem = _stem(filename)
  m = re.fullmatch(r"([FM])(\d\d)([AHNSWF])(\d\d)", stem)
  if not m:
    raise FilenameError(filename, "ShEMO names look like female/F21N23.wav "
                        "(gender, speaker, emotion letter A H N S W F, "
                        "utterance)")
  sex, num, letter, utt = m.groups()
  gender = "male" if sex == "M" else "female"
  folder = filename.split("/")[-2].lower() if "/" in filename else ""
  if folder in ("male", "female") and folder != gender:
    raise FilenameError(filename, f"a {gender} speaker filed under {folder}/")
  return _clip(filename, "shemo", SHEMO_LETTERS[letter], f"{sex}{num}", gender,
               text_id=utt)


# --- URDU: Angry/SM20_F8_A012.wav -------------------------------------------------
URDU_FOLDERS = {"angry": "anger", "happy": "happiness", "neutral": "neutral",
                "sad": "sadness"}
URDU_LETTERS = {"A": "anger", "H": "happiness", "N": "neutral", "S": "sadness"}


def parse_urdu(filename: str) -> Clip:
  folder, _ = _last(filename, 2)
  stem = _stem(filename)
  m = re.fullmatch(r"S([MF])(\d+)_F(\d+)_([AHNS])(\d+)", stem)
  if not m:
    raise FilenameError(filename, "URDU names look like Angry/SM20_F8_A012.wav "
                        "(speaker with gender, file, emotion letter, number)")
  sex, num, _, letter, utt = m.groups()
  label = URDU_LETTERS[letter]
  if URDU_FOLDERS.get(folder.lower()) != label:
    raise FilenameError(filename, f"emotion letter {letter!r} ({label}) filed "
                        f"under the folder {folder!r}")
  return _clip(filename, "urdu", label, f"S{sex}{num}",
               "male" if sex == "M" else "female", text_id=utt)


# --- JL-Corpus (NZ English): male1_angry_1a_1.wav ---------------------------------
JL_PRIMARY = {"angry": "anger", "sad": "sadness", "neutral": "neutral",
              "happy": "happiness", "excited": "excitement"}
JL_SECONDARY = {"anxious", "apologetic", "assertive", "concerned",
                "encouraging"}


def parse_jl(filename: str) -> Clip:
  stem = _stem(filename)
  m = re.fullmatch(r"(male|female)(\d)_([a-z]+)_(\d+[a-z])_(\d+)", stem)
  if not m:
    raise FilenameError(filename, "JL-Corpus names look like "
                        "male1_angry_1a_1.wav (speaker, emotion, sentence, "
                        "take)")
  sex, num, emo, sent, _ = m.groups()
  if emo in JL_SECONDARY:
    raise FilenameError(filename, f"a secondary emotion ({emo}); fser/jl "
                        "holds the five primary ones")
  if emo not in JL_PRIMARY:
    raise FilenameError(filename, f"unknown JL-Corpus emotion {emo!r}")
  return _clip(filename, "jl", JL_PRIMARY[emo], f"{sex}{num}", sex,
               text_id=sent)


# --- EmoV-DB: bea_Amused/amused_1-15_0001.wav -------------------------------------
EMOV_EMOTIONS = {"amused": "amusement", "angry": "anger",
                 "disgusted": "disgust", "neutral": "neutral",
                 "sleepy": "sleepiness"}
# The corpus's documentation: two female (Bea, Jenie), two male (Josh, Sam).
EMOV_GENDER = {"bea": "female", "jenie": "female", "josh": "male",
               "sam": "male"}


def parse_emov_db(filename: str) -> Clip:
  folder, _ = _last(filename, 2)
  stem = _stem(filename)
  f = re.fullmatch(r"([a-z]+)_([A-Za-z]+)", folder)
  m = re.fullmatch(r"([a-z]+)_(\d+-\d+)_(\d{4})", stem.lower())
  if not f or not m:
    raise FilenameError(filename, "EmoV-DB names look like "
                        "bea_Amused/amused_1-15_0001.wav")
  spk, folder_emo = f.group(1), f.group(2).lower()
  emo = m.group(1)
  if spk not in EMOV_GENDER:
    raise FilenameError(filename, f"unknown EmoV-DB speaker {spk!r}")
  if emo not in EMOV_EMOTIONS:
    raise FilenameError(filename, f"unknown EmoV-DB emotion {emo!r}")
  if folder_emo != emo:
    raise FilenameError(filename, f"{emo} filed under the folder {folder!r}")
  return _clip(filename, "emov_db", EMOV_EMOTIONS[emo], spk, EMOV_GENDER[spk],
               text_id=m.group(3))


# --- ESD: 0011/Angry/0011_000351.wav (or 0011/Angry/train/...) -------------------
ESD_EMOTIONS = {"angry": "anger", "happy": "happiness", "neutral": "neutral",
                "sad": "sadness", "surprise": "surprise"}


def parse_esd(filename: str) -> Clip:
  parts = filename.split("/")
  stem = _stem(filename)
  m = re.fullmatch(r"(00\d\d)_(\d{6})", stem)
  if not m:
    raise FilenameError(filename, "ESD names look like "
                        "0011/Angry/0011_000351.wav (speaker, number)")
  spk, utt = m.groups()
  if not 1 <= int(spk) <= 20:
    raise FilenameError(filename, f"unknown ESD speaker {spk!r}")
  emo = next((ESD_EMOTIONS[p.lower()] for p in reversed(parts[:-1])
              if p.lower() in ESD_EMOTIONS), None)
  if emo is None:
    raise FilenameError(filename, "no ESD emotion folder (Angry, Happy, "
                        "Neutral, Sad, Surprise) above the file")
  if spk not in parts[:-1]:
    raise FilenameError(filename, f"speaker {spk} not under its folder {spk}/")
  return _clip(filename, "esd", emo, spk, text_id=utt,
               language="mandarin" if int(spk) <= 10 else "english")


# --- MESD (Mexican Spanish): Anger_C_A_abajo.wav ----------------------------------
MESD_EMOTIONS = {"anger": "anger", "disgust": "disgust", "fear": "fear",
                 "happiness": "happiness", "neutral": "neutral",
                 "sadness": "sadness"}


def parse_mesd(filename: str) -> Clip:
  stem = _stem(filename)
  m = re.fullmatch(r"([A-Za-z]+)_([FMC])_([AB])_(.+)", stem)
  if not m or m.group(1).lower() not in MESD_EMOTIONS:
    raise FilenameError(filename, "MESD names look like Anger_C_A_abajo.wav "
                        "(emotion, voice type F M C, corpus A B, word)")
  emo, voice, part, word = m.groups()
  # The voice type is not a speaker: MESD publishes no speaker ids, so the
  # speaker protocols refuse it (fser_jax.data.splits).
  gender = {"F": "female", "M": "male", "C": ""}[voice]
  return _clip(filename, "mesd", MESD_EMOTIONS[emo.lower()], "", gender,
               text_id=f"{part}_{word}")


# --- Oréau (French): .../10a02Ja.wav -----------------------------------------------
def parse_oreau(filename: str) -> Clip:
  stem = _stem(filename)
  m = re.fullmatch(r"(\d\d)([a-z]\d\d)([CDJNPST])([a-z]?)", stem)
  if not m:
    raise FilenameError(filename, "Oréau names look like 10a02Ja.wav "
                        "(speaker, utterance, emotion letter C D J N P S T)")
  spk, utt, letter, _ = m.groups()
  return _clip(filename, "oreau", CAFE_LETTERS[letter], spk, text_id=utt)


def _classes(mapping: dict) -> tuple[str, ...]:
  return tuple(sorted(set(mapping.values())))


CORPORA = {c.name: c for c in (
    Corpus("aesdd", "Acted Emotional Speech Dynamic Database",
           _classes(AESDD_LETTERS), parse_aesdd, "anger/a01 (1).wav",
           "about 600", "5-6", "44.1 kHz",
           "free download; no official licence"),
    Corpus("crema_d", "CREMA-D", _classes(CREMA_EMOTIONS),
           parse_crema_d, "AudioWAV/1001_DFA_ANG_XX.wav", "7,442", "91",
           "16 kHz", "ODbL", context=crema_context),
    Corpus("tess", "Toronto emotional speech set",
           _classes(TESS_EMOTIONS), parse_tess,
           "OAF_angry/OAF_back_angry.wav", "2,800", "2 (female)",
           "24,414 Hz", "university repository"),
    Corpus("cafe", "Canadian French Emotional speech dataset",
           _classes(CAFE_LETTERS), parse_cafe, "Colère/Faible/01-C-1-1.wav",
           "936", "12", "48 kHz", "Zenodo"),
    Corpus("subesco", "SUST Bangla Emotional Speech Corpus",
           _classes(SUBESCO_EMOTIONS), parse_subesco,
           "M_01_NAME_S_10_ANGRY_1.wav", "7,000", "20", "44.1-48 kHz",
           "CC-BY-4.0"),
    Corpus("shemo", "Sharif Emotional Speech Database",
           _classes(SHEMO_LETTERS), parse_shemo, "female/F21N23.wav",
           "2,838", "87", "44.1 kHz", "academic use"),
    Corpus("urdu", "URDU dataset", _classes(URDU_LETTERS), parse_urdu,
           "Angry/SM20_F8_A012.wav", "400", "29", "44.1 kHz",
           "public repository"),
    Corpus("jl", "JL-Corpus (primary emotions)",
           _classes(JL_PRIMARY), parse_jl, "male1_angry_1a_1.wav", "2,400",
           "4", "44.1 kHz", "ODC-By"),
    Corpus("emov_db", "EmoV-DB", _classes(EMOV_EMOTIONS),
           parse_emov_db, "bea_Amused/amused_1-15_0001.wav", "6,887", "4",
           "16 / 44.1 kHz", "non-commercial"),
    Corpus("esd", "Emotional Speech Dataset", _classes(ESD_EMOTIONS),
           parse_esd, "0011/Angry/0011_000351.wav", "35,000",
           "20 (10 Mandarin, 10 English)", "16 kHz",
           "research use"),
    Corpus("mesd", "Mexican Emotional Speech Database",
           _classes(MESD_EMOTIONS), parse_mesd, "Anger_C_A_abajo.wav", "862",
           "no speaker ids", "48 kHz", "CC-BY-4.0"),
    Corpus("oreau", "Oréau French emotional speech",
           _classes(CAFE_LETTERS), parse_oreau, "10a02Ja.wav", "936",
           "32", "44.1 kHz", "Zenodo"),
)}


def corpus_relative(corpus: str, relpath: str) -> str | None:
  """The in-corpus name of a path found under a corpus folder (an archive's
  top folder dropped), or None when the path holds no clip of the corpus."""
  parts = relpath.split("/")
  keep = {"aesdd": 2, "urdu": 2, "emov_db": 2, "shemo": 2, "cafe": 3,
          "tess": 2}.get(corpus, 1)
  if corpus == "crema_d":
    return parts[-1] if "AudioWAV" in parts else None
  if corpus == "esd":
    keep = next((len(parts) - i for i, p in enumerate(parts)
                 if re.fullmatch(r"00\d\d", p)), 1)
  if corpus == "cafe":  # neutral has no intensity folder
    keep = 3 if len(parts) >= 3 and parts[-2].lower() in ("faible",
                                                          "fort") else 2
  return "/".join(parts[-keep:])
