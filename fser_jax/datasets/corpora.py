"""The four FSER corpora's file-name conventions, and the 8-class mapping.

Each `parse_*` takes the path of a clip relative to the corpus folder (with
`/` separators) and returns a `Clip` of metadata, or raises `FilenameError`
naming the file and what is wrong. Facts from ../shared/corpora.md: speakers,
genders, emotion codes. No audio is read here.
"""

from __future__ import annotations

import dataclasses
import re

from fser_jax.errors import UserError

# The 8 FSER classes (paper, section 2), in the paper's table order.
FSER_CLASSES = ("anger", "anxiety", "calm", "disgust", "happiness", "neutral",
                "sadness", "surprise")

# Native label sets (English names), per corpus.
NATIVE_CLASSES = {
    "emodb": ("anger", "boredom", "disgust", "fear", "happiness", "neutral",
              "sadness"),
    "emovo": ("anger", "disgust", "fear", "happiness", "neutral", "sadness",
              "surprise"),
    "savee": ("anger", "disgust", "fear", "happiness", "neutral", "sadness",
              "surprise"),
    "ravdess": ("anger", "calm", "disgust", "fear", "happiness", "neutral",
                "sadness", "surprise"),
}

LANGUAGE = {"emodb": "german", "emovo": "italian", "savee": "english",
            "ravdess": "english"}

# Native -> FSER: fear joins anxiety, EmoDB's boredom joins calm (section 2).
TO_FSER = {"fear": "anxiety", "boredom": "calm"}

# One label space for every corpus (fser_jax.datasets.more_corpora adds
# eleven more languages' worth): the paper's 8 classes, then the classes the
# other corpora add, kept as their own classes (never folded into the 8).
UNIFIED_CLASSES = FSER_CLASSES + ("amusement", "excitement", "sleepiness")
# Native -> unified, beyond the paper's two rules: TESS's "pleasant surprise"
# is surprise of positive valence (its documentation), kept as surprise.
TO_UNIFIED = {**TO_FSER, "pleasant surprise": "surprise"}

# The paper's Table 1, which `fser/all` reproduces from the complete corpora.
TABLE1 = {"anger": 463, "anxiety": 405, "calm": 273, "disgust": 382,
          "happiness": 407, "neutral": 379, "sadness": 398, "surprise": 336}


def to_fser(label: str) -> str:
  return TO_FSER.get(label, label)


def to_unified(label: str) -> str:
  out = TO_UNIFIED.get(label, label)
  if out not in UNIFIED_CLASSES:
    raise ValueError(f"native label {label!r} has no unified class")
  return out


class FilenameError(UserError, ValueError):
  """A file name that does not follow its corpus's convention."""

  def __init__(self, filename: str, problem: str):
    self.filename = filename
    self.problem = problem
    super().__init__(f"{filename}: {problem}")


@dataclasses.dataclass(frozen=True)
class Clip:
  filename: str  # path inside the corpus folder, '/'-separated
  corpus: str
  label: str  # native label
  speaker: str  # unique across corpora, e.g. 'emodb_03'
  gender: str  # 'female' | 'male'
  text_id: str = ""
  intensity: str = ""
  lang: str = ""  # the clip's language where the corpus has several

  @property
  def language(self) -> str:
    return self.lang or LANGUAGE.get(self.corpus, "")


def _stem(filename: str) -> str:
  base = filename.rsplit("/", 1)[-1]
  if not base.lower().endswith(".wav"):
    raise FilenameError(filename, "not a .wav file")
  return base[:-4]


# --- EmoDB: wav/03a01Wa.wav --------------------------------------------------
EMODB_EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear",
                  "F": "happiness", "T": "sadness", "N": "neutral"}
EMODB_MALE = {"03", "10", "11", "12", "15"}
EMODB_FEMALE = {"08", "09", "13", "14", "16"}
EMODB_TEXTS = {"a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09",
               "b10"}


def parse_emodb(filename: str) -> Clip:
  stem = _stem(filename)
  m = re.fullmatch(r"(\d\d)([ab]\d\d)([A-Z])([a-z])", stem)
  if not m:
    raise FilenameError(filename, "EmoDB names look like 03a01Wa.wav "
                        "(speaker, text code, emotion letter, version)")
  spk, text, emo, _ = m.groups()
  if spk not in EMODB_MALE | EMODB_FEMALE:
    raise FilenameError(filename, f"unknown EmoDB speaker {spk!r}")
  if text not in EMODB_TEXTS:
    raise FilenameError(filename, f"unknown EmoDB text code {text!r}")
  if emo not in EMODB_EMOTIONS:
    raise FilenameError(filename, f"unknown EmoDB emotion letter {emo!r} "
                        f"(expected one of {''.join(EMODB_EMOTIONS)})")
  return Clip(filename, "emodb", EMODB_EMOTIONS[emo], f"emodb_{spk}",
              "male" if spk in EMODB_MALE else "female", text_id=text)


# --- EMOVO: EMOVO/f1/dis-f1-b1.wav --------------------------------------------
EMOVO_EMOTIONS = {"dis": "disgust", "gio": "happiness", "neu": "neutral",
                  "pau": "fear", "rab": "anger", "sor": "surprise",
                  "tri": "sadness"}
EMOVO_SPEAKERS = {"f1", "f2", "f3", "m1", "m2", "m3"}
EMOVO_SENTENCES = {"b1", "b2", "b3", "l1", "l2", "l3", "l4", "n1", "n2", "n3",
                   "n4", "n5", "d1", "d2"}


