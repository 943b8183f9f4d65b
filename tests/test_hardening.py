"""Wrong results without a word, and user errors as one line: own data
rebuilt when it changes, decaying schedules not silently stretched, two-speaker
data, TFDS_DATA_DIR, every family of user error exiting 2."""

import os

import numpy as np
import pytest
import soundfile as sf

from fser_jax import errors
from fser_jax.train import rundir
from fser_jax.data import splits
from fser_jax.datasets import files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _clip(path, f0=200.0, seconds=0.5, sr=16000):
  t = np.arange(int(sr * seconds)) / sr
  sf.write(path, (0.2 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), sr)


def _manifest(tmp_path, rows, extra_cols=()):
  lines = ["path,label" + "".join("," + c for c in extra_cols)]
  lines += [",".join(r) for r in rows]
  p = tmp_path / "m.csv"
  p.write_text("\n".join(lines) + "\n")
  return str(p)


def test_own_data_name_changes_with_its_content(tmp_path):
  for i in range(4):
    _clip(tmp_path / f"c{i}.wav", 150 + 30 * i)
  rows = [("c0.wav", "a"), ("c1.wav", "a"), ("c2.wav", "b"), ("c3.wav", "b")]
  name = lambda p: files.own_config_args(p)["name"]
  base = name(_manifest(tmp_path, rows))
  assert name(_manifest(tmp_path, rows)) == base  # same content, same build
  _clip(tmp_path / "c4.wav")
  assert name(_manifest(tmp_path, rows + [("c4.wav", "b")])) != base  # added
  assert name(_manifest(tmp_path, rows[:3] + [("c4.wav", "b")])) != base
  assert name(_manifest(tmp_path, rows[:3])) != base  # removed
  relabelled = rows[:3] + [("c3.wav", "a")]
  assert name(_manifest(tmp_path, relabelled)) != base  # relabelled
  with_spk = [r + (f"s{i % 2}",) for i, r in enumerate(rows)]
  assert name(_manifest(tmp_path, with_spk, ("speaker",))) != base  # column
  p = _manifest(tmp_path, rows)
  os.utime(tmp_path / "c0.wav", ns=(1, 1))  # a file replaced in place
  assert name(p) != base


def test_two_speakers_give_a_usable_speaker_split():
  labels = np.repeat(np.arange(2), 10)
  meta = {"label": labels, "speaker": np.array(["x", "y"] * 10, object),
          "corpus": np.array(["c"] * 20, object),
          "gender": np.array(["f"] * 20, object)}
  split = splits.assign("speaker", meta, fold=0)
  assert set(meta["speaker"][split == "test"]) == {"x"}
  train_spk = set(meta["speaker"][split == "train"])
  val_spk = set(meta["speaker"][split == "validation"])
  assert train_spk == val_spk == {"y"}  # validation from training speakers
  assert (split == "train").sum() > 0 and (split == "validation").sum() > 0


def test_tfds_data_dir_is_honoured(monkeypatch, tmp_path):
  from fser_jax.data import dataset_io
  from fser_jax import config
  c = config.base()
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  assert dataset_io.default_data_dir(c.data) == str(tmp_path)
  c.data.data_dir = "/elsewhere"
  assert dataset_io.default_data_dir(c.data) == "/elsewhere"


def test_extending_a_cosine_run_is_refused(tiny, tmp_path):
  c = tiny(**{"train.schedule": "cosine"})
  rundir.prepare(c, str(tmp_path))
  longer = tiny(**{"train.schedule": "cosine", "train.num_epochs": 5})
  with pytest.raises(rundir.WorkdirConflict, match="schedule's length"):
    rundir.prepare(longer, str(tmp_path))
  const = tiny()
  rundir.prepare(const, str(tmp_path / "const"))
  rundir.prepare(tiny(**{"train.num_epochs": 5}), str(tmp_path / "const"))


def test_every_user_error_derives_from_the_one_base():
  from fser_jax.frontend import audio
  from fser_jax import config
  from fser_jax.data import dataset_io
  from fser_jax.data import labels
  from fser_jax.train import loop as train
  from fser_jax.datasets import corpora
  for cls in (audio.AudioError, config.ConfigError, corpora.FilenameError,
              dataset_io.DatasetNotBuiltError, rundir.WorkdirConflict,
              splits.SplitError, train.TrainingDiverged, errors.DataError,
              errors.CheckpointError, labels.LabelMapError):
    assert issubclass(cls, errors.UserError), cls


