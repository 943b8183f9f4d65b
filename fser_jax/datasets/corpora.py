"""Every corpus as one table, read by one parser; the label spaces.

`CORPORA` maps each corpus's config name to a `Corpus`: what it is (title,
language, licence, an example clip), where its clips lie under the folder
the user puts in the manual dir (`layout`), how a clip's file name and
folders read (`stem`, `folder`: regular expressions with named groups) and
what each code means (`labels`, the label map: emotion code -> native label;
`speakers`: speaker code -> gender; `codes`: the other groups' tables).
`Corpus.parse` reads any corpus from its table; `corpus_relative` finds any
corpus's clips (the longest tail of a found path, in whole folders, that
`layout` matches). Facts from ../shared/corpora.md and each corpus's
documentation (docs/data.md lists them with their licences). No audio is
read here.

What the named groups feed:
  emotion    the clip's native label, through `labels`
  label      a folder named in words, through codes['label'] (by default
             the native labels themselves)
  speaker    the speaker id `<corpus>_<code>`, checked against `speakers`
             when given, with the gender listed there; a corpus whose
             patterns have a speaker group refuses a clip without one
  gender     the gender, through codes['gender'] (by default GENDERS)
  text       text_id
  intensity  intensity, through codes['intensity']
  any other  only checked, against codes[group] (RAVDESS's modality)
Tables are looked up ignoring case (the patterns say which cases a name may
use) and a code is kept as its table spells it; a code in no table is kept
as written, in lower case where the pattern ignores case. A code missing
from its table refuses the file, naming the codes expected; `refused` says
why a code the corpus has is left out (RAVDESS's songs, JL's secondary
emotions). A field that both the name and a folder give must agree. Genders
only where the corpus states them, else '' (unknown): never guessed from a
speaker number.

Three rules are not codes: CREMA-D's genders are in its
VideoDemographics.csv (`read_genders=crema_genders`, read once per corpus
folder), SUBESCO's speaker id joins two fields (`speaker_id`), and EMOVO's
clips are named EMOVO/... whatever its archive's top folder is called
(`prefix`).

To add a corpus: one `Corpus(...)` in REGISTRY, and a fake copy of its
layout in tests/fake_corpora.py (MORE_GOOD with labels, speakers and genders
written by hand from its documentation, MORE_BAD with files it must refuse):
tests/test_more_corpora.py builds every corpus there, and fails while a
registry entry has no fake layout.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import re
from typing import Callable

from fser_jax.errors import UserError

# The 8 FSER classes (paper, section 2), in the paper's table order.
FSER_CLASSES = ("anger", "anxiety", "calm", "disgust", "happiness", "neutral",
                "sadness", "surprise")
# Native -> FSER: fear joins anxiety, EmoDB's boredom joins calm (section 2).
TO_FSER = {"fear": "anxiety", "boredom": "calm"}

# One label space for every corpus: the paper's 8 classes, then the classes
# the other corpora add, kept as their own classes (never folded into the 8).
UNIFIED_CLASSES = FSER_CLASSES + ("amusement", "excitement", "sleepiness")
# Native -> unified, beyond the paper's two rules: TESS's "pleasant surprise"
# is surprise of positive valence (its documentation), kept as surprise.
TO_UNIFIED = {**TO_FSER, "pleasant surprise": "surprise"}

# The paper's Table 1, which `fser/all` reproduces from the complete corpora.
TABLE1 = {"anger": 463, "anxiety": 405, "calm": 273, "disgust": 382,
          "happiness": 407, "neutral": 379, "sadness": 398, "surprise": 336}

PAPER = ("emodb", "emovo", "savee", "ravdess")  # the paper's (`fser/all`)


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
  speaker: str  # unique across corpora, e.g. 'emodb_03'; '' where none
  gender: str  # 'female' | 'male' | '' (not stated)
  text_id: str = ""
  intensity: str = ""
  language: str = ""


GENDERS = {"F": "female", "M": "male", "female": "female", "male": "male"}
# Which Clip field a group feeds, where not the group's own name.
_FIELD = {"emotion": "label", "text": "text_id"}
# What a group is called in errors, unless the corpus names it.
_NOUN = {"label": "emotion folder", "gender": "gender code"}
# A field that the name and a folder give differently.
_CLASH = {"label": "{noun} {code!r} ({value}) filed under the folder {folder}/",
          "gender": "a {value} speaker filed under {folder}/",
          "speaker": "{noun} {code} filed under {folder}/"}


def _table():
  return dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Corpus:
  """One corpus's table (the module docstring says what each field feeds)."""
  name: str  # config name; speaker ids start with it
  title: str
  language: str  # of every clip, unless `languages` gives it per speaker
  licence: str  # or how to obtain it, where the corpus states no licence
  example: str  # a clip's path under the corpus folder
  layout: str  # regex: the tail of a found path that is a clip's name
  stem: str  # regex over the file name without '.wav'
  fields: str  # `stem`'s fields, in words, for errors
  labels: dict[str, str]  # emotion code -> native label (English names)
  speakers: dict[str, str] | None = None  # code -> gender; None: any code
  codes: dict[str, dict | tuple] = _table()  # other groups' tables
  refused: dict[str, dict[str, str]] = _table()  # group -> code -> why
  nouns: dict[str, str] = _table()  # group -> its name in errors
  folder: str = ""  # regex over the clip's last folders; '' ignores them
  folder_help: str = ""  # what `folder` wants, for errors
  prefix: str = ""  # put before every name `layout` finds
  languages: dict[str, str] = _table()  # speaker code -> language
  speaker_id: str = ""  # a format over the groups; '' the speaker group
  full_title: str = ""  # where the short `title` is not the corpus's name
  read_genders: Callable[[str], dict[str, str]] | None = None

  @property
  def description(self) -> str:
    return f"{self.full_title or self.title} ({self.language})"

  @property
  def classes(self) -> tuple[str, ...]:
    return tuple(sorted(set(self.labels.values())))

  def parser(self, root: str) -> Callable[[str], Clip]:
    """`parse` for the corpus folder `root` (its extra files read once)."""
    genders = self.read_genders(root) if self.read_genders else {}
    return functools.partial(self.parse, genders=genders)

  def parse(self, filename: str, genders: dict | None = None) -> Clip:
    """The Clip of `filename` (its name inside the corpus, '/'-separated),
    or FilenameError naming the file and what is wrong. `genders`: speaker
    code -> gender, from the corpus's own files (`parser`)."""
    base = filename.rsplit("/", 1)[-1]
    if not base.lower().endswith(".wav"):
      raise FilenameError(filename, "not a .wav file")
    m = re.fullmatch(self.stem, base[:-4])
    if not m:
      raise FilenameError(filename, f"{self.title} names look like "
                          f"{self.example} ({self.fields})")
    folders = filename[:-len(base)].rstrip("/")
    f = (re.fullmatch(rf"(?:.*/)?({self.folder})", folders, re.I)
         if self.folder else None)
    if self.folder and not f:
      raise FilenameError(filename, f"no {self.title} {self.folder_help} "
                          f"above the file (as in {self.example})")
    code, found = {}, {}  # group -> code; field -> (noun, code, value)
    for match in (m, f):
      for group, raw in (match.groupdict() if match else {}).items():
        if raw is None:
          continue
        noun, c, value = self._read(filename, group, raw,
                                    bool(match.re.flags & re.I))
        field = _FIELD.get(group, group)
        if field in found and found[field][2] != value:
          n, c0, v0 = found[field]
          raise FilenameError(filename, _CLASH[field].format(
              noun=n, code=c0, value=v0, folder=f[1]))
        code.setdefault(group, c)
        found.setdefault(field, (noun, c, value))
    value = {field: v for field, (_, _, v) in found.items()}
    spk = (self.speaker_id.format(**code) if self.speaker_id
           else code.get("speaker", ""))
    if not spk and "speaker" in re.compile(self.stem).groupindex:
      raise FilenameError(filename, f"no {self.title} speaker in the name or "
                          f"its folder (as in {self.example})")
    gender = (value.get("gender") or (self.speakers or {}).get(spk)
              or (genders or {}).get(spk, ""))
    return Clip(filename, self.name, value["label"],
                f"{self.name}_{spk}" if spk else "", gender,
                text_id=value.get("text_id", ""),
                intensity=value.get("intensity", ""),
                language=self.languages.get(spk, self.language))

  def _read(self, filename, group, raw, ignore_case):
    """(noun, code as its table spells it, value) of one group's code."""
    noun = self.nouns.get(group, _NOUN.get(group, group))
    if raw in self.refused.get(group, {}):
      raise FilenameError(filename, self.refused[group][raw])
    if group == "emotion":
      table = self.labels
    elif group == "speaker":
      table = self.speakers
    else:
      table = self.codes.get(group, {"gender": GENDERS, "label": dict(
          zip(self.classes, self.classes))}.get(group))
    if table is None:  # a free field
      raw = raw.lower() if ignore_case else raw
      return noun, raw, raw
    key = {k.lower(): k for k in table}.get(raw.lower())
    if key is None:
      keys = list(table)
      expected = ("one of " + ", ".join(keys) if len(keys) <= 14
                  else f"{keys[0]} to {keys[-1]}")
      raise FilenameError(filename, f"unknown {self.title} {noun} {raw!r} "
                          f"(expected {expected})")
    # A speaker table maps speakers to genders: the speaker is its code.
    keep = group == "speaker" or not isinstance(table, dict)
    return noun, key, key if keep else table[key]


