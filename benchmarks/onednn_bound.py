"""How much can TensorFlow's (oneDNN's) convolutions buy the train step?

  python benchmarks/onednn_bound.py --batch_size 64 [--json OUT.json]

Keras is fast on some CPUs because TensorFlow runs its convolutions through
oneDNN. This measures the upper bound of that route for our step, three
ways, side by side in one process:

1. Kernels alone: every convolution of the FSER CNN at batch 64 in each
   direction (forward, input gradient, weight gradient; the first layer has
   no input gradient), XLA:CPU (`lax.conv_general_dilated` with the backend
   `fser_jax` chose) against TensorFlow's CPU kernels (`Conv2D`,
   `Conv2DBackpropInput`, `Conv2DBackpropFilter` in a `tf.function`).
   TensorFlow turns oneDNN on by default only on CPUs with AVX512_VNNI,
   AVX512_BF16, AVX-VNNI or AMX; elsewhere (e.g. an AVX2 EPYC) its kernels
   are Eigen's. `--onednn 1` (the default here) sets TF_ENABLE_ONEDNN_OPTS=1
   before TensorFlow starts, so the oneDNN route is what is measured;
   `--onednn default` leaves TensorFlow's own choice. The output says which.
2. The bound: the library's whole train step, minus XLA's convolution time,
   plus the faster of the two per piece (so a hybrid that used TensorFlow
   only where it wins, with free hand-over). No real route beats this.
3. The route itself: one train step of the same CNN (bias, ReLU, the
   library's max-pool and dropout, softmax cross-entropy, SGD with Nesterov
   momentum) written once with a pluggable convolution, run with XLA's
   convolution and with TensorFlow's kernels behind a `jax.custom_vjp` whose
   three directions are `jax.pure_callback`s.
"""

from __future__ import annotations

import argparse
import functools

import common  # noqa: F401  (sys.path, XLA:CPU backend, TF log level)


def tf_kernels():
  """TensorFlow's three convolution kernels as numpy -> numpy functions."""
  import tensorflow as tf
  tf.config.set_visible_devices([], "GPU")
  tf.get_logger().setLevel("ERROR")  # one trace per layer shape is expected
  strides = [1, 1, 1, 1]

  @tf.function
  def fwd(x, k):
    return tf.nn.conv2d(x, k, strides, "SAME")

  @tf.function
  def dx(x_shape, k, g):
    return tf.raw_ops.Conv2DBackpropInput(input_sizes=x_shape, filter=k,
                                          out_backprop=g, strides=strides,
                                          padding="SAME")

  @tf.function
  def dk(x, k_shape, g):
    return tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=k_shape,
                                           out_backprop=g, strides=strides,
                                           padding="SAME")

  return {
      "forward": lambda x, k: fwd(x, k).numpy(),
      "input gradient": lambda x, k, g: dx(
          tf.constant(x.shape, tf.int32), k, g).numpy(),
      "weight gradient": lambda x, k, g: dk(
          x, tf.constant(k.shape, tf.int32), g).numpy(),
  }


def kernels(batch: int, repeats: int) -> list[dict]:
  """Part 1: per piece, XLA ms and TensorFlow ms, with the largest error."""
  import jax
  import numpy as np
  from fser_jax import config as config_lib
  c = config_lib.base()
  tfk = tf_kernels()
  xk = {k: jax.jit(f) for k, f in common.conv_directions().items()}
  rng = np.random.default_rng(0)
  rows, size, cin = [], c.features.image_size, 3
  for i, f in enumerate(c.model.filters):
    x = rng.normal(size=(batch, size, size, cin)).astype(np.float32)
    k = (rng.normal(size=(3, 3, cin, f)) * 0.1).astype(np.float32)
    g = rng.normal(size=(batch, size, size, f)).astype(np.float32)
    xj, kj, gj = (jax.device_put(a) for a in (x, k, g))
    for direction in ("forward", "input gradient", "weight gradient"):
      if direction == "input gradient" and i == 0:
        continue  # the first layer's input is data
      args_np = (x, k) if direction == "forward" else (x, k, g)
      args_j = (xj, kj) if direction == "forward" else (xj, kj, gj)
      want = np.asarray(xk[direction](*args_j))
      got = tfk[direction](*args_np)
      err = float(np.max(np.abs(want - got)) / (np.max(np.abs(want)) + 1e-30))
      t_x = common.median_seconds(
          lambda: jax.block_until_ready(xk[direction](*args_j)),
          repeats=repeats, min_seconds=0.5)
      t_t = common.median_seconds(lambda: tfk[direction](*args_np),
                                  repeats=repeats, min_seconds=0.5)
      rows.append({"piece": f"conv{i + 1} {size}x{size} {cin}->{f} {direction}",
                   "xla_ms": 1e3 * t_x, "tf_ms": 1e3 * t_t,
                   "max_rel_diff": err})
    size, cin = size // 2, f
  return rows


