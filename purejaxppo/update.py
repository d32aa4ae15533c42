"""The PPO update: `update_epochs` epochs, each a fresh permutation split into minibatches."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxppo.config import PPOConfig
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


_PACKED_SHUFFLE_MAX_INDEX_BITS = 16  # up to 65,536 samples per update; beyond: jax.random.permutation


def random_permutations(key, n: int, count: int):
    """`count` independent, uniformly random permutations of `range(n)`, shape `(count, n)`.

    The algorithm of `jax.random.permutation` (sort by random keys, several rounds when the keys
    are short), made cheap on CPU. There, a two-array sort (keys with an index payload) calls a
    comparator per comparison and costs ~200 us for 4 x 512 elements, while a one-array uint32 sort
    takes a fast path (~30 us). So the index is packed into the low `b = bit_length(n - 1)` bits of
    the 32-bit random key and recovered after a plain sort: that is a stable sort by `32 - b`
    random bits. Ties (equal random bits) keep the order from the round before, so the result is
    uniform up to ties in every round; rounds are added, as `jax.random.permutation` does, until
    the random bits reach 3 log2(n) (two rounds for n = 512: ~1e-9 chance of any bias).
    """
    bits = max(1, (n - 1).bit_length())
    if bits > _PACKED_SHUFFLE_MAX_INDEX_BITS:
        keys = jax.random.split(key, count)
        return jax.vmap(lambda k: jax.random.permutation(k, n))(keys)
    rounds = max(1, -(-3 * bits // (32 - bits)))  # ceil(3 * bits / (32 - bits))
    low = jnp.uint32((1 << bits) - 1)
    position = jnp.arange(n, dtype=jnp.uint32)
    random = jax.random.bits(key, (rounds, count, n), jnp.uint32) & ~low
    perm = None
    for r in range(rounds):
        order = jnp.sort(random[r] | position, axis=-1) & low  # stable shuffle of positions
        perm = order if perm is None else jnp.take_along_axis(perm, order, axis=-1)
    return perm.astype(jnp.int32)


def minibatch_indices(key, batch_size: int, update_epochs: int, num_minibatches: int):
    """`(update_epochs * num_minibatches, minibatch_size)` sample indices: each epoch is a fresh
    permutation of `range(batch_size)` cut into `num_minibatches` equal parts."""
    perms = random_permutations(key, batch_size, update_epochs)
    return perms.reshape(update_epochs * num_minibatches, batch_size // num_minibatches)


def update_policy(learner: Learner, batch: Batch, key, *, apply_fn, optimizer, hp, learning_rate,
                  config: PPOConfig):
    """K epochs of minibatch SGD over `batch`. Returns `(learner, UpdateInfo)` (means)."""
    batch_size = config.batch_size
    flat = jax.tree.map(lambda x: x.reshape((batch_size, *x.shape[2:])), batch)
    indices = minibatch_indices(key, batch_size, config.update_epochs, config.num_minibatches)

    def step(learner, idx):
        minibatch = jax.tree.map(lambda x: jnp.take(x, idx, axis=0), flat)
        return sgd_step(learner, minibatch, apply_fn=apply_fn, optimizer=optimizer, hp=hp,
                        learning_rate=learning_rate, config=config)

    learner, infos = jax.lax.scan(step, learner, indices, unroll=config.update_unroll)
    return learner, jax.tree.map(jnp.mean, infos)
