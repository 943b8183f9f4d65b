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

  python benchmarks/profile_step.py --trace [--precision bfloat16]

`--trace` instead runs the whole compiled train step (4 steps per dispatch)
under `jax.profiler` and sums the time of every operation XLA ran (its
fusions, dots, oneDNN custom calls) per step, grouped by the operation's
kind, shape and the JAX source line it came from: what the step spends
outside the convolutions (pooling, dropout's random bits, layout copies,
the update) shows by name.
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
  from fser_jax import config as config_lib
  from fser_jax.model import kernels
  from fser_jax.model import cnn as model_lib
  from fser_jax.train import optimizer as state_lib
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
  impl = kernels.resolve_conv_impl(conv_impl, dtype)
  for i, f in enumerate(c.model.filters):
    x = jnp.asarray(rng.normal(size=(batch, size, size, cin)), dtype)
    k = jnp.asarray(rng.normal(size=(3, 3, cin, f)) * 0.1, dtype)
    b = jnp.zeros((f,), dtype)
    block, how = kernels.conv_pool(impl, i, cin, dtype)
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
    piece(f"pool{i + 1} forward", kernels.max_pool_2x2, y)
    piece(f"pool{i + 1} backward",
          lambda y: jax.grad(lambda a: jnp.sum(kernels.max_pool_2x2(a)))(y), y)
    size, cin = size // 2, f
  widths = [size * size * cin, *c.model.dense, 8]
  for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
    # The model's dense layers compute in float32 in either precision.
    x = jnp.asarray(rng.normal(size=(batch, a)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(a, b)) * 0.01, jnp.float32)
    piece(f"dense{i + 1} {a}->{b} forward+backward",
          lambda x, w: jax.grad(lambda v: jnp.sum(jnp.tanh(x @ v)))(w), x, w)
  graphdef, state, tx = state_lib.create(c, 8, 3, 100)
  grads = jax.tree.map(jnp.ones_like, state["params"])
  piece("optimizer update (SGD)",
        lambda g, s, p: tx.update(g, s, p)[0], grads, state["opt_state"],
        state["params"])
  return rows


def trace_step(batch: int, conv_impl: str = "auto",
               precision: str = "float32", dispatches: int = 3,
               steps_per_dispatch: int = 4) -> dict:
  """Per-operation time of the whole compiled train step (ms per step),
  from a `jax.profiler` trace of `dispatches` dispatches."""
  import collections
  import glob
  import gzip
  import re
  import tempfile
  import time
  import jax
  import train_step
  chunk, _, _, state, images, labels, idx, key = train_step.step_inputs(
      batch, precision, steps_per_dispatch, conv_impl)
  compiled = chunk.lower(state, images, labels, idx, key).compile()
  hlo = compiled.as_text()
  box = {"state": state}

  def call():
    box["state"], m = compiled(box["state"], images, labels, idx, key)
    m["loss"].block_until_ready()

  call(), call()  # warm
  t0 = time.perf_counter()
  for _ in range(dispatches):
    call()
  wall = time.perf_counter() - t0  # without the profiler
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d, create_perfetto_trace=True):
      for _ in range(dispatches):
        call()
    with gzip.open(glob.glob(f"{d}/**/*.trace.json.gz", recursive=True)[0]) as f:
      events = json.load(f)
  events = events["traceEvents"] if isinstance(events, dict) else events
  steps = dispatches * steps_per_dispatch
  per_op = collections.Counter()
  for e in events:
    if e.get("ph") == "X" and not e["name"].startswith("$"):
      per_op[e["name"]] += e.get("dur", 0) / 1e3 / steps
  groups, total = collections.Counter(), 0.0
  for name, ms in per_op.items():
    m = re.search(r"%" + re.escape(name) + r" = (\S+) ([^\n]*)", hlo)
    if not m:  # the runtime's own spans (executor, dispatch)
      continue
    target = re.search(r'custom_call_target="([^"]+)"', m.group(2))
    source = re.search(r'op_name="([^"]+)"', m.group(2))
    kind = target.group(1) if target else re.sub(r"[._]\d+$", "", name)
    where = source.group(1).split("closed_call/")[-1] if source else ""
    groups[(kind, m.group(1)[:48], where[-60:])] += ms
    total += ms
  rows = [{"op": k, "shape": s, "source": w, "ms_per_step": ms}
          for (k, s, w), ms in groups.most_common()]
  return {"rows": rows, "ops_ms_per_step": total,
          "wall_ms_per_step": 1e3 * wall / steps}


def main(argv=None):
  ap = argparse.ArgumentParser()
  ap.add_argument("--batch_size", type=int, default=64)
  ap.add_argument("--json", default=None)
  ap.add_argument("--conv_impl", default="auto",
                  help="model.conv_impl; 'auto' is the library's choice here")
  ap.add_argument("--precision", choices=["float32", "bfloat16"],
                  default="float32")
  ap.add_argument("--trace", action="store_true",
                  help="per-operation time of the whole step (jax.profiler)")
  ap.add_argument("--top", type=int, default=30)
  a = ap.parse_args(argv)
  import train_step
  from fser_jax.model import kernels
  from fser_jax.model import cnn as model_lib
  dtype = model_lib.compute_dtype(a.precision)
  impl = kernels.resolve_conv_impl(a.conv_impl, dtype)
  if a.trace:
    out = trace_step(a.batch_size, a.conv_impl, a.precision)
    print(f"device: {common.device_name()}; {a.precision}, conv_impl="
          f"{a.conv_impl} -> {impl}; batch {a.batch_size}; ms per step: "
          f"{out['ops_ms_per_step']:.1f} in operations, "
          f"{out['wall_ms_per_step']:.1f} wall without the profiler")
    print("| operation | shape | from | ms/step |\n|---|---|---|---|")
    for r in out["rows"][:a.top]:
      print(f"| {r['op']} | `{r['shape']}` | {r['source']} | "
            f"{r['ms_per_step']:.2f} |")
    out.update(device=common.device_name(), batch_size=a.batch_size,
               precision=a.precision, conv_impl=impl)
    if a.json:
      with open(a.json, "w") as f:
        json.dump(out, f, indent=2)
    return out
  rows = profile(a.batch_size, a.conv_impl, a.precision)
  whole = train_step.bench_jax(a.batch_size, a.precision, 8, 3, None,
                               conv_impl=a.conv_impl)
  step_ms = 1e3 * a.batch_size / whole["examples_per_sec"]["median"]
  total = sum(r["ms"] for r in rows)
  print(f"device: {common.device_name()}; {a.precision}, conv_impl="
        f"{a.conv_impl} -> {impl}")
  print("| piece | ms | GFLOP | GFLOP/s | backend |\n|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['piece']} | {r['ms']:.1f} | {r['gflops']:.2f} | "
          f"{r['gflop_per_s']:.0f} | {r['backend']} |")
  print(f"| sum of pieces | {total:.1f} | | | |")
  print(f"| whole train step (benchmarks/train_step.py) | {step_ms:.1f} | | | |")
  out = {"device": common.device_name(), "batch_size": a.batch_size,
         "precision": a.precision,
         "conv_impl": impl,
         "pieces": rows, "sum_ms": total, "step_ms": step_ms}
  if a.json:
    with open(a.json, "w") as f:
      json.dump(out, f, indent=2)
  return out


if __name__ == "__main__":
  main()
