"""The optimizer and the train state: what a step updates and how.

`create(config, ...)` builds the model from its config, splits it into a
graphdef and parameters (nnx.split), and pairs the parameters with the
optimizer's state. The optimizer is optax's, assembled from `config.train`:

- SGD (Nesterov momentum optional) or Adam, a constant or warmup + cosine
  learning rate; warmup is `warmup_epochs` epochs plus `warmup_steps` steps;
- `clip_grad_norm`: the gradient clipped to that global norm first;
- `freeze` ('convs' | 'trunk'): frozen parameters get exact zero updates;
- `head_only_steps`: a linear probe before fine-tuning (LP-FT): for the
  first N steps every layer but the output layer gets a zero gradient.

No module here reads a run directory or trains; fser_jax/train/transfer.py,
fser_jax/train/loop.py and fser_jax/runs/trained.py build on it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from fser_jax.model import cnn as model_lib

State = dict[str, Any]  # {'step': int32[], 'params': nnx.State, 'opt_state'}


def total_steps(tcfg, steps_per_epoch: int) -> int:
  """train.num_steps when set, else num_epochs x steps_per_epoch."""
  if tcfg.num_steps:
    return int(tcfg.num_steps)
  return tcfg.num_epochs * steps_per_epoch


def warmup_steps(tcfg, steps_per_epoch: int) -> int:
  return (tcfg.warmup_epochs * steps_per_epoch
          + int(tcfg.warmup_steps))


def make_optimizer(tcfg, steps_per_epoch: int) -> optax.GradientTransformation:
  total = max(1, total_steps(tcfg, steps_per_epoch))
  lr = tcfg.learning_rate
  if tcfg.schedule == "cosine":
    warmup = min(warmup_steps(tcfg, steps_per_epoch), total - 1)
    lr = optax.warmup_cosine_decay_schedule(
        0.0 if warmup else lr, lr, max(warmup, 1),
        max(total, max(warmup, 1) + 1))  # optax needs a cosine part
  elif warmup_steps(tcfg, steps_per_epoch):
    lr = optax.linear_schedule(0.0, lr,
                               max(1, warmup_steps(tcfg, steps_per_epoch)))
  if tcfg.optimizer == "sgd":
    tx = optax.sgd(lr, momentum=tcfg.momentum or None, nesterov=tcfg.nesterov)
  else:
    tx = optax.adam(lr)
  if tcfg.weight_decay:
    tx = optax.chain(optax.add_decayed_weights(tcfg.weight_decay), tx)
  return tx


# --- which parameters learn ------------------------------------------------------
def param_name(path) -> str:
  """'convs/0/kernel' from a pytree path of an nnx params State."""
  parts = []
  for k in path:
    k = getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))
    if str(k) != ".value" and str(k) != "value":
      parts.append(str(k))
  return "/".join(parts)


def is_head(name: str, num_dense: int) -> bool:
  return name.startswith(f"dense/{num_dense - 1}/")


def freeze_labels(params, mode: str, num_dense: int, delay_trunk: bool = False):
  """A pytree of 'train' / 'freeze' / 'delayed' (trunk parameters that wait
  for the output layer, train.head_only_steps) over `params`."""
  def label(path, _):
    name = param_name(path)
    head = is_head(name, num_dense)
    if mode == "trunk" and not head:
      return "freeze"
    if mode == "convs" and name.startswith("convs/"):
      return "freeze"
    return "delayed" if delay_trunk and not head else "train"
  return jax.tree_util.tree_map_with_path(label, params)


def _zero_grads_before(n: int) -> optax.GradientTransformation:
  """Zero gradients for the first `n` updates, then pass them through, so
  the optimizer's momentum starts from the first real gradient."""
  def init(params):
    del params
    return {"count": jnp.zeros((), jnp.int32)}

  def update(updates, state, params=None):
    del params
    on = (state["count"] >= n).astype(jnp.float32)
    updates = jax.tree.map(lambda g: g * on.astype(g.dtype), updates)
    return updates, {"count": state["count"] + 1}
  return optax.GradientTransformation(init, update)


def with_freeze(tx, mode: str, num_dense: int, head_only_steps: int = 0):
  """`tx` on the trainable parameters, exact zeros on the frozen ones, and
  the trunk held for `head_only_steps` steps."""
  if mode in ("", "none") and not head_only_steps:
    return tx
  # The delayed trunk: zero gradients into the optimizer (its momentum
  # starts from the first real gradient) and zero updates out of it (weight
  # decay, which `tx` adds, would otherwise move the held trunk).
  transforms = {"train": tx, "freeze": optax.set_to_zero(),
                "delayed": optax.chain(_zero_grads_before(head_only_steps), tx,
                                       _zero_grads_before(head_only_steps))}
  return optax.multi_transform(
      transforms,
      lambda params: freeze_labels(params, mode, num_dense,
                                   delay_trunk=head_only_steps > 0))


def optimizer(tcfg, num_dense: int, steps_per_epoch: int):
  """The whole update rule of `config.train`: clip, then freeze/delay, then
  the optimizer."""
  tx = with_freeze(make_optimizer(tcfg, steps_per_epoch),
                   tcfg.freeze, num_dense,
                   int(tcfg.head_only_steps))
  if tcfg.clip_grad_norm:
    tx = optax.chain(optax.clip_by_global_norm(tcfg.clip_grad_norm), tx)
  return tx


def create(config, num_classes: int, in_channels: int, steps_per_epoch: int,
           params=None):
  """(graphdef, initial state, optimizer).

  Args:
    params: initial parameters (train.init_from); None: random from the seed.
  """
  # Initialised in one compiled program: eager initialisation compiles every
  # initialiser's primitives one by one, which is slower on a cold
  # compilation cache and gives the same values.
  model = nnx.jit(lambda: model_lib.from_config(
      config, num_classes, in_channels, config.seed))()
  graphdef, fresh = nnx.split(model, nnx.Param)
  params = fresh if params is None else params
  tx = optimizer(config.train, len(config.model.dense) + 1, steps_per_epoch)
  state = {"step": jnp.zeros((), jnp.int32), "params": params,
           "opt_state": tx.init(params)}
  return graphdef, state, tx
