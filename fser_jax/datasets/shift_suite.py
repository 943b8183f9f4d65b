"""Target sets unlike the training data: the shift suite.

  python -m fser_jax.datasets.shift_suite OUT_DIR [--sets greek_phone,...]

The embedded corpus and the embedded stand-in for a user's recordings come
from one generator (fser_jax/datasets/synthetic.py): a recipe tuned on them
is tuned to home. These sets differ from it the way users' recordings do:

- another synthesis method: espeak-ng's formant synthesiser (Debian package
  `espeak-ng`), speaking real sentences of another language, with its own
  voices; emotions acted through prosody (pitch level and range, rate,
  loudness) and voice quality (sox filters), at a random "intensity" per
  clip (0.4-1.0 of the full acting), so classes overlap as in real speech;
- channels made by sox (Debian package `sox`, `libsox-fmt-all` for AMR),
  not by fser_jax/frontend/wave_augment.py, which fser_robust trains with.

| set | language | speakers | classes (label names) | channel |
|---|---|---|---|---|
| greek_phone | Greek | 6 | anger disgust fear happiness sadness (balanced) | 300-3400 Hz, 8 kHz, mu-law, noise 10-20 dB SNR; WAV and FLAC |
| spanish_mobile | Spanish | 6 | furious down cheerful scared relaxed plain (unbalanced) | AMR-NB mobile codec, a room, babble 5-20 dB SNR, a loudness offset of -20..+20 dB per speaker; 16 kHz |
| french_room | French | 3 | anger happiness neutral sadness | a reverberant room, babble 0-10 dB SNR, 44.1 kHz |
| english_gsm | English, by another synthesiser | 5 | irritated low cheerful afraid relaxed plain | GSM full-rate codec at 8 kHz, white noise 15-25 dB SNR, a loudness offset of -15..+15 dB per speaker; manifest columns file,emotion,talker |
| polish_voip | Polish; emotion acted after synthesis | 5 (one a Klatt voice source) | gniew smutek radosc strach spokoj (spokoj the most) | MP3 at 16 or 24 kbit/s (one per call), 3-8% of 20 ms packets lost, in bursts, fan noise 25-35 dB SNR; 16 kHz |

`english_gsm` differs in kind from the espeak-ng sets: it is spoken by
Flite (Debian package `flite`), whose voices are built from recordings of
real speakers (CMU ARCTIC's awb, rms and slt by statistical parametric
synthesis, kal's diphones), acted by Flite's own duration and pitch-range
controls and a sox pitch shift; its manifest uses another layout
(`--columns path=file,label=emotion,speaker=talker`).

`polish_voip` differs in kind in how emotion is acted: espeak-ng reads
every sentence neutrally, and the emotion is made afterwards by sox
(POST_ACTING): a pitch shift of the whole voice and a tempo change that
keep espeak-ng's own intonation contour, gain, and voice quality made by
effects (overdrive and a treble lift for anger, a tremolo for fear, a
low-pass for sadness), each at a random intensity per clip. The other
espeak-ng sets change the synthesiser's targets instead (SSML pitch range
and rate), which reshapes the contour. Its channel is a lossy transform
codec with packet loss, as on a voice call: an MP3 round trip at a low
bitrate (the encoder's low-pass leaves nothing above about 6 kHz of the 8
kHz band) and 20 ms frames muted where packets were lost. Polish, its voices
(espeak-ng variants none of the others use, one on the Klatt voice source)
and its label names are its own.

Each set is OUT_DIR/<set>/ with its audio and a manifest.csv
(path,label,speaker,gender) for configs/own_data.py. Deterministic for a
seed; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import tempfile

import numpy as np

from fser_jax.datasets import files

SENTENCES = {
    "el": ["Το τρένο φεύγει στις επτά το πρωί.",
           "Άφησα τα κλειδιά πάνω στο τραπέζι.",
           "Αύριο θα πάμε στο χωριό με τη γιαγιά.",
           "Η πόρτα ήταν ανοιχτή όλη τη νύχτα.",
           "Δεν ξέρω τι ώρα θα γυρίσει ο Νίκος.",
           "Το γράμμα ήρθε χθες το απόγευμα.",
           "Πήραμε καινούργιο αυτοκίνητο την Τρίτη.",
           "Η θάλασσα είναι πολύ κρύα σήμερα.",
           "Μου είπε να τον περιμένω στη γωνία.",
           "Το κατάστημα κλείνει νωρίς το Σάββατο."],
    "pl": ["Pociąg odjeżdża o siódmej rano.",
           "Zostawiłem klucze na stole w kuchni.",
           "Jutro jedziemy na wieś z babcią.",
           "Drzwi były otwarte przez całą noc.",
           "Nie wiem, o której wróci Tomek.",
           "List przyszedł wczoraj po południu.",
           "We wtorek kupiliśmy nowy samochód.",
           "Woda w jeziorze jest dziś bardzo zimna.",
           "Powiedział, żebym czekał na niego na rogu.",
           "Sklep w sobotę zamykają wcześnie."],
    "es": ["El tren sale a las siete de la mañana.",
           "Dejé las llaves encima de la mesa.",
           "Mañana vamos al pueblo con la abuela.",
           "La puerta estuvo abierta toda la noche.",
           "No sé a qué hora vuelve Carlos.",
           "La carta llegó ayer por la tarde.",
           "Compramos un coche nuevo el martes.",
           "El agua del mar está muy fría hoy.",
           "Me dijo que lo esperara en la esquina.",
           "La tienda cierra temprano los sábados."],
    "fr": ["Le train part à sept heures du matin.",
           "J'ai laissé les clés sur la table.",
           "Demain nous allons au village avec grand-mère.",
           "La porte est restée ouverte toute la nuit.",
           "Je ne sais pas à quelle heure rentre Paul.",
           "La lettre est arrivée hier après-midi.",
           "Nous avons acheté une voiture neuve mardi.",
           "La mer est très froide aujourd'hui.",
           "Il m'a dit de l'attendre au coin de la rue.",
           "Le magasin ferme tôt le samedi."],
    "en": ["The train leaves at seven in the morning.",
           "I left the keys on the kitchen table.",
           "Tomorrow we are driving to the village with grandmother.",
           "The door was open the whole night.",
           "I do not know when Peter is coming back.",
           "The letter arrived yesterday afternoon.",
           "We bought a new car on Tuesday.",
           "The water in the lake is very cold today.",
           "He told me to wait for him at the corner.",
           "The shop closes early on Saturdays."],
}

# Acting, relative to a speaker's neutral voice: pitch (%), SSML pitch range,
# rate (%), loudness (dB), and a sox voice-quality effect.
ACTING = {
    "neutral": dict(pitch=0, range="medium", rate=100, loud=0.0, sox=[]),
    "anger": dict(pitch=15, range="high", rate=115, loud=6.0,
                  sox=["treble", "+5", "3000"]),
    "happiness": dict(pitch=25, range="x-high", rate=110, loud=3.0, sox=[]),
    "fear": dict(pitch=35, range="low", rate=125, loud=-2.0,
                 sox=["tremolo", "7", "40"]),
    "sadness": dict(pitch=-15, range="x-low", rate=75, loud=-8.0,
                    sox=["lowpass", "2500"]),
    "disgust": dict(pitch=-10, range="high", rate=80, loud=0.0,
                    sox=["bass", "+4", "treble", "-3"]),
    "calm": dict(pitch=-5, range="low", rate=85, loud=-4.0, sox=[]),
}
RANGES = ("x-low", "low", "medium", "high", "x-high")

# (espeak-ng variant, gender, base pitch 0-99, words per minute)
SPEAKERS = [("m1", "male", 40, 165), ("f2", "female", 62, 175),
            ("m3", "male", 34, 150), ("f4", "female", 70, 160),
            ("m7", "male", 46, 180), ("f5", "female", 58, 170)]


# polish_voip's voices: variants the other espeak-ng sets leave out, and
# klatt3, espeak-ng's Klatt voice source in place of its default one.
PL_SPEAKERS = [("m2", "male", 42, 155), ("f3", "female", 60, 170),
               ("klatt3", "male", 36, 145), ("f1", "female", 66, 180),
               ("m6", "male", 50, 165)]

# Acting after synthesis (sets with acted='post'): sox effects on a
# neutrally read sentence, each scaled by the clip's intensity i. `cents`
# shifts the pitch without touching the timing, `tempo` the timing without
# the pitch; `loud` is dB as in ACTING; `sox(i)` is the voice quality.
POST_ACTING = {
    "anger": dict(cents=300, tempo=1.18, loud=6.0,
                  sox=lambda i: ["overdrive", f"{4 + 12 * i:.1f}", "20",
                                 "treble", f"{6 * i:+.1f}", "2500"]),
    "sadness": dict(cents=-250, tempo=0.75, loud=-6.0,
                    sox=lambda i: ["lowpass", f"{3800 - 1800 * i:.0f}"]),
    "happiness": dict(cents=450, tempo=1.08, loud=3.0,
                      sox=lambda i: ["equalizer", "3000", "1q",
                                     f"{4 * i:+.1f}"]),
    "fear": dict(cents=200, tempo=1.25, loud=-3.0,
                 sox=lambda i: ["highpass", "250", "tremolo",
                                f"{6 + 2 * i:.1f}", f"{30 + 40 * i:.0f}"]),
    "calm": dict(cents=-100, tempo=0.9, loud=-2.0,
                 sox=lambda i: ["lowpass", f"{6000 - 1500 * i:.0f}"]),
}


def post_act(emotion: str, intensity: float, rng) -> tuple[list[str], float]:
  """sox effects that act `emotion` on neutral speech at `intensity`, and
  the loudness change in dB; the pitch and tempo jitter a little per clip
  so that neighbouring classes (calm and sadness, anger and happiness)
  overlap at low intensities."""
  a = POST_ACTING[emotion]
  cents = a["cents"] * intensity + rng.uniform(-60, 60)
  tempo = (1 + (a["tempo"] - 1) * intensity) * rng.uniform(0.96, 1.04)
  effects = ["pitch", f"{cents:.0f}", "tempo", "-s", f"{tempo:.3f}"]
  return effects + a["sox"](intensity), a["loud"] * intensity


# Flite's voices (name, gender); each answers the duration control, the
# pitch shift is sox's (not every Flite voice follows its f0 targets).
FLITE_SPEAKERS = [("awb", "male"), ("slt", "female"), ("rms", "male"),
                  ("kal16", "male"), ("kal", "male")]


@dataclasses.dataclass(frozen=True)
class ShiftSet:
  name: str
  voice: str  # espeak-ng language (or 'en' for Flite)
  speakers: int
  counts: dict  # label name -> clips per speaker
  emotion: dict  # label name -> ACTING key (POST_ACTING key if 'post')
  channel: str  # 'phone' | 'mobile' | 'room' | 'gsm' | 'voip'
  rate: int  # stored sample rate
  engine: str = "espeak-ng"  # or 'flite'
  columns: tuple = ("path", "label", "speaker", "gender")  # manifest header
  acted: str = "synth"  # 'synth': by the synthesiser; 'post': POST_ACTING
  cast: tuple = ()  # speakers; empty: SPEAKERS (FLITE_SPEAKERS for Flite)


SETS = {
    "greek_phone": ShiftSet(
        "greek_phone", "el", 6,
        {e: 12 for e in ("anger", "disgust", "fear", "happiness", "sadness")},
        {e: e for e in ("anger", "disgust", "fear", "happiness", "sadness")},
        "phone", 8000),
    "spanish_mobile": ShiftSet(
        "spanish_mobile", "es", 6,
        {"plain": 18, "cheerful": 14, "furious": 12, "down": 12,
         "relaxed": 10, "scared": 10},
        {"plain": "neutral", "cheerful": "happiness", "furious": "anger",
         "down": "sadness", "relaxed": "calm", "scared": "fear"},
        "mobile", 16000),
    "french_room": ShiftSet(
        "french_room", "fr", 3,
        {e: 30 for e in ("anger", "happiness", "neutral", "sadness")},
        {e: e for e in ("anger", "happiness", "neutral", "sadness")},
        "room", 44100),
    "english_gsm": ShiftSet(
        "english_gsm", "en", 5,
        {e: 12 for e in ("irritated", "low", "cheerful", "afraid", "relaxed",
                         "plain")},
        {"irritated": "anger", "low": "sadness", "cheerful": "happiness",
         "afraid": "fear", "relaxed": "calm", "plain": "neutral"},
        "gsm", 8000, engine="flite",
        columns=("file", "emotion", "talker", "sex")),
    "polish_voip": ShiftSet(
        "polish_voip", "pl", 5,
        {"spokoj": 16, "gniew": 14, "radosc": 14, "smutek": 14,
         "strach": 12},
        {"spokoj": "calm", "gniew": "anger", "radosc": "happiness",
         "smutek": "sadness", "strach": "fear"},
        "voip", 16000, acted="post", cast=tuple(PL_SPEAKERS)),
}
# Label map from a set's names to FSER's classes (the zero-shot arm).
LABEL_MAPS = {"spanish_mobile": "furious=anger,down=sadness,cheerful=happiness,"
                                 "relaxed=calm,plain=neutral,scared=anxiety",
              "polish_voip": "gniew=anger,smutek=sadness,radosc=happiness,"
                             "strach=anxiety,spokoj=calm"}


def check_tools(sets=tuple(SETS)) -> None:
  need = ["sox"] + sorted({SETS[n].engine for n in sets})
  missing = [t for t in need if shutil.which(t) is None]
  if missing:
    raise SystemExit(f"shift_suite needs {' and '.join(missing)} on PATH: "
                     "apt-get install espeak-ng flite sox libsox-fmt-all")


def _run(cmd: list[str]) -> None:
  r = subprocess.run(cmd, capture_output=True, text=True)
  if r.returncode:
    raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()[:300]}")


def _read(path: str) -> tuple[np.ndarray, int]:
  import soundfile as sf
  x, sr = sf.read(path, dtype="float32", always_2d=True)
  return x.mean(1), sr


def speak(text: str, voice: str, speaker: tuple, acting: dict,
          intensity: float, rng, path: str) -> None:
  """One utterance by espeak-ng, acted with `intensity` of `acting`."""
  variant, _, base_pitch, wpm = speaker
  pitch = acting["pitch"] * intensity + rng.uniform(-6, 6)
  rate = 100 + (acting["rate"] - 100) * intensity + rng.uniform(-8, 8)
  r = RANGES.index(acting["range"])
  r = int(round(2 + (r - 2) * intensity))
  ssml = (f'<speak><prosody pitch="{pitch:+.0f}%" range="{RANGES[r]}" '
          f'rate="{rate:.0f}%">{text}</prosody></speak>')
  _run(["espeak-ng", "-v", f"{voice}+{variant}", "-p", str(base_pitch),
        "-s", str(wpm), "-m", "-w", path, ssml])


def speak_flite(text: str, speaker: tuple, acting: dict, intensity: float,
                rng, path: str, tmp: str) -> None:
  """One utterance by Flite: its duration and pitch-range controls, then
  sox's pitch shift for the level (in cents)."""
  voice, _ = speaker
  rate = 100 + (acting["rate"] - 100) * intensity + rng.uniform(-8, 8)
  spread = {"x-low": 5, "low": 12, "medium": 20, "high": 32, "x-high": 45}
  r = RANGES.index(acting["range"])
  r = int(round(2 + (r - 2) * intensity))
  raw = os.path.join(tmp, "flite.wav")
  _run(["flite", "-voice", voice, "-set", f"duration_stretch={100 / rate:.3f}",
        "-set", f"int_f0_target_stddev={spread[RANGES[r]]}", "-t", text,
        "-o", raw])
  pitch = acting["pitch"] * intensity + rng.uniform(-6, 6)
  cents = 1200 * np.log2(1 + pitch / 100)
  _run(["sox", raw, path, "pitch", f"{cents:.0f}"])


