"""Throughput of the jitted FSER train step, against the same CNN in Keras.

  python benchmarks/train_step.py --batch_size 64 --json OUT.json
  python benchmarks/train_step.py --precision bfloat16 --baseline keras,torch

The JAX side is the library's own `train_chunk` (augmentation, dropout, SGD
update; `--steps_per_dispatch` steps fused in one dispatch). FLOPs per step come
from XLA's cost analysis of that function with direct convolutions (the work a
step stands for, whatever `--conv_impl` computes it with); the peak is a 2048^2
matmul (4096^2 on GPUs) timed on the same device in the same run. The Keras side is the
same architecture (32/64/128/256 3x3 convs, 2x2 max-pool, dropout, dense
512/256), SGD 1e-3, `train_on_batch` on one resident batch (its fastest path on
CPU; `--keras_jit` tries XLA). TensorFlow runs its CPU convolutions in oneDNN
only on CPUs with AVX512_VNNI/AVX512_BF16/AVX-VNNI/AMX unless told
(`--keras_onednn 1` sets TF_ENABLE_ONEDNN_OPTS=1 before it starts); the
result says which ran. `--baseline torch` adds the same CNN in PyTorch
(channels-last tensors, `torch.optim.SGD`; not a dependency: install it
yourself). bfloat16: JAX computes in bf16 with f32 parameters; Keras runs
the `mixed_bfloat16` policy, PyTorch `torch.autocast("cpu", torch.bfloat16)`.
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401  (sys.path, TF log level)


def step_inputs(batch_size: int, precision: str, steps_per_dispatch: int,
                conv_impl: str, unroll=None, dropout_bits: str = "bernoulli"):
  """The default model's train chunk (`steps_per_dispatch` steps of
  `batch_size`) and its arguments: (chunk, config, tx, state, images,
  labels, idx, key), on random 64x64 images."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from fser_jax.frontend import augment
  from fser_jax import config as config_lib
  from fser_jax.train import step as step_lib
  from fser_jax.train import optimizer as state_lib
  c = config_lib.base()
  c.train.precision = precision
  c.model.conv_impl = conv_impl
  c.model.dropout_bits = dropout_bits
  n = batch_size * steps_per_dispatch
  graphdef, state, tx = state_lib.create(c, 8, 3, steps_per_epoch=100)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.random((n, 64, 64, 3), np.float32))
  labels = jnp.asarray(rng.integers(0, 8, n).astype(np.int32))
  idx = jnp.arange(n).reshape(steps_per_dispatch, batch_size)
  chunk = step_lib.make_train_chunk(graphdef, tx, augment.from_config(c.augment),
                                 unroll=unroll)
  return chunk, c, tx, state, images, labels, idx, jax.random.key(0)


def bench_jax(batch_size: int, precision: str, steps_per_dispatch: int,
              repeats: int, unroll, conv_impl: str = "auto",
              dropout_bits: str = "bernoulli") -> dict:
  import jax
  from fser_jax.frontend import augment
  from fser_jax.model import kernels
  from fser_jax.train import step as step_lib
  from fser_jax.train import optimizer as state_lib
  chunk, c, tx, state, images, labels, idx, key = step_inputs(
      batch_size, precision, steps_per_dispatch, conv_impl, unroll,
      dropout_bits)
  n = batch_size * steps_per_dispatch
  t0 = time.perf_counter()
  compiled = chunk.lower(state, images, labels, idx, key).compile()
  compile_seconds = time.perf_counter() - t0
  # FLOPs of the direct convolutions (conv_impl 'xla'), so that a step doing
  # the same work with fewer products (Winograd) shows as a higher rate
  # rather than a lower count: the step's work, not its method's.
  direct, direct_state = chunk, state
  if kernels.resolve_conv_impl(conv_impl) != "xla":
    c.model.conv_impl = "xla"
    graphdef_x, direct_state, _ = state_lib.create(c, 8, 3, steps_per_epoch=100)
    direct = step_lib.make_train_chunk(
        graphdef_x, tx, augment.from_config(c.augment), unroll=unroll)
  cost = direct.lower(direct_state, images, labels, idx, key).cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops_per_step = float(cost.get("flops", 0.0)) / steps_per_dispatch
  box = {"state": state}

  def call():
    box["state"], m = compiled(box["state"], images, labels, idx, key)
    m["loss"].block_until_ready()

  wins = common.windows(call, repeats=repeats)
  ex = common.rate_stats(wins, n)
  peak = common.peak_flops(4096 if jax.default_backend() == "gpu" else 2048,
                           "bfloat16" if precision == "bfloat16" else "float32")
  achieved = ex["median"] / batch_size * flops_per_step
  return {"examples_per_sec": ex, "flops_per_step": flops_per_step,
          "achieved_flops_per_sec": achieved, "peak_flops_per_sec": peak,
          "utilization": achieved / peak if peak else None,
          "steps_per_dispatch": steps_per_dispatch,
          "compile_seconds": compile_seconds}


def keras_model(num_classes: int = 8):
  import keras
  layers = [keras.Input((64, 64, 3))]
  for f in (32, 64, 128, 256):
    layers += [keras.layers.Conv2D(f, 3, padding="same", activation="relu"),
               keras.layers.MaxPooling2D(2), keras.layers.Dropout(0.25)]
  layers += [keras.layers.Flatten(),
             keras.layers.Dense(512, activation="relu"), keras.layers.Dropout(0.5),
             keras.layers.Dense(256, activation="relu"), keras.layers.Dropout(0.5),
             keras.layers.Dense(num_classes, dtype="float32")]
  return keras.Sequential(layers)