def make_tf_conv():
  """A convolution whose three directions run in TensorFlow via callbacks."""
  import jax
  import numpy as np
  tfk = tf_kernels()

  def cb(name, shape_like, *args):
    out = jax.ShapeDtypeStruct(shape_like.shape, shape_like.dtype)
    return jax.pure_callback(
        lambda *a: np.asarray(tfk[name](*(np.asarray(v) for v in a)),
                              np.float32),
        out, *args)

  @functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
  def conv(x, k, need_dx):
    y = jax.ShapeDtypeStruct(x.shape[:3] + (k.shape[-1],), x.dtype)
    return cb("forward", y, x, k)

  def fwd(x, k, need_dx):
    return conv(x, k, need_dx), (x, k)

  def bwd(need_dx, res, g):
    x, k = res
    gk = cb("weight gradient", k, x, k, g)
    gx = cb("input gradient", x, x, k, g) if need_dx else jax.numpy.zeros_like(x)
    return gx, gk

  conv.defvjp(fwd, bwd)
  return conv


def route_steps(batch: int, repeats: int) -> dict:
  """Part 3: one hand-written train step, XLA convolutions vs TF callbacks."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from fser_jax import config as config_lib
  from fser_jax.model import kernels
  c = config_lib.base()
  rng = np.random.default_rng(0)
  params, size, cin = {"conv": [], "dense": []}, c.features.image_size, 3
  for f in c.model.filters:
    params["conv"].append((
        jnp.asarray(rng.normal(size=(3, 3, cin, f)) * (2 / (9 * cin)) ** .5,
                    jnp.float32), jnp.zeros((f,), jnp.float32)))
    size, cin = size // 2, f
  widths = [size * size * cin, *c.model.dense, 8]
  for a, b in zip(widths[:-1], widths[1:]):
    params["dense"].append((
        jnp.asarray(rng.normal(size=(a, b)) * (2 / a) ** .5, jnp.float32),
        jnp.zeros((b,), jnp.float32)))
  x = jnp.asarray(rng.random((batch, 64, 64, 3), np.float32))
  y = jnp.asarray(rng.integers(0, 8, batch).astype(np.int32))
  tx = optax.sgd(1e-3, momentum=0.9, nesterov=True)
  tf_conv = make_tf_conv()

  def make(conv):
    def loss(p, key):
      keys = jax.random.split(key, 8)
      h = x
      for i, (k, b) in enumerate(p["conv"]):
        h = kernels.max_pool_2x2(conv(h, k, i > 0) + b)
        h = kernels.dropout(jax.nn.relu(h), c.model.conv_dropout, keys[i])
      h = h.reshape(batch, -1)
      for i, (w, b) in enumerate(p["dense"]):
        h = h @ w + b
        if i < len(p["dense"]) - 1:
          h = kernels.dropout(jax.nn.relu(h), c.model.dense_dropout,
                                keys[4 + i])
      return optax.softmax_cross_entropy_with_integer_labels(h, y).mean()

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(p, opt, key):
      l, g = jax.value_and_grad(loss)(p, key)
      u, opt = tx.update(g, opt, p)
      return optax.apply_updates(p, u), opt, l
    return step, loss

  out, losses, grads = {}, {}, {}
  xla_conv = common.conv_directions()["forward"]
  for name, conv in (("xla", lambda h, k, _: xla_conv(h, k)),
                     ("tf_callback", tf_conv)):
    step, loss = make(conv)
    l, grads[name] = jax.jit(jax.value_and_grad(loss))(params, jax.random.key(1))
    losses[name] = float(l)
    box = {"p": jax.tree.map(jnp.copy, params)}
    box["o"] = tx.init(box["p"])

    def call():
      box["p"], box["o"], l = step(box["p"], box["o"], jax.random.key(0))
      l.block_until_ready()

    wins = common.windows(call, repeats=repeats)
    out[name] = common.rate_stats(wins, batch)
  out["loss_at_init"] = losses
  out["grad_max_rel_diff"] = max(
      float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(a)) + 1e-30))
      for a, b in zip(jax.tree.leaves(grads["xla"]),
                      jax.tree.leaves(grads["tf_callback"])))
  return out


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--json", default=None)
  p.add_argument("--onednn", choices=["1", "0", "default"], default="1",
                 help="TF_ENABLE_ONEDNN_OPTS for TensorFlow's kernels")
  a = p.parse_args(argv)
  if a.onednn != "default":
    import os
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = a.onednn  # read when TF starts
  import train_step
  rows = kernels(a.batch_size, a.repeats)
  lib = train_step.bench_jax(a.batch_size, "float32", 8, a.repeats, None)
  lib_rate = lib["examples_per_sec"]["median"]
  step_ms = 1e3 * a.batch_size / lib_rate
  xla_ms = sum(r["xla_ms"] for r in rows)
  best_ms = sum(min(r["xla_ms"], r["tf_ms"]) for r in rows)
  bound_ms = step_ms - xla_ms + best_ms
  route = route_steps(a.batch_size, a.repeats)
  result = {
      "device": common.device_name(), "tensorflow": common.tf_conv_backend(),
      "batch_size": a.batch_size, "pieces": rows,
      "library_step_ms": step_ms, "library_examples_per_sec": lib_rate,
      "xla_conv_ms": xla_ms, "tf_conv_ms": sum(r["tf_ms"] for r in rows),
      "best_of_both_conv_ms": best_ms, "bound_step_ms": bound_ms,
      "bound_speedup": step_ms / bound_ms,
      "route_examples_per_sec": {k: route[k] for k in ("xla", "tf_callback")},
      "route_loss_at_init": route["loss_at_init"],
      "route_grad_max_rel_diff": route["grad_max_rel_diff"],
      "route_speedup": (route["tf_callback"]["median"]
                        / route["xla"]["median"]),
  }
  print(f"device: {result['device']}; TensorFlow: {result['tensorflow']}")
  print("| piece | XLA ms | TensorFlow ms | TF / XLA | max rel. diff |")
  print("|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['piece']} | {r['xla_ms']:.1f} | {r['tf_ms']:.1f} | "
          f"{r['tf_ms'] / r['xla_ms']:.2f} | {r['max_rel_diff']:.1e} |")
  print(f"| all convolutions | {xla_ms:.1f} | {result['tf_conv_ms']:.1f} | "
        f"{result['tf_conv_ms'] / xla_ms:.2f} | |")
  print(f"library train step: {step_ms:.1f} ms ({lib_rate:.1f} ex/s); bound "
        f"with the faster kernel per piece: {bound_ms:.1f} ms, "
        f"x{result['bound_speedup']:.2f}")
  print(f"hand-written step: XLA convs {route['xla']['median']:.1f} ex/s, "
        f"TF callbacks {route['tf_callback']['median']:.1f} ex/s, "
        f"x{result['route_speedup']:.2f} (loss at init "
        f"{route['loss_at_init']['xla']:.5f} vs "
        f"{route['loss_at_init']['tf_callback']:.5f}; gradients' largest "
        f"relative difference {route['grad_max_rel_diff']:.1e})")
  common.write_json(a.json, result)
  return result


if __name__ == "__main__":
  main()
