"""Per-layer profile of the FSER train step: where the milliseconds go.

  python benchmarks/profile_step.py --batch_size 64 [--json OUT.json]
  python benchmarks/profile_step.py --conv_impl xla   # lax convolutions
  python benchmarks/profile_step.py --precision bfloat16 --conv_impl onednn
  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= python benchmarks/profile_step.py

For every layer of the default model at batch 64 and each direction
(forward, input gradient, weight gradient; pooling forward/backward; dense;
the optimizer update; a layer with its own VJP, i.e. conv_impl 'winograd''s
phase-matmul first layer and Winograd layers, as its convolution + pooling
forward, then forward + backward together), the jitted piece is timed alone
(warm-up, then the median of timed windows), its FLOPs read from XLA's cost
analysis, and the backend that ran it read from the optimized HLO: a YNNPACK fusion
(`__xnn_fusion`/`ynn` in the HLO), a oneDNN custom call, or XLA's own
(Eigen) convolution/dot. The sum of the pieces is printed beside the whole
step, so what the table leaves out (augmentation, dropout, layout copies,
fusion across layers) shows as the difference.
"""

from __future__ import annotations

import argparse
import json

import common  # noqa: F401  (sys.path, XLA:CPU backend)


def _backend(compiled_text: str) -> str:
  t = compiled_text.lower()
  kinds = []
  if "ynn" in t or "xnn" in t:
    kinds.append("YNNPACK fusion")
  if "onednn" in t or "mkl" in t:
    kinds.append("oneDNN custom call")
  if "convolution(" in t or " convolution" in t:
    kinds.append("XLA conv (Eigen)")
  if " dot(" in t or "dot(" in t:
    kinds.append("XLA dot")
  return ", ".join(kinds) or "XLA elementwise"


def profile(batch: int, conv_impl: str = "auto",
            precision: str = "float32") -> list[dict]:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from fser_jax import config as config_lib, model as model_lib
  from fser_jax import state as state_lib
  c = config_lib.base()
  rows = []
  conv = common.conv_directions()

  def piece(name, fn, *args):
    j = jax.jit(fn)
    compiled = j.lower(*args).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", 0.0)) if cost else 0.0
    sec = common.median_seconds(
        lambda: jax.block_until_ready(compiled(*args)))
    rows.append({"piece": name, "ms": 1e3 * sec, "gflops": flops / 1e9,
                 "gflop_per_s": flops / sec / 1e9 if sec else 0.0,
                 "backend": _backend(compiled.as_text())})

  rng = np.random.default_rng(0)
  size, cin = c.features.image_size, 3
  dtype = model_lib.compute_dtype(precision)
  impl = model_lib.resolve_conv_impl(conv_impl, dtype)
  for i, f in enumerate(c.model.filters):
    x = jnp.asarray(rng.normal(size=(batch, size, size, cin)), dtype)
    k = jnp.asarray(rng.normal(size=(3, 3, cin, f)) * 0.1, dtype)
    b = jnp.zeros((f,), dtype)
    block = None
    wino = impl in ("winograd", "winograd_onednn") and dtype == jnp.float32
    if wino and i == 0:
      block, how = model_lib.pooled_conv, "phase matmul"
    elif wino and cin >= model_lib.WINOGRAD_MIN_CHANNELS:
      block, how = (lambda x, k, b: model_lib.max_pool_2x2(
          model_lib.winograd_conv(x, k, b))), "Winograd F(4x4,3x3)"
    elif impl in model_lib.ONEDNN_IMPLS:
      from fser_jax import onednn
      block, how = (lambda x, k, b: model_lib.max_pool_2x2(
          onednn.conv(x, k, b))), "oneDNN"
    if block is not None:  # a custom VJP: both gradients in one piece
      name = f"conv{i + 1}+pool {size}x{size} {cin}->{f} ({how})"
      piece(f"{name} forward", block, x, k, b)
      wrt = (1, 2) if i == 0 else (0, 1, 2)  # layer 1's input is data
      piece(f"{name} forward + backward",
            jax.grad(lambda *a: jnp.sum(block(*a)), argnums=wrt), x, k, b)
      size, cin = size // 2, f
      continue
    y = conv["forward"](x, k)
    piece(f"conv{i + 1} {size}x{size} {cin}->{f} forward", conv["forward"],
          x, k)
    if i > 0:  # the first layer's input is data: no input gradient needed
      piece(f"conv{i + 1} input gradient", conv["input gradient"], x, k, y)
    piece(f"conv{i + 1} weight gradient", conv["weight gradient"], x, k, y)
    piece(f"pool{i + 1} forward", model_lib.max_pool_2x2, y)
    piece(f"pool{i + 1} backward",
          lambda y: jax.grad(lambda a: jnp.sum(model_lib.max_pool_2x2(a)))(y), y)
    size, cin = size // 2, f
  widths = [size * size * cin, *c.model.dense, 8]
  for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
    x = jnp.asarray(rng.normal(size=(batch, a)), dtype)
    w = jnp.asarray(rng.normal(size=(a, b)) * 0.01, dtype)
    piece(f"dense{i + 1} {a}->{b} forward+backward",
          lambda x, w: jax.grad(lambda v: jnp.sum(jnp.tanh(x @ v)))(w), x, w)
  graphdef, state, tx = state_lib.create(c, 8, 3, 100)
  grads = jax.tree.map(jnp.ones_like, state["params"])
  piece("optimizer update (SGD)",
        lambda g, s, p: tx.update(g, s, p)[0], grads, state["opt_state"],
        state["params"])
  return rows


def main(argv=None):
  ap = argparse.ArgumentParser()
  ap.add_argument("--batch_size", type=int, default=64)
  ap.add_argument("--json", default=None)
  ap.add_argument("--conv_impl", default="auto",
                  help="model.conv_impl; 'auto' is the library's choice here")
  ap.add_argument("--precision", choices=["float32", "bfloat16"],
                  default="float32")
  a = ap.parse_args(argv)
  import train_step
  from fser_jax import model as model_lib
  rows = profile(a.batch_size, a.conv_impl, a.precision)
  whole = train_step.bench_jax(a.batch_size, a.precision, 8, 3, None,
                               conv_impl=a.conv_impl)
  step_ms = 1e3 * a.batch_size / whole["examples_per_sec"]["median"]
  total = sum(r["ms"] for r in rows)
  dtype = model_lib.compute_dtype(a.precision)
  print(f"device: {common.device_name()}; {a.precision}, conv_impl="
        f"{a.conv_impl} -> {model_lib.resolve_conv_impl(a.conv_impl, dtype)}")
  print(f"| piece | ms | GFLOP | GFLOP/s | backend |\n|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['piece']} | {r['ms']:.1f} | {r['gflops']:.2f} | "
          f"{r['gflop_per_s']:.0f} | {r['backend']} |")
  print(f"| sum of pieces | {total:.1f} | | | |")
  print(f"| whole train step (benchmarks/train_step.py) | {step_ms:.1f} | | | |")
  out = {"device": common.device_name(), "batch_size": a.batch_size,
         "precision": a.precision,
         "conv_impl": model_lib.resolve_conv_impl(a.conv_impl, dtype),
         "pieces": rows, "sum_ms": total, "step_ms": step_ms}
  if a.json:
    with open(a.json, "w") as f:
      json.dump(out, f, indent=2)
  return out


if __name__ == "__main__":
  main()