def test_own_data_faults_exit_2_naming_the_file(tmp_path, subtests):
  cases = {}
  for case in ("no_audio", "one_label", "bad_columns", "two_speakers_corpus"):
    d = tmp_path / case
    d.mkdir()
    if case == "no_audio":
      (d / "a").mkdir()
      (d / "b").mkdir()
      (d / "a" / "notes.txt").write_text("x")
      path, msg = str(d), "no audio files found"
    elif case == "one_label":
      (d / "a").mkdir()
      _clip(d / "a" / "x.wav")
      path, msg = str(d), "only the label"
    elif case == "bad_columns":
      _clip(d / "x.wav")
      (d / "m.csv").write_text("file,emotion\nx.wav,a\n")
      path, msg = str(d / "m.csv"), "needs the columns path,label"
    else:  # the corpus protocol on one corpus: no fold 1
      for i in range(4):
        _clip(d / f"c{i}.wav", 150 + 20 * i)
      (d / "m.csv").write_text("path,label,speaker\n" + "".join(
          f"c{i}.wav,{'ab'[i % 2]},s{i // 2}\n" for i in range(4)))
      path, msg = str(d / "m.csv"), "data.fold=1 does not exist"
    args = ["--config", os.path.join(ROOT, f"configs/own_data.py:{path}"),
            "--workdir", str(tmp_path / "w" / case),
            f"--config.data.data_dir={tmp_path / 'tfds'}"]
    if case == "two_speakers_corpus":
      args += ["--config.data.protocol=corpus", "--config.data.fold=1"]
    cases[case] = (args, msg, path)
  from conftest import assert_one_line_exit_2, launch_all
  results = launch_all([a for a, _, _ in cases.values()])
  for (case, (_, msg, path)), got in zip(cases.items(), results):
    with subtests.test(case=case):
      assert_one_line_exit_2(got, msg)
      assert (os.path.basename(path) in got["stderr"]
              or case == "two_speakers_corpus")


def test_manifests_as_people_write_them(tmp_path):
  """BOM + CRLF (Excel's CSV UTF-8), unicode names, absolute paths, blank and
  duplicate rows, spaces around labels, a missing file, a one-clip class."""
  (tmp_path / "ä").mkdir()
  _clip(tmp_path / "ä" / "frö.wav")
  _clip(tmp_path / "b.wav", 220)
  _clip(tmp_path / "c.wav", 260)
  absolute = str(tmp_path / "c.wav")
  text = ("Path,Label,Speaker\r\n"
          "ä/frö.wav, glücklich ,s1\r\n"
          "\r\n"
          "b.wav,wütend,s2\r\n"
          "b.wav,wütend,s2\r\n"
          f"{absolute},wütend,s1\r\n"
          "gone.wav,wütend,s2\r\n")
  p = tmp_path / "m.csv"
  p.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
  entries, problems = files.scan_own(str(p))
  assert [e["label"] for e in entries] == ["wütend", "glücklich", "wütend"] \
      or sorted(e["label"] for e in entries) == ["glücklich", "wütend", "wütend"]
  assert {e["speaker"] for e in entries} == {"s1", "s2"}
  assert any("listed again" in x for x in problems)
  assert any("gone.wav: no such file" in x for x in problems)
  assert len(entries) == 3
  # Conflicting duplicate and case-only label variants: one named line each.
  p.write_text("path,label\nb.wav,a\nb.wav,b\nc.wav,a\n")
  with pytest.raises(errors.DataError, match="listed twice with different"):
    files.scan_own(str(p))
  p.write_text("path,label\nb.wav,Happy\nc.wav,happy\n")
  with pytest.raises(errors.DataError, match="differ only in case"):
    files.scan_own(str(p))


