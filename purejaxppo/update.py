"""The PPO update: `update_epochs` epochs, each a fresh permutation split into minibatches."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxppo.config import PPOConfig
from purejaxppo.fast_paths import fast_paths_enabled, random_permutations
from purejaxppo.loss import LossInfo, ppo_loss


class Batch(NamedTuple):
    """Training data for one update, leading axis = samples (or (num_steps, num_envs))."""

    obs: jax.Array
    actions: jax.Array
    log_probs: jax.Array
    values: jax.Array
    advantages: jax.Array
    returns: jax.Array


class Learner(NamedTuple):
    params: Any
    opt_state: Any


class UpdateInfo(NamedTuple):
    """Loss diagnostics averaged over all minibatches of all epochs of one update."""

    loss: LossInfo
    grad_norm: jax.Array  # global gradient norm before clipping


def make_optimizer(config: PPOConfig) -> optax.GradientTransformation:
    """Adam's scaling. Gradient clipping and the (traced) learning rate are applied in `sgd_step`."""
    return optax.scale_by_adam(eps=config.adam_eps)


def learning_rate_at(learning_rate, update_idx, num_updates: int, anneal: bool):
    """Linear annealing from `learning_rate` at update 0 towards 0 after `num_updates`."""
    if not anneal:
        return jnp.asarray(learning_rate, jnp.float32)
    return learning_rate * (1.0 - update_idx / num_updates)


def sgd_step(learner: Learner, minibatch: Batch, *, apply_fn, optimizer, hp, learning_rate,
             config: PPOConfig):
    """One gradient step on one minibatch: clip by global norm, Adam, scale by -learning_rate."""
    grad_fn = jax.value_and_grad(ppo_loss, has_aux=True)
    (_, info), grads = grad_fn(learner.params, apply_fn, minibatch, hp, config.clip_value,
                               config.normalize_advantages)
    grad_norm = optax.tree.norm(grads)
    grads, _ = optax.clip_by_global_norm(hp.max_grad_norm).update(grads, optax.EmptyState())
    updates, opt_state = optimizer.update(grads, learner.opt_state, learner.params)
    updates = jax.tree.map(lambda u: -learning_rate * u, updates)
    params = optax.apply_updates(learner.params, updates)
    return Learner(params, opt_state), UpdateInfo(info, grad_norm)


def minibatch_indices(key, batch_size: int, update_epochs: int, num_minibatches: int,
                      fast: bool = True):
    """`(update_epochs * num_minibatches, minibatch_size)` sample indices: each epoch is a fresh
    permutation of `range(batch_size)` cut into `num_minibatches` equal parts (`fast`: the packed
    CPU shuffle of `fast_paths.random_permutations`)."""
    perms = random_permutations(key, batch_size, update_epochs, fast)
    return perms.reshape(update_epochs * num_minibatches, batch_size // num_minibatches)


def update_policy(learner: Learner, batch: Batch, key, *, apply_fn, optimizer, hp, learning_rate,
                  config: PPOConfig):
    """K epochs of minibatch SGD over `batch`. Returns `(learner, UpdateInfo)` (means)."""
    batch_size = config.batch_size
    flat = jax.tree.map(lambda x: x.reshape((batch_size, *x.shape[2:])), batch)
    indices = minibatch_indices(key, batch_size, config.update_epochs, config.num_minibatches,
                                fast_paths_enabled(config.fast_paths))

    def step(learner, idx):
        minibatch = jax.tree.map(lambda x: jnp.take(x, idx, axis=0), flat)
        return sgd_step(learner, minibatch, apply_fn=apply_fn, optimizer=optimizer, hp=hp,
                        learning_rate=learning_rate, config=config)

    learner, infos = jax.lax.scan(step, learner, indices, unroll=config.update_unroll)
    return learner, jax.tree.map(jnp.mean, infos)
