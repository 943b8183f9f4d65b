"""Stage 4: the FSER CNN (paper, section 4.1 and Figure 5), in Flax NNX.

"Four blocks of convolutional layers with ReLU activation, maximum 2D pooling
layers and Dropouts interposed between them. The output of the four CLs is
flattened and fed into a series of three fully-connected layers, which is
finally fed into a softmax". The paper gives no filter counts, kernel sizes,
dropout rates or widths; ours (config `model`, defaults in configs/default.py):
filters 32/64/128/256, 3x3 kernels with SAME padding, 2x2 max-pooling, dropout
0.25 after each block, dense 512 -> 256 -> classes with dropout 0.5 between.
The model returns logits; the softmax lives in the loss and in predictions.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2/2 max-pooling as reshape + max (odd trailing rows/cols dropped).

  Same values as `nnx.max_pool(x, (2, 2), (2, 2))`, but its gradient is a
  cheap select where XLA:CPU's reduce-window gradient is slow (issue 5).
  """
  b, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class FSER(nnx.Module):
  """The FSER CNN: images [B, H, W, C] -> logits [B, num_classes]."""

  def __init__(self, num_classes: int, *, in_channels: int = 3,
               image_size: int = 64, filters: Sequence[int] = (32, 64, 128, 256),
               kernel_size: int = 3, conv_dropout: float = 0.25,
               dense: Sequence[int] = (512, 256), dense_dropout: float = 0.5,
               dtype=jnp.float32, rngs: nnx.Rngs):
    self.dtype = dtype
    convs, size, cin = [], image_size, in_channels
    for f in filters:
      convs.append(nnx.Conv(cin, f, (kernel_size, kernel_size), padding="SAME",
                            dtype=dtype, param_dtype=jnp.float32, rngs=rngs))
      cin, size = f, size // 2
    self.convs = nnx.List(convs)
    self.conv_dropout = nnx.Dropout(conv_dropout)
    widths = [size * size * cin, *dense, num_classes]
    self.dense = nnx.List([
        nnx.Linear(a, b, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
        for a, b in zip(widths[:-1], widths[1:])])
    self.dense_dropout = nnx.Dropout(dense_dropout)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    x = x.astype(self.dtype)
    for conv in self.convs:
      x = max_pool_2x2(nnx.relu(conv(x)))
      x = self.conv_dropout(x, deterministic=not train, rngs=rngs)
    x = x.reshape(x.shape[0], -1)
    for layer in self.dense[:-1]:
      x = nnx.relu(layer(x))
      x = self.dense_dropout(x, deterministic=not train, rngs=rngs)
    return self.dense[-1](x).astype(jnp.float32)


def compute_dtype(precision: str):
  """'float32', or 'bfloat16' (bf16 compute, f32 parameters and optimizer)."""
  try:
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[precision]
  except KeyError:
    raise ValueError(f"config train.precision must be 'float32' or 'bfloat16', "
                     f"got {precision!r}") from None


def from_config(cfg, num_classes: int, in_channels: int, seed: int) -> FSER:
  return FSER(num_classes, in_channels=in_channels,
              image_size=cfg.features.image_size,
              filters=tuple(cfg.model.filters), kernel_size=cfg.model.kernel_size,
              conv_dropout=cfg.model.conv_dropout, dense=tuple(cfg.model.dense),
              dense_dropout=cfg.model.dense_dropout,
              dtype=compute_dtype(cfg.train.precision), rngs=nnx.Rngs(seed))
