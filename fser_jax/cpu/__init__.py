"""The CPU under JAX: XLA:CPU's flags per CPU kind (`xla`), oneDNN's
convolutions through XLA's FFI (`onednn`, `onednn_conv.cc`) and JAX's
persistent compilation cache (`cache`). Imports nothing of fser_jax above
`errors`.

Nothing here runs at import. `configure()` is the one call that applies the
per-CPU defaults (and the tuner's cached choice, `python -m
fser_jax.tools.tune`) before JAX's first computation; a setting the user made
in the environment always wins.
"""

from __future__ import annotations

import os


def configure(environ=None) -> dict:
  """Applies this CPU's defaults to `environ` (os.environ by default):
  XLA:CPU's YNNPACK flag (`xla.configure`), the compilation cache
  (`cache.configure`) and librosa's numba target (`NUMBA_CPU_NAME=generic`:
  numba names some AMX Xeons 'rocketlake' and its code for that target
  crashes; generic x86-64 code gives the same pitch). Returns what was
  chosen, one line per part; a value the user set wins."""
  from fser_jax.cpu import cache, xla
  environ = os.environ if environ is None else environ
  environ.setdefault("NUMBA_CPU_NAME", "generic")
  return {"xla": xla.configure(environ), "cache": cache.configure(environ),
          "numba": environ["NUMBA_CPU_NAME"]}
