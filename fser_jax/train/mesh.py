"""The device mesh: one 'data' axis over the devices a run uses."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh

from fser_jax.config import ConfigError


def make_mesh(mesh_cfg) -> Mesh:
  """A 1-D 'data' mesh over `mesh.num_devices` devices (0: all, every
  process's in a multi-process run: fser_jax/train/distributed.py starts it)."""
  devices = jax.devices()
  n = mesh_cfg.num_devices or len(devices)
  if n > len(devices):
    raise ConfigError(f"config mesh.num_devices={n} but only {len(devices)} "
                     "devices are visible")
  return Mesh(np.array(devices[:n]), ("data",))
