"""Several processes, one run: `jax.distributed`, started before JAX computes.

  # on each of N hosts (or N processes on one), the same command:
  python launch.py --config C --workdir W --coordinator_address HOST:PORT \
      --num_processes N --process_id I

The coordinator address, process count and id come from these flags, else
from the environment (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
JAX_PROCESS_ID), else, with `--config.mesh.distributed=True`, from the
cluster (`jax.distributed.initialize()`'s auto-detection: SLURM, Open MPI,
Kubernetes, Cloud TPU). On CPUs, cross-process collectives go through gloo.

In a run of several processes, the mesh spans every process's devices, each
step's batch is split across them, and XLA all-reduces the gradients: the
same run as one process with the same global batch. Every process reads the
dataset and computes the report (they agree); only the first (`is_lead`)
writes files, and orbax writes each checkpoint once.
"""

from __future__ import annotations

import os

import numpy as np

ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def initialize(coordinator_address: str = "", num_processes: int = 0,
               process_id: int = -1, auto: bool = False,
               environ=None) -> str:
  """Starts jax.distributed if a multi-process run is asked for; returns a
  line saying what it did. Must run before JAX's first computation."""
  environ = os.environ if environ is None else environ
  addr = coordinator_address or environ.get(ENV[0], "")
  n = num_processes or int(environ.get(ENV[1], "0") or 0)
  pid = process_id if process_id >= 0 else int(environ.get(ENV[2], "-1") or -1)
  if not addr and not auto:
    return "one process"
  import jax
  if _cpu_only():  # (asking jax.default_backend() would start it)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if addr:
    if n < 2 or not 0 <= pid < n:
      from fser_jax.errors import UserError
      raise UserError(f"--coordinator_address {addr} needs --num_processes "
                      f">= 2 and 0 <= --process_id < it (got {n}, {pid})")
    jax.distributed.initialize(addr, num_processes=n, process_id=pid)
  else:
    jax.distributed.initialize()  # the cluster's environment
  return (f"process {jax.process_index()} of {jax.process_count()}, "
          f"{jax.local_device_count()} local / {jax.device_count()} devices")


def _cpu_only() -> bool:
  """True when JAX will run on CPUs (read before the backend starts)."""
  platforms = os.environ.get("JAX_PLATFORMS", "")
  if platforms:
    return platforms.split(",")[0].strip() == "cpu"
  try:
    import jax_cuda12_plugin  # noqa: F401
    return False
  except ImportError:
    return True


def barrier(name: str) -> None:
  """Every process waits here for the others (no-op in one process)."""
  if multi():
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def is_lead() -> bool:
  import jax
  return jax.process_index() == 0


def multi() -> bool:
  import jax
  return jax.process_count() > 1


def host(tree):
  """Numpy copies of a pytree of arrays; a replicated array spanning several
  processes is read from this process's copy."""
  import jax

  def one(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      return np.asarray(a.addressable_data(0))
    return np.asarray(a)
  return jax.tree.map(one, tree)


class Placement:
  """Where the training loop's arrays live, so that the loop itself has no
  per-process-count branch: on one process the state, data and keys are
  put on the mesh as they are; across processes every input of the step
  must be a global array on the mesh (copied from this process's host
  copy, keys wrapped), only the first process writes, and the feeder
  assembles each global batch from every process's share."""

  def __init__(self, mesh):
    import jax
    from jax.sharding import NamedSharding, PartitionSpec as P
    self.multi = multi()
    self.lead = is_lead()
    self.replicated = NamedSharding(mesh, P())
    # Each step's batch split along 'data' (XLA all-reduces the gradients).
    self.batch = NamedSharding(mesh, P("data")) if mesh.devices.size > 1 \
        else None
    # The feeder's [K, B, ...] batches and indices, across processes.
    self.feed = NamedSharding(mesh, P(None, "data")) if self.multi else None
    self.index = self.replicated if self.multi else None
    self._jax = jax

  def put(self, tree):
    """`tree` replicated on the mesh."""
    return self._jax.device_put(host(tree) if self.multi else tree,
                                self.replicated)

  def key(self, key):
    """A PRNG key every process's program can take."""
    if not self.multi:
      return key
    jax = self._jax
    return jax.random.wrap_key_data(jax.device_put(
        np.asarray(jax.random.key_data(key)), self.replicated))

  def host(self, tree):
    """Numpy copies (this process's copy of a global array)."""
    return host(tree)

  def readable(self, tree):
    """`tree` as this process can compute on it alone."""
    return host(tree) if self.multi else tree
