"""The shift suite's sets differ from the training data the way they claim:
rates, channels, label names, speakers and loudness offsets, measured on
the written files (needs espeak-ng and sox, as the README's install says)."""

import csv
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from fser_jax.datasets import shift_suite

pytestmark = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")),
    reason="apt-get install espeak-ng sox libsox-fmt-all")


def _rows(manifest):
  with open(manifest) as f:
    return list(csv.DictReader(f))


def _band_share(x, sr, lo, hi):
  p = np.abs(np.fft.rfft(x)) ** 2
  f = np.fft.rfftfreq(x.size, 1 / sr)
  return p[(f >= lo) & (f <= hi)].sum() / p.sum()


def test_phone_set_is_band_limited_8khz_and_balanced(tmp_path):
  s = shift_suite.SETS["greek_phone"]
  rows = _rows(shift_suite.write_set(s, str(tmp_path), scale=0.1))
  assert len(rows) == 6 * 5  # 6 speakers x 5 labels x 1 clip
  assert {r["label"] for r in rows} == set(s.counts)
  assert len({r["speaker"] for r in rows}) == 6
  assert {os.path.splitext(r["path"])[1] for r in rows} <= {".wav", ".flac"}
  for r in rows[:5]:
    x, sr = sf.read(os.path.join(tmp_path, "greek_phone", r["path"]))
    assert sr == 8000 and x.size > 0.5 * sr
    # 300-3400 Hz holds the speech; below 200 Hz only the added noise.
    assert _band_share(x, sr, 300, 3400) > 0.8


def test_mobile_set_has_its_own_label_names_and_level_offsets(tmp_path):
  s = shift_suite.SETS["spanish_mobile"]
  rows = _rows(shift_suite.write_set(s, str(tmp_path), scale=0.1))
  assert {r["label"] for r in rows} == {"plain", "cheerful", "furious",
                                        "down", "relaxed", "scared"}
  level = {}
  for r in rows:
    x, sr = sf.read(os.path.join(tmp_path, "spanish_mobile", r["path"]))
    assert sr == 16000
    level.setdefault(r["speaker"], []).append(
        10 * np.log10(np.mean(x ** 2) + 1e-12))
  means = [np.mean(v) for v in level.values()]
  assert max(means) - min(means) > 10  # per-speaker offsets of -20..+20 dB


def test_room_set_has_three_speakers_at_44k(tmp_path):
  s = shift_suite.SETS["french_room"]
  rows = _rows(shift_suite.write_set(s, str(tmp_path), scale=1 / 30))
  assert len({r["speaker"] for r in rows}) == 3 and len(rows) == 12
  x, sr = sf.read(os.path.join(tmp_path, "french_room", rows[0]["path"]))
  assert sr == 44100


@pytest.mark.skipif(not shutil.which("flite"), reason="apt-get install flite")
def test_flite_gsm_set_another_synthesiser_its_own_columns_and_levels(
    tmp_path):
  """english_gsm: Flite's voices, 8 kHz through GSM, the manifest in the
  file,emotion,talker layout (read back through --columns), per-speaker
  level offsets of several dB."""
  from fser_jax.datasets import files
  s = shift_suite.SETS["english_gsm"]
  manifest = shift_suite.write_set(s, str(tmp_path), scale=1 / 6)
  with open(manifest) as f:
    assert f.readline().strip() == "file,emotion,talker,sex"
  entries, problems = files.scan_own(
      manifest, "path=file,label=emotion,speaker=talker,gender=sex")
  assert not problems and len(entries) == 5 * 6 * 2
  assert {e["label"] for e in entries} == set(s.counts)
  assert {e["speaker"] for e in entries} == {f"en0{i}" for i in range(1, 6)}
  level = {}
  for e in entries:
    x, sr = sf.read(e["abspath"])
    assert sr == 8000 and x.size > 0.5 * sr
    level.setdefault(e["speaker"], []).append(10 * np.log10(np.mean(x ** 2)))
  means = [np.mean(v) for v in level.values()]
  assert max(means) - min(means) > 6  # offsets of -15..+15 dB per speaker


def _zero_runs(x, at_least):
  """Lengths of the runs of exact zeros at least `at_least` samples long,
  but for one at the very start (an MP3 decoder starts with silence)."""
  z = np.concatenate([[0], (x == 0).astype(np.int8), [0]])
  edges = np.flatnonzero(np.diff(z))
  starts, lengths = edges[::2], edges[1::2] - edges[::2]
  return lengths[(lengths >= at_least) & (starts > 0)]


