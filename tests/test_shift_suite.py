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
