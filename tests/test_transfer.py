"""Your recordings: label mapping, evaluate, fine-tuning (init_from, freeze,
front-end checks) and the learning curve, on shrunk configs."""

import csv
import json
import os

import jax
import numpy as np
import pytest

from fser_jax.data import labels
from fser_jax.runs import cnn
from fser_jax.runs import scoring
from fser_jax.train import transfer
from fser_jax.config import ConfigError
from fser_jax.experiments import evaluate
from fser_jax.experiments.learning_curve import curve as learning_curve
from fser_jax.runs.trained import Outputs, TrainedRun

from conftest import own_tiny_config, tiny_config

FSER8 = ["anger", "anxiety", "calm", "disgust", "happiness", "neutral",
         "sadness", "surprise"]


# --- label mapping ----------------------------------------------------------------
def test_synonyms_user_map_and_unmapped():
  r = labels.resolve(["Angry ", "happy", "fear", "bored", "frustrated",
                      "neutral", "whisper"], FSER8,
                     labels.parse_user_map("frustrated=anger,whisper="))
  m, how = r["map"], r["how"]
  assert m["Angry "] == "anger" and how["Angry "] == "synonym"
  assert m["happy"] == "happiness"
  assert m["fear"] == "anxiety"  # FSER's merge
  assert m["bored"] == "calm"  # EmoDB boredom -> calm, as FSER
  assert m["frustrated"] == "anger" and how["frustrated"] == "user"
  assert m["neutral"] == "neutral" and how["neutral"] == "identical"
  assert m["whisper"] is None and how["whisper"] == "user"


def test_label_map_naming_unknown_class_or_label_is_refused(tmp_path):
  with pytest.raises(labels.LabelMapError, match="'rage2'.*not a class"):
    labels.resolve(["angry"], FSER8, labels.parse_user_map("angry=rage2"))
  with pytest.raises(labels.LabelMapError, match="'grumpy'.*does not have"):
    labels.resolve(["angry"], FSER8, labels.parse_user_map("grumpy=anger"))
  p = tmp_path / "map.json"
  p.write_text(json.dumps({"angry": "sadness"}))
  assert labels.resolve(["angry"], FSER8,
                        labels.parse_user_map(str(p)))["map"] == {
                            "angry": "sadness"}


class _FakeRun:
  """A run whose probabilities are given: evaluate's arithmetic by hand."""

  def __init__(self, probs, classes):
    self.probs, self.classes = np.asarray(probs, float), classes
    self.workdir, self.step, self.familiarity = "fake", 0, None
    self.normalize = "global"

  def classify(self, waveforms, groups="auto"):
    return Outputs(self.probs[:len(waveforms)], None, [], None, [], [])

  def groups_for(self, meta, n):
    return None