def _median_f0(x, sr):
  """Median autocorrelation pitch (60-400 Hz) of the loudest 40 ms frames."""
  n, hop = int(0.04 * sr), int(0.01 * sr)
  frames = np.stack([x[i:i + n] for i in range(0, x.size - n, hop)])
  rms = np.sqrt(np.mean(frames ** 2, 1))
  lo, hi = sr // 400, sr // 60
  f0 = []
  for fr in frames[rms > 0.3 * rms.max()]:
    fr = fr - fr.mean()
    ac = np.correlate(fr, fr, "full")[n - 1:]
    f0.append(sr / (lo + np.argmax(ac[lo:hi])))
  return float(np.median(f0))


def test_post_acting_shifts_pitch_and_tempo_and_colours_the_voice(tmp_path):
  """polish_voip's acting is sox on a neutral reading: at full intensity
  each recipe moves the measured pitch and duration its own way, anger
  brightens the spectrum and sadness dulls it."""
  rng = np.random.default_rng(0)
  neutral = str(tmp_path / "neutral.wav")
  shift_suite.speak(shift_suite.SENTENCES["pl"][7], "pl",
                    shift_suite.PL_SPEAKERS[0], shift_suite.ACTING["neutral"],
                    0.0, rng, neutral)
  x0, sr = sf.read(neutral)
  f0, dur = _median_f0(x0, sr), x0.size / sr
  acted = {}
  for emotion in shift_suite.POST_ACTING:
    effects, _ = shift_suite.post_act(emotion, 1.0, rng)
    out = str(tmp_path / f"{emotion}.wav")
    shift_suite._run(["sox", neutral, out] + effects)
    acted[emotion], _ = sf.read(out)
  ratio = {e: _median_f0(x, sr) / f0 for e, x in acted.items()}
  length = {e: x.size / sr / dur for e, x in acted.items()}
  # happiness +450 cents, anger +300, fear +200, calm -100, sadness -250
  # (each +-60 cents of jitter): the order of the measured pitch.
  assert ratio["happiness"] > ratio["anger"] > 1.1
  assert ratio["fear"] > 1.05 and ratio["sadness"] < 0.92
  assert ratio["calm"] < 1.0
  # tempo 0.75 for sadness stretches the clip by a third, 1.25 for fear
  # shortens it by a fifth (+-4% jitter).
  assert 1.2 < length["sadness"] < 1.45 and 0.72 < length["fear"] < 0.88
  assert length["anger"] < 0.92 and length["calm"] > 1.03
  share = {e: 1 - _band_share(x, sr, 0, 2500) for e, x in acted.items()}
  base = 1 - _band_share(x0, sr, 0, 2500)
  assert share["anger"] > 1.5 * base and share["sadness"] < 0.5 * base


def test_voip_set_mp3_band_packet_loss_and_its_own_labels(tmp_path):
  """polish_voip: 5 Polish speakers at 16 kHz, nothing above the MP3
  encoder's low-pass (about 6 kHz), and muted 20 ms frames (lost packets)
  in the audio."""
  s = shift_suite.SETS["polish_voip"]
  manifest = shift_suite.write_set(s, str(tmp_path), scale=1 / 14)
  with open(manifest) as f:
    assert f.readline().strip() == "path,label,speaker,gender"
  rows = _rows(manifest)
  assert len(rows) == 5 * 5  # 5 speakers x 5 labels x 1 clip
  assert {r["label"] for r in rows} == {"gniew", "smutek", "radosc",
                                        "strach", "spokoj"}
  assert {r["speaker"] for r in rows} == {f"pl0{i}" for i in range(1, 6)}
  with_loss = 0
  for r in rows:
    x, sr = sf.read(os.path.join(tmp_path, "polish_voip", r["path"]))
    assert sr == 16000 and x.size > 1.0 * sr
    assert _band_share(x, sr, 6500, 8000) < 1e-3
    # A lost packet is 320 zero samples; the fan noise under the speech
    # leaves no other run of zeros that long.
    runs = _zero_runs(x, 320)
    # Whole frames; the fades' faintest samples may round to zero as well.
    assert all(n % 320 < 16 for n in runs)
    with_loss += runs.size > 0
  # 3-8% of the frames lost, in bursts: few 2-3 s clips escape it.
  assert with_loss >= 0.8 * len(rows)
