"""The encoders' forward passes, jitted: nnx.jit's contract (a module and
arrays in, arrays out) with XLA:CPU compiler options of their own
(`xla_cpu.encoder_options`), which nnx.jit cannot pass."""

from __future__ import annotations

import functools

import jax
from flax import nnx

from fser_jax import xla_cpu


def jit(fn):
  """fn(module, *arrays) jitted; on CPU with `xla_cpu.encoder_options()`.
  Each call splits the module (its graph is the static part, so a new
  shape or structure compiles once, as under nnx.jit)."""
  def run(graph, state, *args):
    return fn(nnx.merge(graph, state), *args)

  plain = jax.jit(run, static_argnums=0)
  cpu = jax.jit(run, static_argnums=0,
                compiler_options=xla_cpu.encoder_options() or None)

  @functools.wraps(fn)
  def call(module, *args):
    graph, state = nnx.split(module)
    go = cpu if jax.default_backend() == "cpu" else plain
    return go(graph, state, *args)

  call.lower = lambda module, *args: (
      cpu if jax.default_backend() == "cpu" else plain).lower(
          *nnx.split(module), *args)
  return call
