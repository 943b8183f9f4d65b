"""The training step, pure, and the dispatch that runs K of them.

`make_train_step(graphdef, tx, aug_fn)` gives the step as Flax's examples and
big_vision write it: `train_step(state, batch, key) -> (state, metrics)`, a
pure function of its arguments (augment the batch, forward with dropout,
cross-entropy, optax update). Around it, each small and separate:

- `gather(images, labels, idx)`: a batch taken from the training set on the
  device (images, or waveforms with their lengths, any pytree);
- `run_steps(step_fn, state, xs, unroll)`: K steps as one `lax.scan`, fully
  unrolled on CPU (`default_unroll`);
- `make_train_chunk`: one jitted, state-donating dispatch of K steps; the
  key of each step is the run's key folded with the global step, so a
  resumed run replays exactly what an uninterrupted one would.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from fser_jax.model import forward


def make_train_step(graphdef, tx, aug_fn: Callable) -> Callable:
  """`train_step(state, batch, key) -> (state, metrics)`.

  state: {'step', 'params', 'opt_state'}; batch: {'x': the examples (a
  pytree `aug_fn` turns into images), 'y': integer labels}; key: this
  step's key (split for augmentation and dropout). Pure: no state outside
  its arguments, so it can be jitted, scanned or tested alone."""

  def train_step(state, batch, key):
    k_aug, k_drop = jax.random.split(key)
    x, y = aug_fn(k_aug, batch["x"]), batch["y"]

    def loss_fn(params):
      logits = forward.logits_fn(graphdef, params, x, train=True, key=k_drop)
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"])
    grad_norm = optax.global_norm(grads)  # before clipping
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    new = {"step": state["step"] + 1,
           "params": optax.apply_updates(state["params"], updates),
           "opt_state": opt_state}
    acc = jnp.mean(jnp.argmax(logits, -1) == y)
    return new, {"loss": loss, "accuracy": acc, "grad_norm": grad_norm}

  return train_step


def gather(images, labels, idx) -> dict:
  """The batch `idx` [B] of a training set held on the device."""
  return {"x": jax.tree.map(lambda a: a[idx], images), "y": labels[idx]}


def default_unroll() -> bool:
  """Unroll the step scan on CPU: XLA:CPU runs convolutions inside a while
  loop far slower than the same operations unrolled."""
  return jax.default_backend() == "cpu"


def run_steps(step_fn: Callable, state, xs, unroll: bool):
  """`lax.scan(step_fn, state, xs)` over xs' leading axis (K steps), fully
  unrolled when `unroll`. One step is called directly: a scan of length one
  stays a while loop even unrolled, which XLA:CPU runs far slower."""
  k = jax.tree.leaves(xs)[0].shape[0]
  if unroll and k == 1:
    state, m = step_fn(state, jax.tree.map(lambda a: a[0], xs))
    return state, jax.tree.map(lambda v: v[None], m)
  return jax.lax.scan(step_fn, state, xs, unroll=k if unroll else 1)


def make_train_chunk(graphdef, tx, aug_fn, batch_sharding=None, *,
                     unroll: bool | None = None):
  """`(state, images, labels, idx[K, B], key[, extras]) -> (state, metrics[K])`,
  jitted, the state donated.

  `images`/`labels`: the training set on the device, `idx` the K batches'
  indices (`gather`). Streamed input: `images` and `labels` are None and
  `idx` is the K batches themselves, {'x': [K, B, ...], 'y': [K, B]}.
  `aug_fn(key, x)` makes the model's input; with `extras` (shared noise and
  room banks of waveform augmentation) it is called `aug_fn(key, x, extras)`.
  """
  unroll = default_unroll() if unroll is None else unroll

  @functools.partial(jax.jit, donate_argnums=(0,))
  def train_chunk(state, images, labels, idx, key, extras=None):
    aug = aug_fn if extras is None else (
        lambda k, x: aug_fn(k, x, extras))
    train_step = make_train_step(graphdef, tx, aug)

    def body(state, xs):
      batch = xs if images is None else gather(images, labels, xs)
      if batch_sharding is not None:
        batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
      return train_step(state, batch, jax.random.fold_in(key, state["step"]))

    return run_steps(body, state, idx, unroll)

  return train_chunk
