"""The tuner: candidates per CPU, the choice from timings, the cache keyed
by CPU model, ISA flags and jaxlib, and what importing fser_jax then does.
Fake timings for the logic; one real candidate timed in a subprocess."""

import os

import pytest

from fser_jax.tools import tune
from fser_jax.cpu import xla as xla_cpu

AVX2 = {"avx2", "fma", "sse4_2"}
AMX = {"avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "amx_tile",
       "amx_bf16"}


@pytest.fixture
def cache(tmp_path, monkeypatch):
  monkeypatch.delenv(xla_cpu.NO_TUNE_ENV, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  return tmp_path / "fser_jax" / "tune.json"


def fake_runner(rates: dict):
  """A runner returning `rates[(fusion, impl, precision)]` ex/s."""
  def run(c, config, steps, repeats):
    r = rates.get((c.ynn_fusion, c.conv_impl, c.precision))
    out = {"candidate": tune.dataclasses.asdict(c)}
    return {**out, "examples_per_sec": r} if r else {**out, "error": "boom"}
  return run


def test_candidates_per_cpu():
  plain = tune.candidates(AVX2)
  assert len(plain) == 8 and {c.precision for c in plain} == {"float32"}
  assert plain[0] == tune.Candidate("default", "xla")
  amx = tune.candidates(AMX)
  assert len(amx) == 12
  assert sum(c.precision == "bfloat16" for c in amx) == 4
  # With the oneDNN convolutions built: three more float32 candidates on
  # AVX-512 (all layers direct, those Winograd leaves, oneDNN's Winograd)
  # and one bfloat16; on AVX2 no Winograd in oneDNN.
  both = tune.candidates(AMX, onednn=True)
  assert len(both) == 16
  assert tune.Candidate("", "onednn", "bfloat16") in both
  assert tune.Candidate("", "winograd_onednn") in both
  assert tune.Candidate("", "onednn_winograd") in both
  avx2 = tune.candidates(AVX2, onednn=True)
  assert len(avx2) == 10 and tune.Candidate("", "onednn_winograd") not in avx2


def test_choice_is_the_fastest_float32_and_bfloat16_is_only_reported(cache):
  rates = {("default", "xla", "float32"): 217.0,
           ("", "winograd", "float32"): 396.0,
           ("individual_dot,reduce", "winograd", "float32"): 471.0,
           ("individual_dot,reduce", "xla", "float32"): 425.0,
           ("", "xla", "bfloat16"): 700.0,
           ("", "onednn", "bfloat16"): 900.0}
  out = tune.tune("cfg.py", runner=fake_runner(rates), flags=AMX,
                  onednn=True, progress=lambda *_: None)
  ch = out["choice"]
  assert (ch["ynn_fusion"], ch["conv_impl"]) == ("individual_dot,reduce",
                                                 "winograd")
  assert ch["examples_per_sec"] == 471.0
  assert ch["default_examples_per_sec"] == 217.0
  assert ch["bfloat16_examples_per_sec"] == 900.0  # reported, not chosen
  assert ch["bfloat16_conv_impl"] == "onednn"  # what bfloat16 'auto' means
  assert os.path.exists(cache)
  assert xla_cpu.load_tuned(xla_cpu.machine_key(AMX)) == ch
  assert "| individual_dot,reduce | winograd | float32 | 471.0 |" in \
      tune.to_markdown(out)


def test_a_tie_goes_to_the_earlier_candidate():
  results = [{"candidate": {"precision": "float32", "n": i},
              "examples_per_sec": r} for i, r in enumerate((300.0, 300.0))]
  assert tune.choose(results)["candidate"]["n"] == 0
  with pytest.raises(RuntimeError, match="no float32 candidate"):
    tune.choose([{"candidate": {"precision": "float32"}, "error": "x"}])


def test_importing_applies_the_cached_choice_and_the_user_wins(cache):
  rates = {("default", "xla", "float32"): 100.0,
           ("individual_dot", "xla", "float32"): 180.0}
  tune.tune("cfg.py", runner=fake_runner(rates), flags=AVX2, onednn=False,
            progress=lambda *_: None)
  env = {}
  line = xla_cpu.configure(env, flags=AVX2)
  assert env["XLA_FLAGS"] == f"{xla_cpu.FLAG}=individual_dot"
  assert line.startswith("tuned on this machine") and "180 ex/s" in line
  assert xla_cpu.conv_impl("cpu", flags=AVX2)[0] == "xla"
  # The user's flag wins over the cache.
  env = {"XLA_FLAGS": f"{xla_cpu.FLAG}=reduce"}
  assert "left as the user set it" in xla_cpu.configure(env, flags=AVX2)
  assert env["XLA_FLAGS"] == f"{xla_cpu.FLAG}=reduce"
  # Another jaxlib (or CPU) is another key: the per-ISA default applies.
  other = xla_cpu.machine_key(AVX2, jaxlib="0.0.1")
  assert other != xla_cpu.machine_key(AVX2)
  assert xla_cpu.load_tuned(other) is None


def test_defaults_without_a_cache(cache):
  env = {}
  assert "YNNPACK fusions off" in xla_cpu.configure(env, flags=AVX2)
  assert env["XLA_FLAGS"] == f"{xla_cpu.FLAG}="
  env = {}
  line = xla_cpu.configure(env, flags=AMX, vendor="GenuineIntel")
  assert env["XLA_FLAGS"] == f"{xla_cpu.FLAG}=individual_dot,reduce"
  assert "not tuned here" in line and "Xeon" in line
  assert xla_cpu.conv_impl("cpu", flags=AMX, vendor="GenuineIntel")[0] == \
      "winograd"
  # The two AVX-512 CPUs measured disagree: AMD's Zen 4 ran fastest with
  # YNNPACK off.
  env = {}
  line = xla_cpu.configure(env, flags=AMX - {"amx_tile", "amx_bf16"},
                           vendor="AuthenticAMD")
  assert env["XLA_FLAGS"] == f"{xla_cpu.FLAG}=" and "Zen 4" in line


def test_a_child_process_knows_the_flag_as_fser_jaxs_not_the_users(cache):
  """A process started by one that imported fser_jax inherits XLA_FLAGS with
  the flag in it: the marker beside it says fser_jax put it there, so the
  child neither appends it again nor takes it for the user's."""
  parent = {}
  xla_cpu.configure(parent, flags=AMX, vendor="GenuineIntel")
  assert parent[xla_cpu.SET_BY_US] == "individual_dot,reduce"
  child = dict(parent)
  line = xla_cpu.configure(child, flags=AMX, vendor="GenuineIntel")
  assert child["XLA_FLAGS"] == parent["XLA_FLAGS"]
  assert "parent process" in line
  # The user's own value beside a stale marker is the user's.
  user = dict(parent, XLA_FLAGS=f"{xla_cpu.FLAG}=reduce")
  assert "left as the user set it" in xla_cpu.configure(user, flags=AMX)


def test_candidate_environment_replaces_the_flag():
  env = tune.Candidate("", "xla").environ(
      {"XLA_FLAGS": f"--foo=1 {xla_cpu.FLAG}=reduce"})
  assert env["XLA_FLAGS"] == f"--foo=1 {xla_cpu.FLAG}="
  assert env[xla_cpu.NO_TUNE_ENV] == "1"
  env = tune.Candidate("default", "xla").environ({})
  assert env["FSER_JAX_KEEP_XLA_DEFAULTS"] == "1" and env["XLA_FLAGS"] == ""


def test_one_real_candidate_is_timed_in_a_subprocess(tmp_path, tfds_dir):
  from conftest import tiny_config_file
  cfg = tiny_config_file(tmp_path / "tiny.py", tfds_dir)
  r = tune.run_candidate(tune.Candidate("", "xla"), cfg, steps=2, repeats=1)
  assert "error" not in r, r
  assert r["examples_per_sec"] > 0 and r["image_shape"] == [64, 64, 3]
  assert r["batch_size"] == 16
