"""Augmentation throughput: the jitted batch augmentation vs Keras'
ImageDataGenerator (the paper's Algorithm 1), same operations and ranges.

  python benchmarks/augmentation.py --json OUT.json
"""

from __future__ import annotations

import argparse

import common


def main(argv=None) -> dict:
  p = argparse.ArgumentParser()
  p.add_argument("--batch_size", type=int, default=256)
  p.add_argument("--json", default=None)
  a = p.parse_args(argv)
  import jax
  import jax.numpy as jnp
  import numpy as np
  from fser_jax.frontend import augment
  from fser_jax import config as config_lib
  cfg = config_lib.base().augment
  rng = np.random.default_rng(0)
  x = rng.random((a.batch_size, 64, 64, 3)).astype(np.float32)
  fn = jax.jit(augment.from_config(cfg))
  xd = jnp.asarray(x)
  key = jax.random.key(0)
  ours = common.rate_stats(common.windows(
      lambda: fn(key, xd).block_until_ready()), a.batch_size)
  result = {"device": common.device_name(), "jax_images_per_sec": ours}
  try:
    import os
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
      from keras.preprocessing.image import ImageDataGenerator
    except ImportError:  # Keras 3 keeps Keras 2's generator under legacy/
      from keras.src.legacy.preprocessing.image import ImageDataGenerator
    gen = ImageDataGenerator(width_shift_range=cfg.width_shift,
                             height_shift_range=cfg.height_shift,
                             zoom_range=cfg.zoom,
                             horizontal_flip=cfg.horizontal_flip,
                             fill_mode="nearest")
    small = x[:32]
    flow = gen.flow(small, batch_size=32, shuffle=False)
    ref = common.rate_stats(common.windows(lambda: next(flow), warmup=1), 32)
    result["keras_images_per_sec"] = ref
    result["speedup_vs_keras"] = ours["median"] / ref["median"]
  except ImportError as e:  # Keras without the legacy generator
    result["keras_images_per_sec"] = None
    result["keras_error"] = str(e)
  common.write_json(a.json, result)
  return result


if __name__ == "__main__":
  main()
