"""Clips of any length through an encoder with a window: consecutive
windows, and each clip's per-layer mean and std over all its windows'
positions together."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def mean_std(states, counts):
  """[L, B, 2 d] from states [L, B, T, d] (jnp, inside the jitted forward):
  each clip's mean and (population) std over its first `counts` [B]
  positions, so only the pooled numbers leave the device."""
  m = (jnp.arange(states.shape[2])[None, :] < counts[:, None])
  m = m.astype(states.dtype)[None, :, :, None]
  n = jnp.maximum(counts, 1).astype(states.dtype)[None, :, None]
  mean = (states * m).sum(2) / n
  var = (((states - mean[:, :, None]) * m) ** 2).sum(2) / n
  return jnp.concatenate([mean, jnp.sqrt(var)], axis=-1)


def windows(wavs, window: int, min_last: int):
  """(owners, pieces): each clip cut into consecutive `window`-sample
  pieces; a last piece under `min_last` samples is left out (a clip
  shorter than that is kept whole)."""
  owners, pieces = [], []
  for i, w in enumerate(wavs):
    for s in range(0, max(1, len(w)), window):
      if s and len(w) - s < min_last:
        break
      owners.append(i)
      pieces.append(w[s:s + window])
  return np.asarray(owners, int), pieces


def combine(per: np.ndarray, counts, owners, n: int) -> np.ndarray:
  """[n, layers, 2 d] from the pieces' [P, layers, 2 d] means and stds
  over `counts` positions each: the mean and std of the owner's positions
  pooled together."""
  d = per.shape[-1] // 2
  counts = np.asarray(counts, np.float64)
  out = np.zeros((n,) + per.shape[1:], np.float32)
  for i in range(n):
    k = owners == i
    wts = counts[k] / counts[k].sum()
    mean = np.einsum("w,wld->ld", wts, per[k, :, :d])
    second = np.einsum("w,wld->ld", wts,
                       per[k, :, d:] ** 2 + per[k, :, :d] ** 2)
    out[i] = np.concatenate(
        [mean, np.sqrt(np.maximum(second - mean ** 2, 0))], axis=1)
  return out


POOLINGS = ("mean_std", "mean")


def parse_layers(spec: str, n_states: int) -> list[int]:
  """'' (every state: the transformer's input, then each layer) or
  '6,7,8' / '6-8' / '-1' (the last)."""
  from fser_jax.errors import UserError
  if not str(spec).strip():
    return list(range(n_states))
  out = []
  for part in str(spec).split(","):
    part = part.strip()
    try:
      if "-" in part[1:]:
        a, b = part.split("-", 1) if not part.startswith("-") else (part, part)
        out += list(range(int(a), int(b) + 1))
      else:
        out.append(int(part) % n_states if int(part) < 0 else int(part))
    except ValueError:
      raise UserError(f"config encoder.layers {spec!r}: write layer numbers "
                      "like '6,7,8' or '4-9' (0 is the transformer's input)"
                      ) from None
  bad = [i for i in out if not 0 <= i < n_states]
  if bad:
    raise UserError(f"config encoder.layers {spec!r}: the encoder has states "
                    f"0-{n_states - 1}; {bad[0]} is not one")
  return sorted(set(out))


def candidates(states: np.ndarray, layers: str = "", pooling: str = "mean_std",
               mix: bool = True) -> tuple[np.ndarray, list]:
  """([N, K, D] feature blocks, K names) a head chooses among by
  cross-validation: each state of `layers` pooled as `pooling` says
  (mean and std over positions, or the mean), and with `mix` and two or
  more of them their average ('mix': every layer weighted alike)."""
  from fser_jax.errors import UserError
  if pooling not in POOLINGS:
    raise UserError(f"config encoder.pooling {pooling!r}: one of "
                    f"{', '.join(POOLINGS)}")
  idx = parse_layers(layers, states.shape[1])
  x = states[:, idx]
  if pooling == "mean":
    x = x[..., : x.shape[-1] // 2]
  names: list = list(idx)
  if mix and len(idx) > 1:
    x = np.concatenate([x, x.mean(1, keepdims=True)], axis=1)
    names.append("mix")
  return x, names
