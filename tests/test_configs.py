"""Every shipped config loads and validates; bad values are named."""

import glob
import importlib.util
import json
import os
import re

import pytest

from fser_jax import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
                 if os.path.basename(p) not in ("__init__.py", "common.py"))


def _load(path):
  spec = importlib.util.spec_from_file_location("cfg", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


@pytest.mark.parametrize("path", CONFIGS)
def test_configs_validate_and_document_their_command(path):
  mod = _load(path)
  config_lib.validate(mod.get_config())
  assert "python launch.py" in mod.__doc__


@pytest.mark.parametrize("path", CONFIGS)
def test_every_recipe_value_is_stated_in_the_config_or_common(path):
  """A config's recipe reads as values: every key whose value differs from
  the base is assigned by name in the config file or configs/common.py
  (not hidden in the library)."""
  mod = _load(path)
  cfg = config_lib.flatten(json.loads(mod.get_config().to_json_best_effort()))
  base = config_lib.flatten(json.loads(config_lib.base().to_json_best_effort()))
  text = open(path).read() + open(os.path.join(ROOT, "configs",
                                               "common.py")).read()
  for key, value in cfg.items():
    if base.get(key) == value:
      continue
    group, name = key.rsplit(".", 1)
    assert re.search(rf"\.{name}\s*=", text), (
        f"{os.path.basename(path)}: {key}={value!r} is set outside the config")


def test_paper_config_is_the_papers_recipe():
  c = _load(os.path.join(ROOT, "configs", "fser_paper.py")).get_config()
  assert c.data.dataset == "fser/all" and c.data.protocol == "paper"
  assert (c.train.learning_rate, c.train.batch_size, c.train.num_epochs) == (1e-3, 64, 400)
  assert c.train.optimizer == "sgd" and c.train.momentum == 0.0
  assert (c.features.n_fft, c.features.hop_length, c.features.image_size) == (512, 512, 64)
  assert c.augment.offline_copies == 20


@pytest.mark.parametrize("key,value,match", [
    ("data.protocol", "random", "data.protocol"),
    ("train.precision", "fp16", "train.precision"),
    ("train.batch_size", 0, "train.batch_size"),
    ("augment.zoom", 1.5, "augment.zoom"),
    ("features.frames", 100, "features.frames"),
    ("augment.time_masks", -1, "augment.time_masks"),
    ("augment.mask_width", 1.0, "augment.mask_width"),
])
def test_bad_values_are_named(key, value, match):
  c = config_lib.base()
  section, name = key.split(".")
  c[section][name] = value
  with pytest.raises(config_lib.ConfigError, match=match):
    config_lib.validate(c)


def test_wrong_type_is_refused_by_ml_collections():
  c = config_lib.base()
  with pytest.raises(TypeError):
    c.train.batch_size = "sixty-four"


@pytest.mark.parametrize("key,value", [("noise_prob", 1.5),
                                       ("speed", (1.1, 0.9)),
                                       ("noise_kinds", ("white", "brown"))])
def test_bad_wave_augmentation_values_are_named(key, value):
  c = config_lib.base()
  c.augment.wave[key] = value
  with pytest.raises(config_lib.ConfigError, match=f"augment.wave.{key}"):
    config_lib.validate(c)


def test_robust_recipe_is_the_fast_recipe_plus_the_channel():
  fast = _load(os.path.join(ROOT, "configs", "fser_fast.py")).get_config()
  robust = _load(os.path.join(ROOT, "configs", "fser_robust.py")).get_config()
  paper = _load(os.path.join(ROOT, "configs", "fser_paper.py")).get_config()
  train = lambda c: {k: v for k, v in c.train.to_dict().items()
                     if k != "num_epochs"}
  assert train(robust) == train(fast)
  assert robust.train.num_epochs == 2 * fast.train.num_epochs
  assert robust.features.to_dict() == fast.features.to_dict()
  assert robust.augment.wave.noise_prob > 0 and robust.augment.wave.phone_prob > 0
  wave = paper.augment.wave
  assert not any(wave[k] for k in ("noise_prob", "phone_prob", "gain_prob",
                                   "speed_prob", "reverb_prob"))


def test_old_workdir_without_new_keys_at_their_defaults_still_resumes(tmp_path):
  """A run saved before a key existed (here features.frames and the
  SpecAugment keys) is not a conflict while the key keeps its default."""
  import json
  from fser_jax.train import rundir
  c = config_lib.base()
  rundir.prepare(c, str(tmp_path))
  with open(tmp_path / "config.json") as f:
    saved = json.load(f)
  del saved["features"]["frames"], saved["augment"]["time_masks"]
  with open(tmp_path / "config.json", "w") as f:
    json.dump(saved, f)
  rundir.prepare(c, str(tmp_path))  # no conflict
  c.augment.time_masks = 2  # but a changed value still is
  with open(tmp_path / "config.json", "w") as f:
    json.dump(saved, f)
  with pytest.raises(rundir.WorkdirConflict, match="augment.time_masks"):
    rundir.prepare(c, str(tmp_path))


def test_every_conv_impl_the_model_knows_is_a_valid_config_value():
  from fser_jax.model import kernels
  assert set(config_lib.CHOICES["model.conv_impl"]) == set(kernels.CONV_IMPLS)
  c = config_lib.base()
  c.model.conv_impl = "onednn_winograd"
  config_lib.validate(c)


def test_a_saved_config_is_completed_over_the_base(tmp_path):
  """A run saved before keys existed reads back with their defaults (the
  behaviour it had), so code reads every key as an attribute; its own
  values win; features.standardize follows what such runs did."""
  from fser_jax.train import rundir
  old = json.loads(config_lib.base().to_json_best_effort())
  del old["encoder"], old["features"]["standardize"], old["data"]["stream"]
  del old["model"]["dropout_bits"]
  old["features"]["kind"] = "logmel"
  old["train"]["learning_rate"] = 0.5
  (tmp_path / "config.json").write_text(json.dumps(old))
  c = rundir.read_config(str(tmp_path))
  assert c.encoder.path == "" and c.encoder.pooling == "mean_std"
  assert c.data.stream == "auto" and c.train.learning_rate == 0.5
  assert c.features.standardize is True  # log-mel runs were standardised
  assert c.model.dropout_bits == "packed"  # what runs drew before the key
  assert config_lib.base().model.dropout_bits == "bernoulli"
  old["features"]["kind"] = "rgb"
  (tmp_path / "config.json").write_text(json.dumps(old))
  assert rundir.read_config(str(tmp_path)).features.standardize is False


def test_no_module_reads_a_config_key_with_a_default():
  """`.get("key", default)` on a config would hide a missing key; configs
  are complete (base, or a saved one completed over it)."""
  offenders = []
  for path in glob.glob(os.path.join(ROOT, "fser_jax", "**", "*.py"),
                        recursive=True):
    for i, line in enumerate(open(path), 1):
      if re.search(r"(cfg|config|features|train|data|model|augment|wave|"
                   r"encoder|learning_curve|\bc|\bd|\bf)\.get\(\"\w+\", ",
                   line) and "cfg_json" not in line and "wav2vec2.py" not in path:
        offenders.append(f"{os.path.relpath(path, ROOT)}:{i}: {line.strip()}")
  assert not offenders, "\n".join(offenders)