def parse_emovo(filename: str) -> Clip:
  stem = _stem(filename)
  m = re.fullmatch(r"([a-z]{3})-([fm]\d)-([a-z]\d)", stem.lower())
  if not m:
    raise FilenameError(filename, "EMOVO names look like dis-f1-b1.wav "
                        "(emotion, speaker, sentence)")
  emo, spk, sent = m.groups()
  if emo not in EMOVO_EMOTIONS:
    raise FilenameError(filename, f"unknown EMOVO emotion code {emo!r}")
  if spk not in EMOVO_SPEAKERS:
    raise FilenameError(filename, f"unknown EMOVO speaker {spk!r}")
  if sent not in EMOVO_SENTENCES:
    raise FilenameError(filename, f"unknown EMOVO sentence {sent!r}")
  return Clip(filename, "emovo", EMOVO_EMOTIONS[emo], f"emovo_{spk}",
              "female" if spk[0] == "f" else "male", text_id=sent)


# --- SAVEE: AudioData/DC/a01.wav or flat DC_a01.wav ----------------------------
SAVEE_EMOTIONS = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness",
                  "n": "neutral", "sa": "sadness", "su": "surprise"}
SAVEE_SPEAKERS = {"DC", "JE", "JK", "KL"}


def parse_savee(filename: str) -> Clip:
  stem = _stem(filename)
  parts = filename.split("/")
  m = re.fullmatch(r"([A-Z]{2})_([a-z]+)(\d\d)", stem)
  if m:  # flat re-packaging
    spk, code, num = m.groups()
  else:
    m = re.fullmatch(r"([a-z]+)(\d\d)", stem)
    if not m or len(parts) < 2:
      raise FilenameError(filename, "SAVEE names look like AudioData/DC/a01.wav "
                          "or DC_a01.wav (speaker, emotion code, number)")
    spk, (code, num) = parts[-2], m.groups()
  if spk not in SAVEE_SPEAKERS:
    raise FilenameError(filename, f"unknown SAVEE speaker {spk!r}")
  if code not in SAVEE_EMOTIONS:
    raise FilenameError(filename, f"unknown SAVEE emotion code {code!r}")
  return Clip(filename, "savee", SAVEE_EMOTIONS[code], f"savee_{spk}", "male",
              text_id=f"{code}{num}")


# --- RAVDESS: Actor_12/03-01-06-01-02-01-12.wav --------------------------------
RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happiness",
                    "04": "sadness", "05": "anger", "06": "fear",
                    "07": "disgust", "08": "surprise"}


def parse_ravdess(filename: str) -> Clip:
  stem = _stem(filename)
  m = re.fullmatch(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)", stem)
  if not m:
    raise FilenameError(filename, "RAVDESS names look like "
                        "03-01-06-01-02-01-12.wav (7 two-digit fields)")
  modality, channel, emo, intensity, statement, _, actor = m.groups()
  if modality != "03":
    raise FilenameError(filename, f"RAVDESS modality {modality} is "
                        "audio-video or video-only; FSER uses audio-only (03)")
  if channel != "01":
    raise FilenameError(filename, "a RAVDESS song file; FSER uses speech "
                        "(vocal channel 01) only")
  if emo not in RAVDESS_EMOTIONS:
    raise FilenameError(filename, f"unknown RAVDESS emotion {emo!r}")
  if intensity not in ("01", "02") or statement not in ("01", "02"):
    raise FilenameError(filename, "RAVDESS intensity and statement are 01/02")
  if not 1 <= int(actor) <= 24:
    raise FilenameError(filename, f"unknown RAVDESS actor {actor!r}")
  parent = filename.split("/")[-2] if "/" in filename else ""
  if parent.startswith("Actor_") and parent != f"Actor_{actor}":
    raise FilenameError(filename, f"actor {actor} filed under {parent}")
  return Clip(filename, "ravdess", RAVDESS_EMOTIONS[emo], f"ravdess_{actor}",
              "male" if int(actor) % 2 else "female", text_id=statement,
              intensity="normal" if intensity == "01" else "strong")


PARSERS = {"emodb": parse_emodb, "emovo": parse_emovo, "savee": parse_savee,
           "ravdess": parse_ravdess}


def corpus_relative(corpus: str, relpath: str) -> str | None:
  """The canonical in-corpus file name of a path found under a corpus folder,
  or None when the path is not where the corpus keeps its clips (EmoDB's
  label folders, README files, ...)."""
  parts = relpath.split("/")
  anchors = {"emodb": "wav", "emovo": "EMOVO", "savee": "AudioData"}
  if corpus in anchors and anchors[corpus] in parts:
    i = len(parts) - 1 - parts[::-1].index(anchors[corpus])
    return "/".join(parts[i:])
  if corpus == "emodb":
    return None  # EmoDB clips live in wav/ only.
  if corpus == "emovo":
    return "EMOVO/" + "/".join(parts[-2:]) if len(parts) >= 2 else None
  if corpus == "savee":
    return parts[-1]  # the flat re-packaging
  if corpus == "ravdess":
    return "/".join(parts[-2:]) if parts[-2:-1] and parts[-2].startswith(
        "Actor_") else parts[-1]
  raise ValueError(f"unknown corpus {corpus!r}")