def crema_genders(root: str) -> dict[str, str]:
  """Actor id -> 'female' | 'male' from CREMA-D's VideoDemographics.csv
  (anywhere under the corpus folder); {} without one."""
  for dirpath, _, names in os.walk(root):
    if "VideoDemographics.csv" in names:
      with open(os.path.join(dirpath, "VideoDemographics.csv"), newline="",
                encoding="utf-8-sig") as f:
        return {r["ActorID"].strip(): r["Sex"].strip().lower()
                for r in csv.DictReader(f) if r.get("ActorID")}
  return {}


def _numbered(first: int, last: int, width: int) -> dict[str, str]:
  """Speakers first..last, zero-padded to `width`, of unstated gender."""
  return {f"{i:0{width}d}": "" for i in range(first, last + 1)}


FILE = r"[^/]+"  # layouts: the file alone
PARENT = r"(?:[^/]+/)?[^/]+"  # the file and its folder
# CaFE's and Oréau's emotion letters (the same laboratory's convention).
CAFE_LETTERS = {"C": "anger", "D": "disgust", "J": "happiness", "N": "neutral",
                "P": "fear", "S": "surprise", "T": "sadness"}
# JL-Corpus's secondary emotions: fser/jl holds the five primary ones.
JL_SECONDARY = ("anxious", "apologetic", "assertive", "concerned",
                "encouraging")