def _mix(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
  px = np.mean(x ** 2) + 1e-12
  pn = np.mean(noise ** 2) + 1e-12
  return x + noise * np.sqrt(px / (pn * 10 ** (snr_db / 10)))


def _excerpt(bank: np.ndarray, n: int, rng) -> np.ndarray:
  s = rng.integers(0, max(1, bank.size - n))
  out = bank[s:s + n]
  return np.pad(out, (0, n - out.size))


def _pink(n: int, rng) -> np.ndarray:
  spec = np.fft.rfft(rng.standard_normal(n))
  spec /= np.sqrt(np.maximum(np.arange(spec.size), 1))
  return np.fft.irfft(spec, n).astype(np.float32)


def babble_bank(s: ShiftSet, tmp: str, rng, seconds: float = 30.0,
                rate: int = 22050) -> np.ndarray:
  """Several voices of the set's language talking at once."""
  streams = []
  for v in range(4):
    parts, total = [], 0
    while total < seconds * rate:
      p = os.path.join(tmp, "babble.wav")
      text = SENTENCES[s.voice][rng.integers(len(SENTENCES[s.voice]))]
      speak(text, s.voice, SPEAKERS[(v + 3) % len(SPEAKERS)],
            ACTING["neutral"], 0.0, rng, p)
      x, rate = _read(p)
      parts.append(x)
      total += x.size
    streams.append(np.concatenate(parts)[:int(seconds * rate)])
  return np.sum(streams, 0)


def drop_packets(y: np.ndarray, sr: int, loss: float, rng,
                 frame_s: float = 0.02, fade_s: float = 0.002) -> np.ndarray:
  """Mutes the 20 ms frames whose packets were lost: each frame is lost
  with probability `loss`, and the one after a lost frame with 0.3, as
  losses come in bursts on a congested link (`loss` 0.02-0.06 loses
  3-8% of the frames). A 2 ms fade on either side stands in for the
  click suppression of a receiver without concealment."""
  y = y.copy()
  n, f = int(frame_s * sr), int(fade_s * sr)
  lost = False
  for start in range(0, y.size - n + 1, n):
    lost = rng.random() < (0.3 if lost else loss)
    if not lost:
      continue
    y[start:start + n] = 0.0
    before = y[max(0, start - f):start]
    before *= np.linspace(1, 0, before.size, endpoint=False)
    after = y[start + n:start + n + f]
    after *= np.linspace(0, 1, after.size, endpoint=False)
  return y


def channel(s: ShiftSet, x: np.ndarray, sr: int, extra_sox: list[str],
            babble: np.ndarray, gain_db: float, rng, tmp: str,
            call: tuple | None = None) -> np.ndarray:
  """The acting's voice quality, then the set's channel; returns audio at
  s.rate."""
  import soundfile as sf
  src, dst = os.path.join(tmp, "in.wav"), os.path.join(tmp, "out.wav")
  x = x * 10 ** (gain_db / 20)
  if s.channel == "room" or s.channel == "mobile":
    x = _mix(x, _excerpt(babble, x.size, rng),
             rng.uniform(0, 10) if s.channel == "room" else rng.uniform(5, 20))
  sf.write(src, x / max(1.0, float(np.abs(x).max()) / 0.99), sr)
  effects = list(extra_sox)
  if s.channel == "phone":
    effects += ["sinc", "300-3400", "rate", "8000"]
    _run(["sox", src, "-e", "u-law", "-b", "8", dst] + effects)
    y, _ = _read(dst)
    return _mix(y, _pink(y.size, rng), rng.uniform(10, 20))
  if s.channel == "gsm":
    gsm = os.path.join(tmp, "out.gsm")
    _run(["sox", src, "-r", "8000", "-c", "1", gsm] + effects)
    _run(["sox", gsm, "-r", str(s.rate), dst])
    y, _ = _read(dst)
    return _mix(y, rng.standard_normal(y.size).astype(np.float32),
                rng.uniform(15, 25))
  if s.channel == "voip":
    # A call: fan noise at the talker's end, the codec, then the network.
    # `call` is (bitrate in kbit/s, packet loss), fixed per speaker.
    bitrate, loss = call
    _run(["sox", src, dst] + effects)
    y, sr = _read(dst)
    # The acting's loudness is gain_db alone: overdrive and the treble
    # lift raise the level by several dB more, and anger would be told
    # apart by its level alone.
    y *= np.sqrt(np.mean(x ** 2) / (np.mean(y ** 2) + 1e-12))
    y = _mix(y, _pink(y.size, rng), rng.uniform(25, 35))
    sf.write(src, y / max(1.0, float(np.abs(y).max()) / 0.99), sr)
    mp3 = os.path.join(tmp, "out.mp3")
    _run(["sox", src, "-r", str(s.rate), "-C", str(bitrate), mp3])
    _run(["sox", mp3, dst])
    y, sr = _read(dst)
    return drop_packets(y, sr, loss, rng)
  if s.channel == "mobile":
    amr = os.path.join(tmp, "out.amr-nb")
    _run(["sox", src, "-r", "8000", amr] + effects
         + ["reverb", f"{rng.uniform(20, 50):.0f}", "50", "40"])
    _run(["sox", amr, "-r", str(s.rate), dst])
    return _read(dst)[0]
  effects += ["reverb", f"{rng.uniform(50, 90):.0f}", "50", "80",
              "rate", str(s.rate)]
  _run(["sox", src, dst] + effects)
  return _read(dst)[0]


def write_set(s: ShiftSet, out_dir: str, seed: int = 0,
              scale: float = 1.0) -> str:
  """Writes one set under out_dir/<name>; returns its manifest's path.
  `scale` multiplies the clips per speaker and label (tests: small)."""
  import soundfile as sf
  root = os.path.join(out_dir, s.name)
  os.makedirs(root, exist_ok=True)
  rng = np.random.default_rng([seed, sum(map(ord, s.name))])
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    babble = (babble_bank(s, tmp, rng, seconds=30.0 * min(1.0, scale * 2))
              if s.channel in ("room", "mobile") else None)
    cast = s.cast or (FLITE_SPEAKERS if s.engine == "flite" else SPEAKERS)
    post = s.acted == "post"
    for si in range(s.speakers):
      spk = cast[si]
      spk_id = f"{s.voice}{si + 1:02d}"
      # A recording session per speaker: its level (mobile: +-20 dB).
      gain = {"mobile": rng.uniform(-20, 20), "gsm": rng.uniform(-15, 15)
              }.get(s.channel, 0.0)
      # A call per speaker: its bitrate and packet loss.
      call = ((int(rng.choice([16, 24])), rng.uniform(0.02, 0.06))
              if s.channel == "voip" else None)
      for label, n in s.counts.items():
        acting = ACTING["neutral" if post else s.emotion[label]]
        for u in range(max(1, int(round(n * scale)))):
          text = SENTENCES[s.voice][(u + si) % len(SENTENCES[s.voice])]
          raw = os.path.join(tmp, "clip.wav")
          intensity = rng.uniform(0.4, 1.0)
          if s.engine == "flite":
            speak_flite(text, spk, acting, intensity, rng, raw, tmp)
          else:
            # 'post': read neutrally (intensity 0), acted by sox below.
            speak(text, s.voice, spk, acting, 0.0 if post else intensity,
                  rng, raw)
          effects, loud = acting["sox"], acting["loud"] * intensity
          if post:
            effects, loud = post_act(s.emotion[label], intensity, rng)
          x, sr = _read(raw)
          level = gain + loud + rng.uniform(-3, 3) - 6
          y = channel(s, x, sr, effects, babble, level, rng, tmp, call)
          y = np.clip(y, -1, 1)
          ext = "flac" if (s.channel == "phone" and u % 2) else "wav"
          rel = os.path.join(spk_id, f"{spk_id}_{label}_{u:02d}.{ext}")
          os.makedirs(os.path.join(root, spk_id), exist_ok=True)
          sf.write(os.path.join(root, rel), y, s.rate, subtype="PCM_16")
          rows.append((rel, label, spk_id, spk[1]))
  return files.write_manifest(root, rows, columns=s.columns)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("out_dir")
  p.add_argument("--sets", default=",".join(SETS),
                 help="comma-separated: " + ", ".join(SETS))
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--scale", type=float, default=1.0,
                 help="clips per speaker and label x this")
  a = p.parse_args(argv)
  names = a.sets.split(",")
  for name in names:
    if name not in SETS:
      raise SystemExit(f"--sets: unknown set {name!r}; known: "
                       + ", ".join(SETS))
  check_tools(names)
  for name in names:
    print(write_set(SETS[name], a.out_dir, a.seed, a.scale))


if __name__ == "__main__":
  main()
