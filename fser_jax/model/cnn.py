"""Stage 4: the FSER CNN (paper, section 4.1 and Figure 5), in Flax NNX.

"Four blocks of convolutional layers with ReLU activation, maximum 2D pooling
layers and Dropouts interposed between them. The output of the four CLs is
flattened and fed into a series of three fully-connected layers, which is
finally fed into a softmax". The paper gives no filter counts, kernel sizes,
dropout rates or widths; ours (config `model`, defaults in fser_jax/config.py):
filters 32/64/128/256, 3x3 kernels with SAME padding, 2x2 max-pooling, dropout
0.25 after each block, dense 512 -> 256 -> classes with dropout 0.5 between.
The model returns logits; the softmax lives in the loss and in predictions.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from fser_jax.model.kernels import (CONV_IMPLS, DROPOUT_STREAMS, ONEDNN_IMPLS,
                              conv_pool, dropout, dropout_key, max_pool_2x2,
                              resolve_conv_impl)


class FSER(nnx.Module):
  """The FSER CNN: images [B, H, W, C] -> logits [B, num_classes]."""

  def __init__(self, num_classes: int, *, in_channels: int = 3,
               image_size: int = 64, filters: Sequence[int] = (32, 64, 128, 256),
               kernel_size: int = 3, conv_dropout: float = 0.25,
               dense: Sequence[int] = (512, 256), dense_dropout: float = 0.5,
               conv_impl: str = "auto", time_pool: str = "",
               dropout_bits: str = "bernoulli", dropout_stream: str = "step",
               dtype=jnp.float32, rngs: nnx.Rngs):
    if conv_impl not in CONV_IMPLS:
      raise ValueError(f"model.conv_impl must be one of {CONV_IMPLS}, got "
                       f"{conv_impl!r}")
    self.dtype = dtype
    self.conv_impl = resolve_conv_impl(conv_impl, dtype)
    if self.conv_impl in ONEDNN_IMPLS:
      from fser_jax.cpu import onednn
      ok, why = onednn.available()
      if not ok:
        raise ValueError(f"model.conv_impl={self.conv_impl!r}: {why}; or "
                         "use 'auto'")
      # Asked for by name, oneDNN's Winograd must run: oneDNN without
      # float32 Winograd kernels (3.x, or a CPU without AVX-512) would run
      # its direct convolution instead. 'auto' only picks it where it runs.
      if (self.conv_impl == "onednn_winograd" and conv_impl != "auto"
          and jnp.dtype(dtype) == jnp.float32 and not onednn.winograd_ok()):
        raise ValueError(
            "model.conv_impl='onednn_winograd': this oneDNN has no float32 "
            "Winograd kernels for this CPU (oneDNN 3.x, or no AVX-512), so "
            "it would run its direct convolution; use 'onednn' for that, "
            "or 'auto'")
      # Every oneDNN impl runs oneDNN's direct convolutions in bfloat16.
      if jnp.dtype(dtype) == jnp.bfloat16 and not onednn.bfloat16_ok():
        raise onednn.Unsupported(onednn.bfloat16_message(
            f"model.conv_impl={conv_impl!r} with train.precision='bfloat16'"))
    convs, size, cin = [], image_size, in_channels
    for f in filters:
      convs.append(nnx.Conv(cin, f, (kernel_size, kernel_size), padding="SAME",
                            dtype=dtype, param_dtype=jnp.float32, rngs=rngs))
      cin, size = f, size // 2
    self.convs = nnx.List(convs)
    self.conv_dropout = conv_dropout
    self.packed_dropout = dropout_bits == "packed"
    if dropout_stream not in DROPOUT_STREAMS:
      raise ValueError(f"model.dropout_stream must be one of "
                       f"{DROPOUT_STREAMS}, got {dropout_stream!r}")
    self.dropout_stream = dropout_stream
    # time_pool: the last block's columns (time) are pooled before the dense
    # layers, so any clip length gives the same width (logmel_time): 'mean',
    # or 'mean_std' (statistics pooling, as x-vectors: the mean and the
    # spread over time, e.g. how much pitch and energy move); '' flattens.
    if time_pool not in ("", "mean", "mean_std"):
      raise ValueError(f"model.time_pool must be 'mean' or 'mean_std', got "
                       f"{time_pool!r}")
    self.time_pool = time_pool
    per_row = 2 if time_pool == "mean_std" else 1
    widths = [(size * per_row if time_pool else size * size) * cin, *dense,
              num_classes]
    # The dense layers compute in float32 under bfloat16 too: they are ~4% of
    # the step's FLOPs, and XLA:CPU gave the bfloat16 kernel's gradient
    # transposed, rounded to bfloat16 and converted back in the update.
    self.dense = nnx.List([
        nnx.Linear(a, b, dtype=jnp.float32, param_dtype=jnp.float32,
                   rngs=rngs)
        for a, b in zip(widths[:-1], widths[1:])])
    self.dense_dropout = dense_dropout

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return self.dense[-1](self.embed(x, train=train, rngs=rngs)).astype(
        jnp.float32)

  def _conv_pool(self, i: int, conv: nnx.Conv, x: jax.Array) -> jax.Array:
    """Block i's convolution and 2x2 max-pooling, by `conv_impl`."""
    fn, _ = conv_pool(self.conv_impl, i, x.shape[-1], x.dtype,
                      conv.kernel.shape[:2])
    if fn is None:
      return max_pool_2x2(conv(x))
    return fn(x, conv.kernel[...], conv.bias[...])

  def embed(self, x: jax.Array, *, train: bool = False,
            rngs: nnx.Rngs | None = None) -> jax.Array:
    """The last hidden layer's activations [B, dense[-1]] (before softmax)."""
    return self.embed_all(x, train=train, rngs=rngs)[0]

  def embed_all(self, x: jax.Array, *, train: bool = False,
                rngs: nnx.Rngs | None = None) -> tuple[jax.Array, jax.Array]:
    """(the last hidden layer [B, dense[-1]], every block after the first
    pooled over both image axes, mean and std [B, 2 * sum(filters[1:])]).
    The pooled blocks are less specific to the source's classes than the
    last layer: what a linear probe on new data reads beside it."""
    x = x.astype(self.dtype)
    pooled = []
    for i, conv in enumerate(self.convs):
      # relu(pool(y)) == pool(relu(y)) (both monotone), on 4x fewer values.
      x = nnx.relu(self._conv_pool(i, conv, x))
      if i:
        pooled += [x.mean(axis=(1, 2)), x.std(axis=(1, 2))]
      if train:
        x = dropout(x, self.conv_dropout,
                    dropout_key(rngs.dropout(), self.dropout_stream),
                    self.packed_dropout)
    if self.time_pool == "mean_std":  # [B, rows, cols, C] -> [B, rows, 2C]
      x = jnp.concatenate([x.mean(axis=2), x.std(axis=2)], axis=-1)
    elif self.time_pool:
      x = x.mean(axis=2)  # [B, rows, cols, C] -> [B, rows, C]
    x = x.reshape(x.shape[0], -1)
    for layer in self.dense[:-1]:
      x = nnx.relu(layer(x))
      if train:
        x = dropout(x, self.dense_dropout,
                    dropout_key(rngs.dropout(), self.dropout_stream),
                    self.packed_dropout)
    blocks = (jnp.concatenate(pooled, -1) if pooled
              else jnp.zeros((x.shape[0], 0), x.dtype))
    return x, blocks


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
              conv_impl=cfg.model.conv_impl,
              dropout_bits=cfg.model.dropout_bits,
              dropout_stream=cfg.model.dropout_stream,
              time_pool=(cfg.model.time_pool
                         if cfg.features.kind == "logmel_time" else ""),
              dtype=compute_dtype(cfg.train.precision), rngs=nnx.Rngs(seed))
