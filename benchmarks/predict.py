"""Predict throughput on a folder of files: today's path against the old one.

  python benchmarks/predict.py --files 200 --seconds 2 --json OUT.json
  python benchmarks/predict.py --files 20 --seconds 60

Both sides use one run (an untrained FSER CNN of the default config, saved as
a run: throughput does not depend on the weights) and the same generated
WAV files (16 kHz), timed side by side in one process after a warm-up:
- `fser_jax`: experiments/predict.predict_files (audio read ahead on threads,
  windows of 64 files batched together, the trunk once for probabilities and
  familiarity);
- `legacy`: the loop predict ran before (one file at a time, its windows in a
  batch of 16, the network run twice: logits, then the familiarity
  embedding), rebuilt here from the same stages.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import common  # noqa: F401  (sys.path, TF log level, XLA:CPU backend)


def make_run(workdir: str, conv_impl: str = "auto") -> None:
  import numpy as np
  from fser_jax.train import checkpoints
  from fser_jax import config as config_lib
  from fser_jax.evaluation import familiarity
  from fser_jax.train import rundir
  from fser_jax.train import optimizer as state_lib
  c = config_lib.base()
  c.model.conv_impl = conv_impl
  rundir.prepare(c, workdir)
  _, state, _ = state_lib.create(c, 8, 3, 1)
  ck = checkpoints.Checkpoints(workdir)
  ck.save_latest(1, state)
  ck.wait()
  ck.close()
  rundir.write_normalisation(workdir, ([0.5] * 3, [0.25] * 3),
                             [f"c{i}" for i in range(8)], "global")
  rng = np.random.default_rng(0)
  familiarity.save(rundir.path(workdir, rundir.FAMILIARITY), {
      "means": rng.normal(size=(8, 256)), "precision": np.eye(256),
      "threshold": 20.0, "quantile": 0.99})


def make_files(folder: str, n: int, seconds: float) -> list[str]:
  import numpy as np
  import soundfile as sf
  sr, out = 16000, []
  rng = np.random.default_rng(0)
  for i in range(n):
    t = np.arange(int(sr * seconds)) / sr
    f0 = 120 + 80 * rng.random()
    x = 0.2 * np.sin(2 * np.pi * f0 * t * (1 + 0.1 * np.sin(3 * t)))
    x += 0.01 * rng.standard_normal(t.size)
    p = os.path.join(folder, f"f{i:04d}.wav")
    sf.write(p, x.astype(np.float32), sr)
    out.append(p)
  return out


def legacy(run, files):
  """The old per-file loop (fser_jax/predict.py before this benchmark)."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from fser_jax.evaluation import familiarity
  from fser_jax.frontend import spectrogram as features
  from fser_jax.model import forward
  from fser_jax.frontend import normalisation
  eval_fn = forward.make_eval_fn(run.graphdef)

  @jax.jit
  def embed_fn(params, images):
    return nnx.merge(run.graphdef, params).embed(images).astype(jnp.float32)

  for p in files:
    wav = run.load_audio(p)
    windows = run.windows(wav)
    images = features.compute_images([w for _, w in windows],
                                     run.config.features, run.sample_rate,
                                     batch_size=16)
    images = normalisation.standardise(images, run.norm)
    forward.predict_logits(eval_fn, run.params, images, 16)
    emb = forward.predict_logits(embed_fn, run.params, images, 16)
    familiarity.distance(run.familiarity, emb)


def main(argv=None):
  ap = argparse.ArgumentParser()
  ap.add_argument("--files", type=int, default=200)
  ap.add_argument("--seconds", type=float, default=2.0)
  ap.add_argument("--legacy_files", type=int, default=0,
                  help="files for the legacy side (default: all; it is slow)")
  ap.add_argument("--json", default=None)
  ap.add_argument("--conv_impl", default="auto",
                  help="the run's model.conv_impl (config.json)")
  a = ap.parse_args(argv)
  from fser_jax.experiments import predict
  from fser_jax.runs.trained import TrainedRun
  with tempfile.TemporaryDirectory() as tmp:
    make_run(os.path.join(tmp, "run"), a.conv_impl)
    files = make_files(tmp, a.files, a.seconds)
    run = TrainedRun(os.path.join(tmp, "run"))
    predict.predict_files(run, files[:2], progress=False)  # warm-up
    legacy(run, files[:2])
    t0 = time.perf_counter()
    predict.predict_files(run, files, progress=False)
    ours = a.files / (time.perf_counter() - t0)
    n_old = a.legacy_files or a.files
    t0 = time.perf_counter()
    legacy(run, files[:n_old])
    old = n_old / (time.perf_counter() - t0)
  result = {"device": common.device_name(), "files": a.files,
            "conv_impl": a.conv_impl,
            "seconds_per_file": a.seconds, "fser_jax_files_per_sec": ours,
            "legacy_files_per_sec": old, "speedup": ours / old}
  print(json.dumps(result, indent=2))
  if a.json:
    with open(a.json, "w") as f:
      json.dump(result, f, indent=2)
  return result


if __name__ == "__main__":
  main()