RAVDESS_VIDEO = "FSER uses audio-only clips (modality 03)"

REGISTRY = (
    Corpus("emodb", "EmoDB", "german",
           "its site's terms (emodb.bilderbar.info)", "wav/03a01Wa.wav",
           layout=r"wav/.+",  # not the label folders beside it
           stem=r"(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<emotion>[A-Z])[a-z]",
           fields="speaker, text code, emotion letter, version",
           labels={"W": "anger", "L": "boredom", "E": "disgust", "A": "fear",
                   "F": "happiness", "T": "sadness", "N": "neutral"},
           speakers={**dict.fromkeys(("03", "10", "11", "12", "15"), "male"),
                     **dict.fromkeys(("08", "09", "13", "14", "16"),
                                     "female")},
           codes={"text": ("a01", "a02", "a04", "a05", "a07", "b01", "b02",
                           "b03", "b09", "b10")},
           nouns={"emotion": "emotion letter", "text": "text code"}),
    Corpus("emovo", "EMOVO", "italian", "its site's terms (voice.fub.it)",
           "EMOVO/f1/dis-f1-b1.wav",
           # Whatever the top folder is called, clips are named EMOVO/...
           layout=r"[^/]+/[^/]+", prefix="EMOVO/",
           stem=r"(?i)(?P<emotion>[a-z]{3})-(?P<speaker>[fm]\d)-"
           r"(?P<text>[a-z]\d)",
           fields="emotion, speaker, sentence",
           labels={"dis": "disgust", "gio": "happiness", "neu": "neutral",
                   "pau": "fear", "rab": "anger", "sor": "surprise",
                   "tri": "sadness"},
           speakers={**dict.fromkeys(("f1", "f2", "f3"), "female"),
                     **dict.fromkeys(("m1", "m2", "m3"), "male")},
           codes={"text": ("b1", "b2", "b3", "l1", "l2", "l3", "l4", "n1",
                           "n2", "n3", "n4", "n5", "d1", "d2")},
           nouns={"emotion": "emotion code", "text": "sentence"}),
    Corpus("savee", "SAVEE", "english",
           "registration (kahlan.eps.surrey.ac.uk/savee)",
           "AudioData/DC/a01.wav or DC_a01.wav",
           # AudioData/<speaker>/, or the flat re-packaging <speaker>_a01.wav.
           layout=r"AudioData/[^/]+/[^/]+|[^/]+",
           stem=r"(?:(?P<speaker>[A-Z]{2})_)?(?P<text>(?P<emotion>[a-z]+)\d\d)",
           fields="speaker, emotion code, number",
           folder=r"(?P<speaker>[A-Z]{2})|.*",
           labels={"a": "anger", "d": "disgust", "f": "fear", "h": "happiness",
                   "n": "neutral", "sa": "sadness", "su": "surprise"},
           speakers=dict.fromkeys(("DC", "JE", "JK", "KL"), "male"),
           nouns={"emotion": "emotion code"}),
    Corpus("ravdess", "RAVDESS", "english", "CC BY-NC-SA 4.0 (Zenodo)",
           "Actor_01/03-01-05-01-01-01-01.wav",
           layout=r"Actor_[^/]*/[^/]+|[^/]+",
           stem=r"(?P<modality>\d\d)-(?P<channel>\d\d)-(?P<emotion>\d\d)-"
           r"(?P<intensity>\d\d)-(?P<text>\d\d)-\d\d-(?P<speaker>\d\d)",
           fields="7 two-digit fields: modality, vocal channel, emotion, "
           "intensity, statement, repetition, actor",
           folder=r"Actor_(?P<speaker>[^/]*)|.*",
           labels={"01": "neutral", "02": "calm", "03": "happiness",
                   "04": "sadness", "05": "anger", "06": "fear",
                   "07": "disgust", "08": "surprise"},
           # Odd actors are male, even ones female (the documentation).
           speakers={f"{a:02d}": "male" if a % 2 else "female"
                     for a in range(1, 25)},
           codes={"modality": ("03",), "channel": ("01",),
                  "text": ("01", "02"),
                  "intensity": {"01": "normal", "02": "strong"}},
           refused={"modality": {
               "01": f"an audio-video RAVDESS file; {RAVDESS_VIDEO}",
               "02": f"a video-only RAVDESS file; {RAVDESS_VIDEO}"},
               "channel": {"02": "a RAVDESS song file; FSER uses speech "
                           "(vocal channel 01) only"}},
           nouns={"speaker": "actor", "channel": "vocal channel",
                  "text": "statement"}),
    Corpus("aesdd", "AESDD", "greek", "free download; no official licence",
           "anger/a01 (1).wav",
           full_title="Acted Emotional Speech Dynamic Database",
           layout=PARENT,
           stem=r"(?P<emotion>[adfhs])(?P<text>\d\d) ?\((?P<speaker>\d+)\)",
           fields="emotion letter a d f h s, utterance, speaker",
           folder=r"(?P<label>[^/]+)", folder_help="emotion folder",
           labels={"a": "anger", "d": "disgust", "f": "fear",
                   "h": "happiness", "s": "sadness"},
           nouns={"emotion": "emotion letter"}),
    Corpus("crema_d", "CREMA-D", "english", "ODbL",
           "AudioWAV/1001_DFA_ANG_XX.wav",
           layout=r"AudioWAV/(?:[^/]+/)*(?P<clip>[^/]+)",  # not AudioMP3/
           stem=r"(?P<speaker>1\d\d\d)_(?P<text>[A-Z]{3})_"
           r"(?P<emotion>[A-Z]{3})_(?P<intensity>[A-Z]{2})",
           fields="actor, sentence, emotion, level",
           labels={"ANG": "anger", "DIS": "disgust", "FEA": "fear",
                   "HAP": "happiness", "NEU": "neutral", "SAD": "sadness"},
           speakers=_numbered(1001, 1091, 4), read_genders=crema_genders,
           codes={"text": ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL",
                           "ITH", "DFA", "ITS", "TSI", "WSI"),
                  "intensity": {"LO": "low", "MD": "medium", "HI": "high",
                                "XX": "unspecified"}},
           nouns={"speaker": "actor", "text": "sentence",
                  "intensity": "level"}),
    Corpus("tess", "TESS", "english", "university repository",
           "OAF_angry/OAF_back_angry.wav",
           full_title="Toronto emotional speech set",
           # Folder names vary in case: only the file name is read.
           layout=PARENT,
           stem=r"(?i)(?P<speaker>[oy]af)_(?P<text>[a-z]+)_"
           r"(?P<emotion>[a-z]+)",
           fields="speaker OAF or YAF, word, emotion",
           labels={"angry": "anger", "disgust": "disgust", "fear": "fear",
                   "happy": "happiness", "ps": "pleasant surprise",
                   "sad": "sadness", "neutral": "neutral"},
           speakers={"OAF": "female", "YAF": "female"}),  # two women
    Corpus("cafe", "CaFE", "french", "Zenodo", "Colère/Faible/01-C-1-1.wav",
           full_title="Canadian French Emotional speech dataset",
           # Neutral clips have no intensity folder.
           layout=r"(?:[^/]+/)?(?:(?i:faible|fort)/)?[^/]+",
           stem=r"(?P<speaker>\d\d)-(?P<emotion>[CDJNPST])-\d-(?P<text>\d)",
           fields="actor, emotion letter C D J N P S T, intensity, sentence",
           folder=r"(?P<intensity>faible|fort)|.*",
           labels=CAFE_LETTERS, speakers=_numbered(1, 12, 2),
           codes={"intensity": {"faible": "weak", "fort": "strong"}},
           nouns={"speaker": "actor", "emotion": "emotion letter"}),
    Corpus("subesco", "SUBESCO", "bangla", "CC-BY-4.0",
           "M_01_NAME_S_10_ANGRY_1.wav",
           full_title="SUST Bangla Emotional Speech Corpus",
           layout=FILE,
           stem=r"(?P<gender>[MF])_(?P<number>\d\d)_[A-Za-z]+_S_(?P<text>\d+)_"
           r"(?P<emotion>[A-Z]+)_\d",
           fields="gender, speaker, name, sentence, emotion, take",
           speaker_id="{gender}{number}",
           labels={"ANGRY": "anger", "DISGUST": "disgust", "FEAR": "fear",
                   "HAPPY": "happiness", "NEUTRAL": "neutral",
                   "SAD": "sadness", "SURPRISE": "surprise"}),
    Corpus("shemo", "ShEMO", "persian", "academic use", "female/F21N23.wav",
           full_title="Sharif Emotional Speech Database",
           layout=PARENT,
           stem=r"(?P<speaker>(?P<gender>[FM])\d\d)(?P<emotion>[AHNSWF])"
           r"(?P<text>\d\d)",
           fields="gender, speaker, emotion letter A H N S W F, utterance",
           folder=r"(?P<gender>male|female)|.*",
           labels={"A": "anger", "H": "happiness", "N": "neutral",
                   "S": "sadness", "W": "surprise", "F": "fear"}),
    Corpus("urdu", "URDU", "urdu", "public repository",
           "Angry/SM20_F8_A012.wav", full_title="URDU dataset",
           layout=PARENT,
           stem=r"(?P<speaker>S(?P<gender>[MF])\d+)_F\d+_"
           r"(?P<emotion>[AHNS])(?P<text>\d+)",
           fields="speaker with gender, file, emotion letter, number",
           folder=r"(?P<label>[^/]+)", folder_help="emotion folder",
           labels={"A": "anger", "H": "happiness", "N": "neutral",
                   "S": "sadness"},
           codes={"label": {"angry": "anger", "happy": "happiness",
                            "neutral": "neutral", "sad": "sadness"}},
           nouns={"emotion": "emotion letter"}),
    Corpus("jl", "JL-Corpus", "english", "ODC-By", "male1_angry_1a_1.wav",
           full_title="JL-Corpus (primary emotions)",
           layout=FILE,
           stem=r"(?P<speaker>(?P<gender>male|female)\d)_(?P<emotion>[a-z]+)_"
           r"(?P<text>\d+[a-z])_\d+",
           fields="speaker, emotion, sentence, take",
           labels={"angry": "anger", "sad": "sadness", "neutral": "neutral",
                   "happy": "happiness", "excited": "excitement"},
           refused={"emotion": {
               e: f"a secondary emotion ({e}); fser/jl holds the five "
               "primary ones" for e in JL_SECONDARY}}),
    Corpus("emov_db", "EmoV-DB", "english", "non-commercial",
           "bea_Amused/amused_1-15_0001.wav",
           layout=PARENT,
           stem=r"(?i)(?P<emotion>[a-z]+)_\d+-\d+_(?P<text>\d{4})",
           fields="emotion, sentence range, number",
           folder=r"(?P<speaker>[a-z]+)_(?P<emotion>[a-z]+)",
           folder_help="speaker_Emotion folder",
           labels={"amused": "amusement", "angry": "anger",
                   "disgusted": "disgust", "neutral": "neutral",
                   "sleepy": "sleepiness"},
           # The documentation: Bea and Jenie are women, Josh and Sam men.
           speakers={"bea": "female", "jenie": "female", "josh": "male",
                     "sam": "male"}),
    Corpus("esd", "ESD", "mandarin, english", "research use",
           "0011/Angry/0011_000351.wav",
           full_title="Emotional Speech Dataset",
           layout=r"00\d\d/.+|[^/]+",  # from the speaker's folder down
           stem=r"(?P<speaker>\d{4})_(?P<text>\d{6})",
           fields="speaker, number",
           # Some copies split each emotion folder into train/ test/
           # evaluation/.
           folder=r"(?P<speaker>\d{4})/(?P<emotion>[^/]+)(?:/[^/]+)?",
           folder_help="emotion folder (Angry, Happy, Neutral, Sad, "
           "Surprise) in a speaker folder",
           labels={"angry": "anger", "happy": "happiness",
                   "neutral": "neutral", "sad": "sadness",
                   "surprise": "surprise"},
           speakers=_numbered(1, 20, 4),
           languages={**dict.fromkeys(_numbered(1, 10, 4), "mandarin"),
                      **dict.fromkeys(_numbered(11, 20, 4), "english")},
           nouns={"emotion": "emotion folder"}),
    Corpus("mesd", "MESD", "spanish", "CC-BY-4.0", "Anger_C_A_abajo.wav",
           full_title="Mexican Emotional Speech Database",
           layout=FILE,
           # The voice type F M C is not a speaker: MESD publishes no speaker
           # ids, so its clips have none (the speaker protocols refuse it).
           stem=r"(?P<emotion>[A-Za-z]+)_(?P<gender>[FMC])_(?P<text>[AB]_.+)",
           fields="emotion, voice type F M C, corpus A B, word",
           labels={"anger": "anger", "disgust": "disgust", "fear": "fear",
                   "happiness": "happiness", "neutral": "neutral",
                   "sadness": "sadness"},
           codes={"gender": {"F": "female", "M": "male", "C": ""}},
           nouns={"gender": "voice type"}),
    Corpus("oreau", "Oréau", "french", "Zenodo", "10a02Ja.wav",
           full_title="Oréau French emotional speech",
           layout=FILE,
           stem=r"(?P<speaker>\d\d)(?P<text>[a-z]\d\d)(?P<emotion>[CDJNPST])"
           r"[a-z]?",
           fields="speaker, utterance, emotion letter C D J N P S T",
           labels=CAFE_LETTERS, nouns={"emotion": "emotion letter"}),
)
CORPORA = {c.name: c for c in REGISTRY}


def corpus_relative(corpus: str, relpath: str) -> str | None:
  """The name inside its corpus of a path found under a corpus folder (an
  archive's top folders dropped), or None where the corpus keeps no clip
  (EmoDB's label folders, CREMA-D's AudioMP3/, ...)."""
  if corpus not in CORPORA:
    raise ValueError(f"unknown corpus {corpus!r}; known: {', '.join(CORPORA)}")
  spec = CORPORA[corpus]
  # The longest tail of whole path parts that the layout matches.
  m = re.search(rf"(?<![^/])(?:{spec.layout})$", relpath)
  if m is None:
    return None
  return spec.prefix + (m["clip"] if "clip" in m.re.groupindex else m[0])
