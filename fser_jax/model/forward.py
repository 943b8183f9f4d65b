"""The forward functions of a model split by nnx: logits for training and
evaluation, and the inference outputs (logits, embedding, pooled blocks),
in fixed-size padded batches. The train step (fser_jax/train/loop.py) and every
consumer of a trained run (fser_jax/runs/trained.py, fser_jax/runs/cnn.py) share
them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def logits_fn(graphdef, params, images, *, train=False, key=None):
  model = nnx.merge(graphdef, params)
  rngs = nnx.Rngs(dropout=key) if train else None
  return model(images, train=train, rngs=rngs)


def make_eval_fn(graphdef):
  @jax.jit
  def eval_fn(params, images):
    return logits_fn(graphdef, params, images)
  return eval_fn


def make_infer_fn(graphdef):
  """Jitted `(params, images) -> (logits, last hidden layer, pooled conv
  blocks)`: the trunk runs once for all three (predictions,
  fser_jax.evaluation.familiarity and linear probes)."""
  @jax.jit
  def infer_fn(params, images):
    model = nnx.merge(graphdef, params)
    emb, blocks = model.embed_all(images)
    return (model.dense[-1](emb).astype(jnp.float32),
            emb.astype(jnp.float32), blocks.astype(jnp.float32))
  return infer_fn


def predict_logits(eval_fn, params, images: np.ndarray,
                   batch_size: int = 256):
  """Logits (or any per-image output of `eval_fn`, a pytree of arrays) of
  every image, in fixed-size padded batches. Fewer images than a batch are
  padded to the next power of two, so calls with varying counts (a folder's
  last files, one clip at a time) reuse a handful of compilations instead of
  compiling every count anew."""
  n = images.shape[0]
  if n == 0:
    return np.zeros((0,), np.float32)
  out = []
  bs = min(batch_size, 1 << (n - 1).bit_length())
  for s in range(0, n, bs):
    chunk = images[s:s + bs]
    pad = bs - chunk.shape[0]
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:],
                                              chunk.dtype)])
    res = eval_fn(params, jnp.asarray(chunk))
    out.append(jax.tree.map(lambda a: np.asarray(a)[:bs - pad], res))
  return jax.tree.map(lambda *a: np.concatenate(a), *out)
