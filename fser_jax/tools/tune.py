"""This CPU's XLA:CPU settings, chosen by timing the train step.

  python -m fser_jax.tools.tune                          # the fast recipe's model
  python -m fser_jax.tools.tune --config configs/fser_plus.py --json tune.json

Every candidate (YNNPACK fusion types x `model.conv_impl`, in float32; in
bfloat16 too where the CPU has native bfloat16; `conv_impl='onednn'` in
both where the oneDNN convolutions build here) runs in its own subprocess,
because XLA reads XLA_FLAGS once, at start. Each builds the config's model,
compiles its train step (augmentation, dropout, update; `--steps` steps in
one dispatch) at the config's batch size on random inputs of the config's
image shape, and times `--repeats` dispatches after a warm-up. The fastest
float32 candidate is cached for this CPU model, ISA flags and jaxlib version
(`xla_cpu.tune_cache_path()`); from then on `fser_jax` applies it when
imported (launch.py logs it). A user's XLA_FLAGS or an explicit
`model.conv_impl` still wins. bfloat16 changes what the model computes, so it
is timed and reported, never switched on: set `train.precision` yourself;
the fastest bfloat16 `conv_impl` is cached too and is what
`conv_impl='auto'` then means in bfloat16.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import sys

FUSIONS = ("default", "", "individual_dot", "individual_dot,reduce")
IMPLS = ("xla", "winograd")
DEFAULT_CONFIG = "configs/fser_fast.py"


@dataclasses.dataclass(frozen=True)
class Candidate:
  ynn_fusion: str  # the flag's value; 'default': jaxlib's own
  conv_impl: str
  precision: str = "float32"

  def environ(self, base: dict | None = None) -> dict:
    """The environment its subprocess runs in."""
    from fser_jax.cpu import xla as xla_cpu
    env = dict(os.environ if base is None else base)
    flags = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                     if not f.startswith(xla_cpu.FLAG))
    if self.ynn_fusion == "default":
      env["FSER_JAX_KEEP_XLA_DEFAULTS"] = "1"
    else:
      flags = f"{flags} {xla_cpu.FLAG}={self.ynn_fusion}"
      env.pop("FSER_JAX_KEEP_XLA_DEFAULTS", None)
    env["XLA_FLAGS"] = flags.strip()
    env[xla_cpu.NO_TUNE_ENV] = "1"  # time the candidate, not the cache
    return env

  @property
  def name(self) -> str:
    return (f"ynn={self.ynn_fusion or 'off'} conv_impl={self.conv_impl} "
            f"{self.precision}")


def candidates(flags: set[str], onednn: bool = False) -> list[Candidate]:
  """Every candidate for a CPU with these ISA flags (and the oneDNN
  convolutions if they build here); jaxlib's default first (ties go to the
  earlier one)."""
  out = [Candidate(f, i) for f in FUSIONS for i in IMPLS]
  if onednn:  # oneDNN's convolutions; XLA's Eigen for the rest
    out += [Candidate("", "onednn"), Candidate("", "winograd_onednn")]
    if "avx512f" in flags:  # oneDNN's Winograd kernels need AVX-512
      out.append(Candidate("", "onednn_winograd"))
  if {"avx512_bf16", "amx_bf16"} & flags:
    out += [Candidate(f, "xla", "bfloat16") for f in FUSIONS]
    if onednn:
      out.append(Candidate("", "onednn", "bfloat16"))
  return out


def choose(results: list[dict]) -> dict:
  """The fastest float32 result that ran (earlier wins a tie)."""
  ok = [r for r in results if r.get("examples_per_sec") and
        r["candidate"]["precision"] == "float32"]
  if not ok:
    raise RuntimeError("no float32 candidate ran; see the errors above")
  return max(ok, key=lambda r: (r["examples_per_sec"], -results.index(r)))


def run_candidate(cand: Candidate, config: str, steps: int, repeats: int,
                  timeout: float = 900.0) -> dict:
  """Times one candidate in a subprocess; {'candidate', 'examples_per_sec'
  or 'error'}."""
  cmd = [sys.executable, "-m", "fser_jax.tools.tune", "--worker",
         "--config", config, "--conv_impl", cand.conv_impl,
         "--precision", cand.precision, "--steps", str(steps),
         "--repeats", str(repeats)]
  out = {"candidate": dataclasses.asdict(cand)}
  try:
    p = subprocess.run(cmd, env=cand.environ(), capture_output=True,
                       text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    return {**out, "error": f"timed out after {timeout:.0f} s"}
  line = next((l for l in reversed(p.stdout.splitlines())
               if l.startswith("{")), None)
  if p.returncode or line is None:
    return {**out, "error": (p.stderr.strip().splitlines() or ["?"])[-1]}
  return {**out, **json.loads(line)}


def tune(config: str = DEFAULT_CONFIG, *, steps: int = 4, repeats: int = 3,
         runner=run_candidate, flags: set[str] | None = None,
         onednn: bool | None = None, cache_path: str | None = None,
         progress=print) -> dict:
  """Times every candidate (through `runner`), caches the winner, returns
  {'machine', 'results', 'choice', 'default', 'cache'}."""
  from fser_jax.cpu import xla as xla_cpu
  flags = xla_cpu.cpu_flags() if flags is None else flags
  if onednn is None:  # whether conv_impl='onednn' builds here
    from fser_jax.cpu import onednn as onednn_lib
    onednn = onednn_lib.ok()
  results = []
  cands = candidates(flags, onednn)
  for i, c in enumerate(cands):
    progress(f"[{i + 1}/{len(cands)}] {c.name} ...")
    r = runner(c, config, steps, repeats)
    results.append(r)
    progress(f"    {r['examples_per_sec']:.1f} ex/s" if "examples_per_sec"
             in r else f"    failed: {r['error']}")
  best = choose(results)
  default = next((r for r in results
                  if r["candidate"] == dataclasses.asdict(
                      Candidate("default", "xla"))), {})
  key = xla_cpu.machine_key(flags)
  entry = {"ynn_fusion": best["candidate"]["ynn_fusion"],
           "conv_impl": best["candidate"]["conv_impl"],
           "examples_per_sec": best["examples_per_sec"],
           "default_examples_per_sec": default.get("examples_per_sec", 0.0),
           "config": config,
           "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat()}
  bf16 = [r for r in results if r["candidate"]["precision"] == "bfloat16"
          and r.get("examples_per_sec")]
  if bf16:
    top = max(bf16, key=lambda r: r["examples_per_sec"])
    entry["bfloat16_examples_per_sec"] = top["examples_per_sec"]
    entry["bfloat16_ynn_fusion"] = top["candidate"]["ynn_fusion"]
    entry["bfloat16_conv_impl"] = top["candidate"]["conv_impl"]
  path = xla_cpu.save_tuned(entry, key, cache_path)
  return {"machine": key, "results": results, "choice": entry,
          "default": default, "cache": path}


def to_markdown(out: dict) -> str:
  lines = [f"Machine: {out['machine']}", "",
           "| YNNPACK fusions | conv_impl | precision | ex/s |",
           "|---|---|---|---|"]
  for r in out["results"]:
    c = r["candidate"]
    v = (f"{r['examples_per_sec']:.1f}" if "examples_per_sec" in r
         else f"failed: {r['error'][:60]}")
    lines.append(f"| {c['ynn_fusion'] or 'off'} | {c['conv_impl']} | "
                 f"{c['precision']} | {v} |")
  ch = out["choice"]
  lines += ["", f"Chosen: YNNPACK fusions {ch['ynn_fusion'] or 'off'}, "
            f"conv_impl {ch['conv_impl']}: {ch['examples_per_sec']:.1f} ex/s "
            f"(jaxlib's default with XLA convolutions: "
            f"{ch['default_examples_per_sec']:.1f}). Cached in {out['cache']}."]
  if "bfloat16_examples_per_sec" in ch:
    lines.append(f"bfloat16 (train.precision='bfloat16', not switched on): "
                 f"fastest conv_impl {ch['bfloat16_conv_impl']}, "
                 f"{ch['bfloat16_examples_per_sec']:.1f} ex/s.")
  return "\n".join(lines)


# --- the subprocess ---------------------------------------------------------------
def _load_config(path: str):
  import importlib.util
  spec = importlib.util.spec_from_file_location("tuned_config", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config()


def worker(config_path: str, conv_impl: str, precision: str, steps: int,
           repeats: int) -> dict:
  """Times the config's train step in this process (XLA_FLAGS as set)."""
  import time
  import jax
  import jax.numpy as jnp
  import numpy as np
  from fser_jax.frontend import augment
  from fser_jax.frontend import spectrogram as features_lib
  from fser_jax.train import optimizer as state_lib
  from fser_jax.train import step as step_lib
  c = _load_config(config_path)
  c.model.conv_impl = conv_impl
  c.train.precision = precision
  sr = c.data.sample_rate
  rng = np.random.default_rng(0)
  shape = features_lib.compute_images(
      [rng.standard_normal(2 * sr).astype(np.float32) * 0.1], c.features, sr,
      progress=False).shape[1:]
  bs = c.train.batch_size
  n = bs * steps
  graphdef, state, tx = state_lib.create(c, 8, shape[-1], steps_per_epoch=100)
  images = jnp.asarray(rng.random((n,) + shape, np.float32))
  labels = jnp.asarray(rng.integers(0, 8, n).astype(np.int32))
  idx = jnp.arange(n).reshape(steps, bs)
  time_crop = (c.features.frames
               if c.features.kind == "logmel_time" else None)
  chunk = step_lib.make_train_chunk(
      graphdef, tx, augment.from_config(c.augment, crop_to=time_crop))
  key = jax.random.key(0)
  t0 = time.perf_counter()
  state, m = chunk(state, images, labels, idx, key)
  m["loss"].block_until_ready()
  compile_s = time.perf_counter() - t0
  rates = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    state, m = chunk(state, images, labels, idx, key)
    m["loss"].block_until_ready()
    rates.append(n / (time.perf_counter() - t0))
  return {"examples_per_sec": float(np.median(rates)),
          "examples_per_sec_all": rates, "first_call_seconds": compile_s,
          "batch_size": bs, "image_shape": list(shape),
          "backend": jax.default_backend()}


def main(argv=None) -> dict | None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default=DEFAULT_CONFIG)
  p.add_argument("--steps", type=int, default=4,
                 help="train steps per timed dispatch")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--json", default=None, help="write every result here")
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--conv_impl", default="xla", help=argparse.SUPPRESS)
  p.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
  a = p.parse_args(argv)
  from fser_jax import cpu
  cpu.configure()  # a worker's candidate flag, set in its environment, wins
  if not os.path.exists(a.config):
    print(f"--config {a.config}: no such file", file=sys.stderr)
    raise SystemExit(2)
  if a.worker:
    print(json.dumps(worker(a.config, a.conv_impl, a.precision, a.steps,
                            a.repeats)))
    return None
  out = tune(a.config, steps=a.steps, repeats=a.repeats)
  print(to_markdown(out))
  if a.json:
    with open(a.json, "w") as f:
      json.dump(out, f, indent=2)
  return out


if __name__ == "__main__":
  main()
