"""What the encoder families share: multi-head attention over [B, T, H, dh]
and the exact (erf) GELU both use."""

from __future__ import annotations

import jax
import jax.numpy as jnp

LONG = 512  # positions from which attention runs one head at a time


def gelu(x):
  """GELU with the exact erf, as both families' reference code has it."""
  return jax.nn.gelu(x, approximate=False)


def attend(q, k, v, valid=None, bias=None, gate=None):
  """softmax(q k^T + gate * bias) v for [B, T, H, dh] (q scaled); `valid`
  [B, T] masks keys; `bias` [H, T, T] is added to the logits, each query's
  row scaled by `gate` [B, H, T] when given (WavLM's gated relative
  position bias). From LONG positions on, one (clip, head) at a time
  (lax.map): XLA:CPU then keeps each [T, T] block in cache instead of
  writing all B x H of them to memory, which is faster at Whisper's 1500
  positions (measured: docs/performance.md)."""
  b, t, h, dh = q.shape
  if t < LONG:  # XLA's own attention: faster than the einsum-softmax-einsum
    if bias is not None:  # written out (docs/performance.md)
      bias = bias[None] if gate is None else gate[..., None] * bias[None]
    return jax.nn.dot_product_attention(
        q, k, v, bias=bias, scale=1.0, implementation="xla",
        mask=None if valid is None else valid[:, None, None, :])
  heads = lambda y: jnp.swapaxes(y, 1, 2).reshape(b * h, t, dh)
  mask = (jnp.ones((b * h, t), bool) if valid is None
          else jnp.repeat(valid, h, axis=0))
  g = (jnp.ones((b * h, t), q.dtype) if gate is None
       else gate.reshape(b * h, t))

  def one(args):
    i, qi, ki, vi, mi, gi = args
    logits = qi @ ki.T
    if bias is not None:
      logits = logits + gi[:, None] * bias[i % h]
    logits = jnp.where(mi[None, :], logits, -jnp.inf)
    return jax.nn.softmax(logits, axis=-1) @ vi

  out = jax.lax.map(one, (jnp.arange(b * h), heads(q), heads(k), heads(v),
                          mask, g))
  return jnp.swapaxes(out.reshape(b, h, t, dh), 1, 2)