def test_evaluate_rectangular_confusion_and_ua_over_present_classes():
  classes = ["anger", "happiness", "sadness"]
  # Data labels angry, happy (mapped), whisper (no counterpart); no 'sad'.
  data = ["angry", "angry", "happy", "happy", "happy", "whisper"]
  pred = [0, 1, 1, 1, 2, 2]  # argmax per clip
  probs = np.full((6, 3), 0.1)
  probs[np.arange(6), pred] = 0.8
  rep, rows = scoring.evaluate(_FakeRun(probs, classes), [np.zeros(1)] * 6,
                                data)
  # Mapped clips: angry -> anger (1 of 2 right), happy -> happiness (2 of 3).
  assert rep["n_mapped"] == 5 and rep["unmapped"] == {"whisper": 1}
  assert rep["accuracy"] == pytest.approx(3 / 5)
  assert rep["unweighted_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
  assert rep["classes_absent_from_data"] == ["sadness"]
  assert rep["per_class"]["sadness"]["support"] == 0
  assert not np.isnan(rep["unweighted_accuracy"])
  rect = rep["confusion_data_x_model"]
  assert rect["rows"] == ["angry", "happy", "whisper"]
  assert rect["columns"] == classes
  assert rect["counts"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
  # Restricted to anger/happiness: the happy clip called sadness (0.8) now
  # goes to the larger of its anger/happiness probabilities (a 0.1 tie ->
  # the first, anger), so still wrong; the others unchanged.
  assert rep["restricted"]["accuracy"] == pytest.approx(3 / 5)
  assert [r["correct"] for r in rows] == ["yes", "no", "yes", "yes", "no", ""]


def test_a_run_calling_most_clips_one_class_is_said_unusable_first():
  classes = ["anger", "happiness", "sadness"]
  data = ["angry"] * 5 + ["happy"] * 5
  pred = [2] * 9 + [1]  # 90% sadness
  probs = np.full((10, 3), 0.1)
  probs[np.arange(10), pred] = 0.8
  rep, _ = scoring.evaluate(_FakeRun(probs, classes), [np.zeros(1)] * 10, data)
  assert rep["degenerate"] == {"class": "sadness", "share": 0.9, "n": 10}
  md = evaluate.to_markdown(rep, "clips", [])
  first = md.split("\n\n")[1]  # after the title
  assert first.startswith("**Not usable on this data as it is**: 90% of the 10 "
                       "scored clips are called 'sadness'")
  # 80% exactly is not degenerate; the report then starts with the run.
  probs[8] = [0.8, 0.1, 0.1]
  rep, _ = scoring.evaluate(_FakeRun(probs, classes), [np.zeros(1)] * 10, data)
  assert rep["degenerate"] is None
  assert evaluate.to_markdown(rep, "clips", []).split("\n\n")[1].startswith(
      "Run `")


def test_the_degenerate_line_counts_the_clips_it_scored():
  """16 clips, 6 of a label with no counterpart: the share and the count
  are of the 10 scored clips (9 of them 'sadness'), not of all 16."""
  classes = ["anger", "happiness", "sadness"]
  data = ["angry"] * 5 + ["happy"] * 5 + ["whisper"] * 6
  pred = [2] * 9 + [1] + [0] * 6  # the unscored clips called anger
  probs = np.full((16, 3), 0.1)
  probs[np.arange(16), pred] = 0.8
  rep, _ = scoring.evaluate(_FakeRun(probs, classes), [np.zeros(1)] * 16, data)
  assert rep["n_mapped"] == 10
  assert rep["degenerate"] == {"class": "sadness", "share": 0.9, "n": 10}
  assert "90% of the 10 scored clips" in evaluate.to_markdown(rep, "c", [])


def test_evaluate_run_on_user_folder(source_run, user_recordings, tmp_path):
  """The real path: manifest -> TrainedRun's front-end -> report files."""
  out = tmp_path / "eval"
  rep = evaluate.run(None, source_run, user_recordings, str(out))
  assert rep["n_clips"] == 60 and rep["n_mapped"] == 60
  assert rep["label_map"] == {"angry": "anger", "fear": "anxiety",
                              "happy": "happiness", "neutral": "neutral",
                              "sad": "sadness"}
  assert set(rep["classes_absent_from_data"]) == {"calm", "disgust",
                                                  "surprise"}
  for name in ("report.json", "report.md", "label_map.json",
               "predictions.csv", "plots/confusion_matrix.png"):
    assert (out / name).exists(), name
  with open(out / "predictions.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 60
  right = np.mean([r["correct"] == "yes" for r in rows])
  assert rep["accuracy"] == pytest.approx(right)
  assert set(rep["by_gender"]) == {"female", "male"}
  assert 0 <= rep["familiarity"]["all_clips_unfamiliar_fraction"] <= 1


# --- fine-tuning ------------------------------------------------------------------
def _pure(params):
  return jax.device_get(params.to_pure_dict())


def test_init_from_copies_trunk_and_maps_head_rows(source_run, tfds_dir,
                                                   user_recordings):
  c = own_tiny_config(tfds_dir, user_recordings,
                      **{"train.init_from": source_run})
  new_classes = ["angry", "fear", "happy", "neutral", "sad"]
  params, info = transfer.load_init(c, new_classes, 3)
  src = TrainedRun(source_run)
  a, b = _pure(params), _pure(src.params)
  for i in range(4):
    for k in ("kernel", "bias"):
      np.testing.assert_array_equal(a["convs"][i][k], b["convs"][i][k])
  for i in range(2):
    np.testing.assert_array_equal(a["dense"][i]["kernel"],
                                  b["dense"][i]["kernel"])
  head, src_head = a["dense"][2], b["dense"][2]
  assert head["kernel"].shape == (16, 5)
  for j, name in enumerate(new_classes):
    s = src.classes.index(info["head_rows_copied"][name])
    np.testing.assert_array_equal(head["kernel"][:, j], src_head["kernel"][:, s])
  assert info["reinitialised"] == ["dense/2/bias", "dense/2/kernel"]
  # No mappable class at all: the head stays as the seed initialised it.
  c2 = own_tiny_config(tfds_dir, user_recordings,
                       **{"train.init_from": source_run})
  p2, info2 = transfer.load_init(c2, ["x", "y"], 3)
  assert info2["head"] == "re-initialised" and not info2["head_rows_copied"]


def test_front_end_mismatch_is_refused_naming_keys(source_run, tfds_dir,
                                                   user_recordings):
  c = own_tiny_config(tfds_dir, user_recordings,
                      **{"train.init_from": source_run,
                         "features.kind": "logmel"})
  with pytest.raises(ConfigError, match="features.kind='rgb'"):
    transfer.load_init(c, ["a", "b"], 1)


@pytest.mark.parametrize("freeze", ["trunk", "convs"])
def test_frozen_layers_are_bitwise_unchanged(source_run, tfds_dir,
                                             user_recordings, tmp_path, freeze):
  c = own_tiny_config(tfds_dir, user_recordings,
                      **{"train.init_from": source_run, "train.freeze": freeze,
                         "train.num_epochs": 1})
  rep = cnn.run(c, str(tmp_path))
  assert rep["init_from"]["freeze"] == freeze
  after = _pure(TrainedRun(str(tmp_path)).params)
  before = _pure(TrainedRun(source_run).params)
  for i in range(4):
    np.testing.assert_array_equal(after["convs"][i]["kernel"],
                                  before["convs"][i]["kernel"])
  changed = not np.array_equal(after["dense"][0]["kernel"],
                               before["dense"][0]["kernel"])
  assert changed == (freeze == "convs")  # trunk freezes dense 0 too
  assert after["dense"][2]["kernel"].shape == (16, 5)


def test_init_from_norm_keeps_the_source_statistics(source_run, tfds_dir,
                                                    user_recordings, tmp_path):
  c = own_tiny_config(tfds_dir, user_recordings,
                      **{"train.init_from": source_run,
                         "train.init_from_norm": True, "train.num_epochs": 1})
  cnn.run(c, str(tmp_path))
  with open(os.path.join(source_run, "normalisation.json")) as f:
    src = json.load(f)
  with open(tmp_path / "normalisation.json") as f:
    new = json.load(f)
  assert new["mean"] == src["mean"] and new["std"] == src["std"]
  assert new["classes"] != src["classes"]


# --- learning curve ---------------------------------------------------------------
def test_draws_are_nested_and_per_class():
  y = np.repeat(np.arange(3), 10)
  pool = np.arange(30)
  d = learning_curve.draws(y, pool, [2, 5, -1], repeats=2, seed=0)
  for r in range(2):
    assert set(d[(2, r)]) <= set(d[(5, r)]) <= set(d[(-1, r)])
    assert np.bincount(y[d[(2, r)]]).tolist() == [2, 2, 2]
    assert d[(-1, r)].size == 30
  assert not np.array_equal(d[(2, 0)], d[(2, 1)])


def test_learning_curve_end_to_end_and_resumes(source_run, tfds_dir,
                                               user_recordings, tmp_path):
  c = own_tiny_config(tfds_dir, user_recordings,
                      **{"train.init_from": source_run})
  with c.unlocked():
    c.learning_curve.shots = (1, 2)
    c.learning_curve.repeats = 2
    c.learning_curve.steps = 3
    c.learning_curve.batch_size = 8
    c.learning_curve.arms = ("baseline", "probe", "scratch", "finetune")
  out = learning_curve.run(c, str(tmp_path))
  assert set(out["arms"]) == set(learning_curve.ROWS) | {"zero_shot"}
  assert out["arms"]["egemaps"] == []  # learning_curve.egemaps is off
  linear = {a for a in learning_curve.LINEAR  # no egemaps, no encoder here
            if not a.startswith(("egemaps", "encoder"))}
  # Every arm's rows have one shape and the cells' clip counts.
  for arm in linear | {"scratch", "finetune"}:
    rows = out["arms"][arm]
    assert [(r["shots"], r["n_train"]) for r in rows] == [(1, 5), (2, 10)]
    for r in rows:
      assert {"ua_mean", "ua_std", "acc_mean"} <= set(r)
      assert 0 <= r["ua_mean"] <= 1 and len(r["ua"]) == 2
      # The sample standard deviation of the two draws: |a - b| / sqrt(2).
      assert r["ua_std"] == pytest.approx(abs(r["ua"][0] - r["ua"][1])
                                          / np.sqrt(2))
  # The choice: a linear arm per draw, its test UA the mean over the draws
  # of the arm each draw chose; the CNN arms are never chosen.
  for ch, rec in zip(out["choice"], out["recommendation"]):
    assert {"arm", "how", "cv_ua", "test_ua"} <= set(ch)
    assert set(ch["arms"]) <= linear and ch["arm"] in ch["arms"]
    i = [r["shots"] for r in out["arms"]["baseline"]].index(ch["shots"])
    want = np.mean([out["arms"][a][i]["ua"][r]
                    for r, a in enumerate(ch["arms"])])
    assert ch["test_ua"] == pytest.approx(want)
    # The recommendation names the arm with that arm's own UA; the
    # procedure's (each draw's choice) is under its own key.
    own = out["arms"][ch["arm"]][i]["ua_mean"]
    assert rec["arm"] == ch["arm"] and rec["ua_mean"] == own
    assert rec["procedure_ua"] == ch["test_ua"]
    assert f"{100 * own:.1f}%" in rec["text"]
    assert rec["margin_over_baseline"] == pytest.approx(
        own - out["arms"]["baseline"][i]["ua_mean"])
    assert "test set unused" in ch["how"]
  # CNN cells report their final training loss (metrics.jsonl's last).
  for arm in ("scratch", "finetune"):
    for r in out["arms"][arm]:
      assert len(r["final_loss"]) == 2 and all(
          np.isfinite(v) for v in r["final_loss"])
      bar = learning_curve.NOT_LEARNED * np.log(len(out["classes"]))
      assert r["not_learned"] == sum(v > bar for v in r["final_loss"])
  # 6 speakers: leave-one-speaker-out fold 0, 10 test clips, never trained on.
  assert out["test_clips"] == 10
  assert [r["shots"] for r in out["arms"]["scratch"]] == [1, 2]
  assert [r["n_train"] for r in out["arms"]["finetune"]] == [5, 10]
  assert out["arms"]["zero_shot"]["mapped_classes"] == [
      "anger", "anxiety", "happiness", "neutral", "sadness"]
  with open(tmp_path / "finetune" / "k1_r0" / "split.csv") as f:
    k1 = {r["filename"] for r in csv.DictReader(f) if r["split"] == "train"}
  with open(tmp_path / "finetune" / "k2_r0" / "split.csv") as f:
    rows = list(csv.DictReader(f))
  k2 = {r["filename"] for r in rows if r["split"] == "train"}
  test = {r["filename"] for r in rows if r["split"] == "test"}
  assert k1 < k2 and not k2 & test
  with open(tmp_path / "finetune" / "k1_r0" / "report.json") as f:
    assert json.load(f)["init_from"]["head"] == "rows copied for mapped classes"
  for name in ("learning_curve.json", "learning_curve.md",
               "learning_curve.png", "test_set.csv", "features.npz"):
    assert (tmp_path / name).exists()
  md = (tmp_path / "learning_curve.md").read_text()
  assert out["recommendation"][0]["text"] in md
  stamp = os.path.getmtime(tmp_path / "scratch" / "k2_r0" / "report.json")
  again = learning_curve.run(c, str(tmp_path))  # read back, not retrained
  assert os.path.getmtime(tmp_path / "scratch" / "k2_r0" /
                          "report.json") == stamp
  assert again["arms"]["scratch"] == out["arms"]["scratch"]
  assert again["arms"]["probe"] == out["arms"]["probe"]
  assert again["choice"] == out["choice"]


def _mismatched_copy(source_run: str, dst: str, scale: float) -> str:
  """A copy of `source_run` whose output layer is `scale` times larger:
  confidently wrong on any data (huge logits), like a source run from
  another domain."""
  import shutil
  from fser_jax.train import checkpoints
  from fser_jax.train import optimizer as state_lib
  from fser_jax.train.rundir import read_config
  shutil.copytree(source_run, dst)
  cfg = read_config(dst)
  _, st, _ = state_lib.create(cfg, 8, 3, 1)
  ck = checkpoints.Checkpoints(dst)
  step = ck.best_step()
  st = ck.restore(checkpoints.abstract_like(st), best=True)
  head = st["params"]["dense"][len(cfg.model.dense)]
  head["kernel"][...] = head["kernel"][...] * scale
  head["bias"][...] = head["bias"][...] * scale
  ck.close()
  shutil.rmtree(os.path.join(dst, "best"))
  ck = checkpoints.Checkpoints(dst)
  ck.save_best(step, st, 1.0)
  ck.wait()
  ck.close()
  return dst


def test_finetune_from_a_mismatched_source_stays_finite(
    source_run, tfds_dir, user_recordings, tmp_path):
  """5 clips per class from a source whose logits on the target are huge:
  the fine-tuning recipe (clipping, the head first, warmup in steps) ends
  with finite losses; the same cells without it diverge, and the curve
  counts them instead of crashing."""
  bad = _mismatched_copy(source_run, str(tmp_path / "bad_source"), 300.0)

  def curve(workdir, **overrides):
    c = own_tiny_config(tfds_dir, user_recordings,
                        **{"train.init_from": bad, **overrides})
    with c.unlocked():
      c.learning_curve.shots = (5,)
      c.learning_curve.repeats = 1
      c.learning_curve.arms = ("finetune",)
      c.learning_curve.batch_size = 8
    return learning_curve.run(c, workdir)

  out = curve(str(tmp_path / "recipe"))
  with open(tmp_path / "recipe" / "finetune" / "k5_r0" / "metrics.jsonl") as f:
    losses = [json.loads(l)["train_loss"] for l in f if "train_loss" in l]
  assert losses[0] > 10  # the source is confidently wrong
  assert np.all(np.isfinite(losses))
  assert losses[-1] < losses[0] / 5
  row = out["arms"]["finetune"][0]
  assert row["diverged"] == 0 and row["ua_mean"] is not None
  # Without the recipe: no clipping, no head-first phase, a high rate.
  naive = curve(str(tmp_path / "naive"),
                **{"learning_curve.finetune_clip_grad_norm": 0.0,
                   "learning_curve.finetune_head_only_steps": 0,
                   "learning_curve.finetune_learning_rate": 0.05})
  assert naive["arms"]["finetune"][0]["diverged"] == 1
  assert naive["arms"]["finetune"][0]["ua_mean"] is None
  assert (tmp_path / "naive" / "finetune" / "k5_r0" / "DIVERGED").exists()


# --- one line, exit 2 -------------------------------------------------------------
def test_bad_inputs_exit_2_with_one_line(source_run, user_recordings,
                                        tmp_path):
  notrun = tmp_path / "notrun"
  notrun.mkdir()
  one = tmp_path / "one_label" / "happy"
  one.mkdir(parents=True)
  import soundfile as sf
  sf.write(one / "a.wav", 0.1 * np.sin(np.arange(8000) / 5.0), 16000)
  cases = [
      (["--mode", "evaluate", "--workdir", str(notrun), "--data",
        str(tmp_path / "one_label"), "--output_dir", str(tmp_path / "o")],
       "no config.json"),
      (["--mode", "evaluate", "--workdir", source_run, "--data",
        str(tmp_path / "one_label"), "--output_dir", str(tmp_path / "o")],
       "only the label"),
      (["--mode", "evaluate", "--workdir", source_run, "--data",
        user_recordings, "--output_dir", str(tmp_path / "o"),
        "--label_map", "angry=rage"], "'rage', which is not a class"),
  ]
  from conftest import assert_one_line_exit_2, launch_all
  for (_, msg), got in zip(cases, launch_all([a for a, _ in cases])):
    assert_one_line_exit_2(got, msg)


def test_evaluate_on_a_built_tfds_dataset(source_run, tfds_dir, tmp_path):
  """--data fser/<config>: identical class names, the run's own test clips
  among them; the probabilities equal the run's own path (one code path)."""
  rep = evaluate.run(None, source_run, "fser/synthetic_small", str(tmp_path),
                      data_dir=tfds_dir)
  assert rep["n_clips"] == 192 and rep["n_unmapped"] == 0
  assert set(rep["label_map_how"].values()) == {"identical"}
  assert rep["classes_absent_from_data"] == []
  assert set(rep["by_corpus"]) == {"synth_alpha", "synth_beta"}


# --- the user's label names and manifest columns ----------------------------------
@pytest.mark.parametrize("name,cls", [
    ("furious", "anger"), ("mad", "anger"), ("irritated", "anger"),
    ("annoyed", "anger"), ("down", "sadness"), ("low", "sadness"),
    ("sad", "sadness"), ("depressed", "sadness"), ("scared", "anxiety"),
    ("afraid", "anxiety"), ("frightened", "anxiety"), ("nervous", "anxiety"),
    ("joyful", "happiness"), ("cheerful", "happiness"), ("glad", "happiness"),
    ("excited", "happiness"), ("calm", "calm"), ("relaxed", "calm"),
    ("bored", "calm"), ("plain", "neutral"), ("normal", "neutral"),
    ("astonished", "surprise"), ("disgusted", "disgust")])
def test_everyday_label_names_map_to_a_class(name, cls):
  r = labels.resolve([name.capitalize()], FSER8)
  assert r["map"][name.capitalize()] == cls


def test_no_synonym_belongs_to_two_classes():
  seen = {}
  for group in labels.SYNONYMS:
    for name in group:
      assert name not in seen, (name, seen.get(name), group[0])
      seen[name] = group[0]


def _talker_manifest(user_recordings, tmp_path) -> str:
  """The user recordings' manifest as `file,emotion,talker`."""
  src = os.path.join(os.path.dirname(user_recordings), "manifest.csv") \
      if not user_recordings.endswith(".csv") else user_recordings
  with open(src) as f:
    rows = list(csv.DictReader(f))
  base = os.path.dirname(src)
  out = tmp_path / "talker.csv"
  with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["file", "emotion", "talker"])
    for r in rows:
      w.writerow([os.path.join(base, r["path"]), r["label"], r["speaker"]])
  return str(out)


def test_manifest_columns_map_and_the_error_names_what_it_saw(
    user_recordings, tmp_path):
  from fser_jax.datasets import files
  from fser_jax.errors import DataError
  path = _talker_manifest(user_recordings, tmp_path)
  with pytest.raises(DataError) as e:
    files.scan_own(path)
  msg = str(e.value)
  assert "file,emotion,talker" in msg
  assert "--columns path=file,label=emotion,speaker=talker" in msg
  entries, problems = files.scan_own(
      path, "path=file,label=emotion,speaker=talker")
  plain, _ = files.scan_own(user_recordings)
  assert not problems and len(entries) == len(plain) == 60
  assert sorted((e["label"], e["speaker"]) for e in entries) == \
      sorted((e["label"], e["speaker"]) for e in plain)
  with pytest.raises(DataError, match="voice.*does not have"):
    files.scan_own(path, "path=file,label=emotion,speaker=voice")
  # The column map is part of the built dataset's name.
  a = files.own_config_args(path, columns="path=file,label=emotion")
  b = files.own_config_args(path, columns="path=file,label=emotion,"
                            "speaker=talker")
  assert a["name"] != b["name"]


def test_one_label_map_and_one_column_map_for_every_mode(
    source_run, tfds_dir, user_recordings, tmp_path):
  """--columns and --label_map given once reach evaluate, robustness and
  the learning curve (its zero-shot arm), from launch.py's command line."""
  path = _talker_manifest(user_recordings, tmp_path)
  cols = "path=file,label=emotion,speaker=talker"
  # 'fear' -> calm on purpose (its synonym would be anxiety).
  lmap = "fear=calm"
  from conftest import launch_all
  curve = tmp_path / "curve"
  cfg = os.path.join(os.path.dirname(__file__), "..", "configs",
                     "own_data.py")
  got = launch_all([
      ["--mode", "evaluate", "--workdir", source_run, "--data", path,
       "--output_dir", str(tmp_path / "ev"), "--columns", cols,
       "--label_map", lmap],
      ["--mode", "robustness", "--workdir", source_run, "--data", path,
       "--output_dir", str(tmp_path / "rb"), "--columns", cols,
       "--label_map", lmap, "--conditions", "clean"],
      ["--mode", "learning_curve", "--config", f"{cfg}:{path}",
       f"--config.data.data_dir={tfds_dir}",
       f"--config.train.init_from={source_run}",
       "--config.data.protocol=speaker", "--config.learning_curve.shots=(2,)",
       "--config.learning_curve.repeats=1", "--config.learning_curve.arms=baseline",
       "--workdir", str(curve), "--columns", cols, "--label_map", lmap],
  ])
  for g in got:
    assert g["code"] in (0, None), g["stderr"][-2000:]
  with open(tmp_path / "ev" / "report.json") as f:
    ev = json.load(f)
  assert ev["n_clips"] == 60 and ev["label_map"]["fear"] == "calm"
  assert ev["normalisation"].startswith("inductive")  # a 'global' run
  assert ev["label_map_how"]["fear"] == "user"
  with open(tmp_path / "rb" / "robustness.json") as f:
    assert json.load(f)["label_map"] == lmap
  with open(curve / "learning_curve.json") as f:
    out = json.load(f)
  z = out["arms"]["zero_shot"]
  assert z["label_map"]["fear"] == "calm" and "calm" in z["mapped_classes"]
  assert out["test_clips"] == 10  # one speaker of six: talker was read
  # A config that says otherwise is refused, naming both.
  from fser_jax import config as config_lib
  c = config_lib.base()
  c.learning_curve.label_map = "fear=anxiety"
  with pytest.raises(ConfigError, match="--label_map=fear=calm and config "
                     "learning_curve.label_map"):
    config_lib.apply_flags(c, label_map=lmap)


def _linear_curve(source_run, tfds_dir, user_recordings, **overrides):
  c = own_tiny_config(tfds_dir, user_recordings,
                      **{"train.init_from": source_run, **overrides})
  with c.unlocked():
    c.learning_curve.shots = (2, 4)
    c.learning_curve.repeats = 2
    c.learning_curve.arms = ("baseline", "probe")
    # Both paths on tiny data: the choice made at every k, the settings
    # fixed at k=2 and searched at k=4.
    c.learning_curve.choose_from = 1
    c.learning_curve.search_from = 4
  return c


def test_no_test_label_or_inductive_test_feature_reaches_the_choice(
    source_run, tfds_dir, user_recordings, tmp_path, monkeypatch):
  """The driver run twice: the second time the test speaker's labels are
  all one class (another class set, other counts) and the inductive arms'
  test features are noise. Every choice, setting and CV figure stays; the
  test scores move."""
  from fser_jax.data import dataset_io
  from fser_jax.experiments.learning_curve import arms as linear_arms
  c = _linear_curve(source_run, tfds_dir, user_recordings)
  a = learning_curve.run(c, str(tmp_path / "a"))
  real_load, real_blocks = dataset_io.load_clips, linear_arms.linear_blocks
  seen = {}

  def load(cfg):
    w, y, classes, meta = real_load(cfg)
    test, _ = learning_curve.fixed_test(c, y, meta)
    y = y.copy()
    y[test] = (y[test][0] + 1) % len(classes)  # one class, not the same
    assert (learning_curve.fixed_test(c, y, meta)[0] == test).all()
    seen["test"] = test
    return w, y, classes, meta

  def blocks(feats, speakers):
    out = real_blocks(feats, speakers)
    rng = np.random.default_rng(0)
    for k in ("stats", "embedding"):  # the inductive blocks
      out[k] = out[k].copy()
      out[k][seen["test"]] = rng.normal(
          0, 10, out[k][seen["test"]].shape).astype(out[k].dtype)
    return out

  monkeypatch.setattr(dataset_io, "load_clips", load)
  monkeypatch.setattr(linear_arms, "linear_blocks", blocks)
  b = learning_curve.run(c, str(tmp_path / "b"))
  keys = ("arms", "why", "how", "cv_ua", "cv_ua_per_draw",
          "cv_ua_of_chosen_arm")
  assert [{k: ch[k] for k in keys} for ch in a["choice"]] == \
      [{k: ch[k] for k in keys} for ch in b["choice"]]
  for arm in linear_arms.LINEAR + ("reference_speaker",):
    for ra, rb in zip(a["arms"][arm], b["arms"][arm]):
      assert (ra["hyper"], ra["cv_ua"]) == (rb["hyper"], rb["cv_ua"]), arm
  # The test set did change what is scored.
  assert a["arms"]["baseline"][0]["ua"] != b["arms"]["baseline"][0]["ua"]
  assert a["arms"]["zero_shot"]["ua"] != b["arms"]["zero_shot"]["ua"]


def test_a_source_run_that_trained_on_the_test_speaker_is_refused(
    source_run, tfds_dir, user_recordings, tmp_path):
  """A copy of the source whose splits.csv lists one test clip as trained
  on: refused with one line naming it; allowed on request, and then said
  in the report. The per-speaker arms (and zero-shot, where the source
  normalises per speaker) are marked transductive."""
  import shutil
  from fser_jax.errors import DataError
  src = str(tmp_path / "src")
  shutil.copytree(source_run, src)
  c = _linear_curve(src, tfds_dir, user_recordings)
  with c.unlocked():
    c.learning_curve.shots = (2,)
    c.learning_curve.repeats = 1
  from fser_jax.data import dataset_io
  _, y, _, meta = dataset_io.load_clips(c.data)
  test, _ = learning_curve.fixed_test(c, y, meta)
  i = np.flatnonzero(test)[0]
  test_file = str(meta["filename"][i])
  with open(os.path.join(src, "splits.csv"), "a", newline="") as f:
    w = csv.writer(f)
    w.writerow([test_file, meta["corpus"][i], "x", "", "", "anger", "train"])
    # The same file name in another corpus, or a test clip left unused,
    # is not an overlap.
    w.writerow([test_file, "another_corpus", "x", "", "", "anger", "train"])
    w.writerow([str(meta["filename"][np.flatnonzero(test)[1]]),
                meta["corpus"][i], "x", "", "", "anger", "unused"])
  with pytest.raises(DataError, match=f"trained on the test set's file "
                     f"{test_file}") as e:
    learning_curve.run(c, str(tmp_path / "refused"))
  assert "\n" not in str(e.value)
  with c.unlocked():
    c.learning_curve.allow_source_overlap = True
  out = learning_curve.run(c, str(tmp_path / "allowed"))
  assert out["source_overlap"] == [f"file {test_file}"]
  md = (tmp_path / "allowed" / "learning_curve.md").read_text()
  assert f"trained on the test set's file {test_file}" in md
  trans = out["transductive"]
  assert {"baseline_speaker", "probe_speaker", "reference_speaker"} <= set(trans)
  assert "baseline" not in trans and "probe" not in trans
  assert ("zero_shot" in trans) == (TrainedRun(src).normalize != "global")
  assert "Transductive arms" in md and "`baseline_speaker`" in md
