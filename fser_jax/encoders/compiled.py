"""Encoder forward passes jitted with XLA compiler options of their own:
nnx.jit's contract (a module and arrays in, arrays out) plus jax.jit's
`compiler_options`, which nnx.jit cannot pass."""

from __future__ import annotations

import functools

import jax
from flax import nnx


def jit(options):
  """Decorator: fn(module, *arrays) jitted, compiled with `options()` (a
  callable, read at first use) on CPU. Each call splits the module (its
  graph is the static part, so a new shape or structure compiles once, as
  under nnx.jit)."""
  def wrap(fn):
    def run(graph, state, *args):
      return fn(nnx.merge(graph, state), *args)

    compiled = {}

    def pick():
      cpu = jax.default_backend() == "cpu"
      if cpu not in compiled:
        compiled[cpu] = jax.jit(
            run, static_argnums=0,
            compiler_options=(options() or None) if cpu else None)
      return compiled[cpu]

    @functools.wraps(fn)
    def call(module, *args):
      return pick()(*nnx.split(module), *args)

    call.lower = lambda module, *args: pick().lower(*nnx.split(module), *args)
    return call
  return wrap
