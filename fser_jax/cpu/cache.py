"""JAX's persistent compilation cache, on by default.

XLA compiles every new program, and on a small CPU that is much of a short
run's time: even creating the tiny test model's random parameters compiles
threefry and the truncated normal once per parameter shape, and a cache
filled by an earlier process skips nearly all of it (measured:
docs/reliability.md). JAX can keep compiled programs on disk (docs: "Persistent
compilation cache"); `configure()` points it at `~/.cache/fser_jax/jax`
(`$XDG_CACHE_HOME` respected), keeps programs that took over 0.1 s to
compile, and bounds the folder at 2 GiB (least recently used first out;
reads and writes then go under a file lock, so parallel processes share it
safely). A cache folder the user set (`JAX_COMPILATION_CACHE_DIR`) wins;
`FSER_JAX_NO_COMPILATION_CACHE=1` turns it off. The cache is trusted code:
keep it in a folder only you can write to.
"""

from __future__ import annotations

import os
import sys

CHOICE = "not configured"
_SETTINGS = {  # environment variable: (jax config name, value)
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS":
        ("jax_persistent_cache_min_compile_time_secs", 0.1),
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES":
        ("jax_persistent_cache_min_entry_size_bytes", 0),
    "JAX_COMPILATION_CACHE_MAX_SIZE":
        ("jax_compilation_cache_max_size", 2 << 30),
}


def default_dir(environ) -> str:
  home = environ.get("HOME") or os.path.expanduser("~")
  base = environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
  return os.path.join(base, "fser_jax", "jax")


def configure(environ=None) -> str:
  """Turns the cache on in `environ` (before JAX reads it; through
  jax.config when JAX is already imported) unless the user chose otherwise;
  returns (and stores in CHOICE) what it did."""
  global CHOICE
  environ = os.environ if environ is None else environ
  if environ.get("FSER_JAX_NO_COMPILATION_CACHE"):
    CHOICE = "off (FSER_JAX_NO_COMPILATION_CACHE is set)"
    return CHOICE
  if environ.get("JAX_COMPILATION_CACHE_DIR"):
    CHOICE = f"{environ['JAX_COMPILATION_CACHE_DIR']} (JAX_COMPILATION_CACHE_DIR)"
    return CHOICE
  path = default_dir(environ)
  settings = {"JAX_COMPILATION_CACHE_DIR": ("jax_compilation_cache_dir", path)}
  settings.update({k: v for k, v in _SETTINGS.items() if k not in environ})
  jax_loaded = environ is os.environ and "jax" in sys.modules
  for var, (name, value) in settings.items():
    environ[var] = str(value)
    if jax_loaded:
      sys.modules["jax"].config.update(name, value)
  CHOICE = path
  return CHOICE
