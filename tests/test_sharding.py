"""Data parallelism over 8 simulated CPU devices gives the same losses and
parameters as one device."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from fser_jax.frontend import augment
    from fser_jax import config as config_lib
    from fser_jax.train import loop as train
    from fser_jax.train import step as step_lib
    from fser_jax.train import optimizer as state_lib
    assert len(jax.devices()) == 8, jax.devices()
    c = config_lib.base()
    c.model.filters = (8, 8, 16, 16)
    c.model.dense = (32, 16)
    c.train.momentum = 0.9
    c.train.learning_rate = 0.05
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((64, 64, 64, 3), np.float32))
    y = jnp.asarray(rng.integers(0, 8, 64).astype(np.int32))
    idx = jnp.asarray(rng.integers(0, 64, (4, 32)))
    key = jax.random.key(0)
    aug = augment.from_config(c.augment)
    out = {}
    for n in (1, 8):
      c.mesh.num_devices = n
      from fser_jax.train import mesh as mesh_lib
      mesh = mesh_lib.make_mesh(c.mesh)
      graphdef, state, tx = state_lib.create(c, 8, 3, steps_per_epoch=4)
      rep = NamedSharding(mesh, P())
      state = jax.device_put(state, rep)
      bs = NamedSharding(mesh, P("data")) if n > 1 else None
      chunk = step_lib.make_train_chunk(graphdef, tx, aug, bs)
      state, m = chunk(state, jax.device_put(x, rep), jax.device_put(y, rep),
                       idx, key)
      out[n] = (np.asarray(m["loss"]), [np.asarray(p) for p in
                                       jax.tree.leaves(state["params"])])
      if n == 8:
        leaf = jax.tree.leaves(state["params"])[0]
        assert len(leaf.sharding.device_set) == 8
    np.testing.assert_allclose(out[1][0], out[8][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(out[1][1], out[8][1]):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    print("LOSSES", out[1][0], out[8][0])
""")


def test_eight_devices_match_one():
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True,
                     text=True, timeout=600, env=env)
  assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
  assert "LOSSES" in r.stdout