def bench_keras(batch_size: int, precision: str, repeats: int,
                jit: bool) -> dict:
  import os
  os.environ.setdefault("KERAS_BACKEND", "tensorflow")
  import keras
  import numpy as np
  keras.mixed_precision.set_global_policy(
      "mixed_bfloat16" if precision == "bfloat16" else "float32")
  model = keras_model()
  model.compile(optimizer=keras.optimizers.SGD(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=jit)
  rng = np.random.default_rng(0)
  x = rng.random((batch_size, 64, 64, 3), np.float32)
  y = rng.integers(0, 8, batch_size)
  wins = common.windows(lambda: model.train_on_batch(x, y), warmup=3,
                        repeats=repeats)
  keras.mixed_precision.set_global_policy("float32")
  return {"examples_per_sec": common.rate_stats(wins, batch_size),
          "jit_compile": jit}


def bench_torch(batch_size: int, precision: str, repeats: int) -> dict:
  import contextlib
  import os
  import numpy as np
  import torch
  from torch import nn
  torch.set_num_threads(os.cpu_count() or 1)
  torch.manual_seed(0)
  layers, cin = [], 3
  for f in (32, 64, 128, 256):
    layers += [nn.Conv2d(cin, f, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
               nn.Dropout(0.25)]
    cin = f
  model = nn.Sequential(
      *layers, nn.Flatten(), nn.Linear(256 * 4 * 4, 512), nn.ReLU(),
      nn.Dropout(0.5), nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.5),
      nn.Linear(256, 8)).to(memory_format=torch.channels_last)
  opt = torch.optim.SGD(model.parameters(), lr=1e-3)
  rng = np.random.default_rng(0)
  x = torch.from_numpy(rng.random((batch_size, 3, 64, 64), np.float32)
                       ).contiguous(memory_format=torch.channels_last)
  y = torch.from_numpy(rng.integers(0, 8, batch_size))
  cast = (torch.autocast("cpu", dtype=torch.bfloat16)
          if precision == "bfloat16" else contextlib.nullcontext())

  def step():
    opt.zero_grad(set_to_none=True)
    with cast:
      loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()

  wins = common.windows(step, warmup=3, repeats=repeats)
  return {"examples_per_sec": common.rate_stats(wins, batch_size),
          "torch": torch.__version__,
          "mkldnn": bool(torch.backends.mkldnn.is_available())}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--precision", choices=["float32", "bfloat16"],
                 default="float32")
  p.add_argument("--baseline", default="keras",
                 help="peers, a comma list of keras, torch; or none")
  p.add_argument("--keras_jit", action="store_true")
  p.add_argument("--keras_onednn", choices=["default", "1", "0"],
                 default="default",
                 help="TF_ENABLE_ONEDNN_OPTS for Keras (default: TF's choice)")
  p.add_argument("--steps_per_dispatch", type=int, default=8)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--json", default=None)
  p.add_argument("--dropout_bits", default="bernoulli",
                 help="model.dropout_bits (bernoulli, packed); a comma list "
                 "runs each side by side")
  p.add_argument("--conv_impl", default="auto",
                 help="model.conv_impl (default: the library's, 'auto'); a "
                 "comma list runs each side by side")
  a = p.parse_args(argv)
  peers = [b for b in a.baseline.split(",") if b and b != "none"]
  if set(peers) - {"keras", "torch"}:
    p.error(f"--baseline {a.baseline}: peers are keras, torch or none")
  if a.keras_onednn != "default":
    import os
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = a.keras_onednn  # read at TF start
  import tensorflow as tf
  tf.config.set_visible_devices([], "GPU") if "keras" not in peers else None
  import jax.numpy as jnp
  from fser_jax.model import kernels
  dtype = jnp.bfloat16 if a.precision == "bfloat16" else jnp.float32
  result = {"device": common.device_name(), "batch_size": a.batch_size,
            "precision": a.precision,
            "conv_impl": a.conv_impl.split(",")[0],
            "conv_impl_resolved": kernels.resolve_conv_impl(
                a.conv_impl.split(",")[0], dtype)}
  result["dropout_bits"] = a.dropout_bits.split(",")[0]
  for impl in a.conv_impl.split(","):
    for bits in a.dropout_bits.split(","):
      r = bench_jax(a.batch_size, a.precision, a.steps_per_dispatch,
                    a.repeats, None, conv_impl=impl, dropout_bits=bits)
      name = impl if bits == result["dropout_bits"] else f"{impl}+{bits}"
      if "jax" not in result:
        result["jax"] = r
      else:  # alternatives, measured in the same process after the first
        result.setdefault("jax_alternatives", {})[name] = r
      resolved = kernels.resolve_conv_impl(impl, dtype)
      print(f"conv_impl={impl}"
            + (f" (here: {resolved})" if resolved != impl else "")
            + f", dropout_bits={bits}: "
            f"{r['examples_per_sec']['median']:.1f} ex/s")
  if "keras" in peers:
    result["keras"] = bench_keras(a.batch_size, a.precision, a.repeats,
                                  a.keras_jit)
    result["keras"]["tensorflow"] = common.tf_conv_backend()
    result["speedup_vs_keras"] = (result["jax"]["examples_per_sec"]["median"]
                                  / result["keras"]["examples_per_sec"]["median"])
  if "torch" in peers:
    result["torch"] = bench_torch(a.batch_size, a.precision, a.repeats)
    jax_rate = result["jax"]["examples_per_sec"]["median"]
    result["speedup_vs_torch"] = (
        jax_rate / result["torch"]["examples_per_sec"]["median"])
  common.write_json(a.json, result)
  return result


if __name__ == "__main__":
  main()