def test_report_values_by_hand():
  from fser_jax.evaluation import metrics
  y = np.array([0, 0, 1, 1, 2, 2])
  probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1],
                    [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.1, 0.3]])
  rep = metrics.report(y, probs, ["a", "b", "c"])
  assert rep["accuracy"] == pytest.approx(4 / 6)
  assert rep["unweighted_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
  # F1: a 2PR/(P+R) with P=1/2, R=1/2; b P=2/3, R=1; c P=1, R=1/2.
  assert rep["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
  assert rep["confusion_counts"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
  # AUC of 'a': positives score 0.8, 0.3 against 0.1, 0.2, 0.1, 0.6: 7 of 8.
  assert rep["per_class"]["a"]["auc"] == pytest.approx(7 / 8)
  assert rep["per_class"]["b"]["precision"] == pytest.approx(2 / 3)


# The families not covered above (and the own-data ones' siblings in
# test_transfer.py and test_reliability.py), each through launch.py's own
# entry point, in one subprocess (conftest.launch_all).
def test_every_other_family_exits_2_naming_the_fault(tmp_path, tfds_dir,
                                                     source_run, tiny,
                                                     subtests):
  for label in ("angry", "sad"):
    (tmp_path / "clips" / label).mkdir(parents=True)
    _clip(tmp_path / "clips" / label / "a.wav")
  clips = tmp_path / "clips" / "angry"
  noise = tmp_path / "noise"  # augment.wave.noise_dir with a broken file
  noise.mkdir()
  (noise / "hum.wav").write_bytes(b"RIFF....WAVEfmt broken")
  conflict = tmp_path / "conflict"
  rundir.prepare(tiny(), str(conflict))  # config.json of another config
  from conftest import tiny_config_file

  def train(name, data_dir=tfds_dir, workdir=None, **overrides):
    """A training command line on the tiny config with `overrides`."""
    cfg = tiny_config_file(tmp_path / f"{name}.py", data_dir, **overrides)
    return ["--config", cfg, "--workdir", str(workdir or tmp_path / name)]

  cases = {  # family: (argv, what the line must name)
      "ConfigError": (train("c1", **{"train.batch_size": 4096}),
                      "train.batch_size=4096"),
      "DatasetNotBuiltError": (
          train("c2", str(tmp_path / "empty"), **{"data.dataset": "fser/emodb"}),
          "tfds build fser --imports fser_jax.datasets --config emodb"),
      "WorkdirConflict": (
          train("c3", workdir=conflict, **{"train.learning_rate": 0.5}),
          "train.learning_rate"),
      "CheckpointError": (
          ["--mode", "predict", "--workdir", str(tmp_path / "no_run"),
           "--audio", str(clips / "a.wav")],
          f"{tmp_path / 'no_run'}: no such run folder"),
      "LabelMapError": (
          ["--mode", "evaluate", "--workdir", source_run, "--data",
           str(tmp_path / "clips"), "--output_dir", str(tmp_path / "ev"),
           "--label_map", str(tmp_path / "missing.json")],
          "missing.json"),
      "AudioError": (
          train("c6", **{"augment.wave.noise_dir": str(noise),
                         "augment.wave.noise_prob": 0.5}),
          "hum.wav: cannot be decoded as audio"),
      "SplitError": (train("c5", **{"data.fold": 9}),
                     "data.fold=9 does not exist"),
      "TrainingDiverged": (
          train("c4", **{"train.learning_rate": 1e12, "train.momentum": 0.0}),
          "No checkpoint was saved before it"),
  }
  from conftest import assert_one_line_exit_2, launch_all
  results = launch_all([a for a, _ in cases.values()])
  for (family, (_, want)), got in zip(cases.items(), results):
    with subtests.test(family=family):
      assert_one_line_exit_2(got, want)


def test_memory_estimate_warns_before_a_run_that_will_not_fit():
  """ESD-sized data (35,000 clips of ~3 s at 16 kHz) with waveform
  augmentation: the estimate names each part, and the line warns when the
  machine's available memory is short."""
  from fser_jax import config as config_lib
  from fser_jax.data import stream as stream_lib
  c = config_lib.base()
  n, mean, longest = 35_000, 48_000, 80_000
  est = stream_lib.memory_estimate(c, n, n * mean, longest)
  assert est["waveforms"] == n * mean * 4  # float32
  assert est["images"] == n * 64 * 64 * 3 * 4
  assert est["augmentation_buffer"] == 0  # augment.wave off by default
  c.augment.wave.noise_prob = 0.5
  est = stream_lib.memory_estimate(c, n, n * mean, longest)
  assert est["augmentation_buffer"] >= n * longest * 4  # padded to the longest
  assert 17 * 2 ** 30 < est["total"] < 19 * 2 ** 30  # 6.3 + 1.6 + 10.4 GB
  line, tight = stream_lib.memory_line(est, 16 * 2 ** 30)
  assert tight and "may be killed for memory" in line and "16.0 GB" in line
  line, tight = stream_lib.memory_line(est, 256 * 2 ** 30)
  assert not tight and "augmentation buffer" in line
