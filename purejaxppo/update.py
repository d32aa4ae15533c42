"""The PPO update: `update_epochs` epochs, each a fresh shuffle cut into minibatches.

    for epoch in range(update_epochs):            # outer scan; skipped once stopped (target_kl)
        for minibatch in shuffle(samples):        # inner scan: one gradient step each
            learner = sgd_step(learner, minibatch)
        stopped |= 0 < target_kl < mean approx-KL of this epoch
    β = adapt_kl_coef(β, KL(π_old || π_new), kl_target)   # penalty objectives only

The `Sampler` is chosen once per config (`make_sampler`): single transitions, or whole
`num_steps` sequences of one environment for a recurrent policy (re-run from the hidden state
stored at the rollout's start) and for an estimator that re-estimates inside the loss.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from purejaxppo.config import ConfigError, PPOConfig
from purejaxppo.estimators import ESTIMATORS, EstimatorInputs
from purejaxppo.fast_paths import fast_paths_enabled, random_permutations
from purejaxppo.loss import OBJECTIVES, LossInfo, ppo_loss

KL_COEF_BOUNDS = (1e-4, 1e4)  # the adaptive β is kept inside this range


class Batch(NamedTuple):
    """Training data for one update. Per-sample fields have leading axes `(num_steps, num_envs)`
    as collected, or one flat sample axis inside the update (time-major for sequences)."""

    obs: jax.Array  # as the network sees them (normalised when normalize_obs)
    actions: jax.Array  # as sampled
    log_probs: jax.Array
    values: jax.Array
    advantages: jax.Array
    returns: jax.Array
    old_dist: Any  # the rollout policy's distribution, per sample (`distributions.per_sample`)
    resets: Optional[jax.Array] = None  # recurrent: True where an episode starts at this step
    carry: Optional[jax.Array] = None  # recurrent: hidden state at the rollout's start, per env
    # Estimators that `uses_policy`: their inputs, kept `(num_steps, envs)` in every minibatch.
    sequences: Optional[EstimatorInputs] = None
    # Objectives that `uses_target` (APPO): log π_target(a|s) of the stored actions.
    target_log_probs: Optional[jax.Array] = None


class Learner(NamedTuple):
    """What the update changes: the parameters, Adam's state and the KL penalty's β.

    `param_sets`: further named parameter sets a variant keeps beside the trained ones (APPO's
    `{"lagged": ..., "target": ...}`); `buffer`: APPO's circular buffer of recent batches
    (`appo.Buffer`). Both None for PPO, which adds no leaf to the state (so checkpoints keep
    their layout). `sgd_step` carries them through unchanged."""

    params: Any
    opt_state: Any
    kl_coef: jax.Array  # β (float32 scalar); constant unless the objective `adapts_kl_coef`
    param_sets: Any = None
    buffer: Any = None


class UpdateInfo(NamedTuple):
    """Diagnostics of one update, averaged over the minibatch steps actually taken."""

    loss: LossInfo
    grad_norm: jax.Array  # global gradient norm before clipping
    kl_coef: jax.Array  # β used by this update
    epochs: jax.Array  # epochs taken (< update_epochs when target_kl stopped the update)
    minibatch_steps: jax.Array  # gradient steps taken


def make_optimizer(config: PPOConfig) -> optax.GradientTransformation:
    """Adam's scaling. Gradient clipping and the (traced) learning rate are applied in `sgd_step`."""
    return optax.scale_by_adam(eps=config.adam_eps)


def learning_rate_at(learning_rate, update_idx, num_updates: int, anneal: bool):
    """Linear annealing from `learning_rate` at update 0 towards 0 after `num_updates`."""
    if not anneal:
        return jnp.asarray(learning_rate, jnp.float32)
    return learning_rate * (1.0 - update_idx / num_updates)


def adapt_kl_coef(kl_coef, kl, kl_target, rule: str):
    """β for the next update from the KL the last one reached (Schulman et al. 2017, §4).

    "paper": β·2 if kl > 1.5·kl_target, β/2 if kl < kl_target/1.5. "rllib": β·1.5 if
    kl > 2·kl_target, β·0.5 if kl < 0.5·kl_target. "fixed": β. Kept within `KL_COEF_BOUNDS`.
    """
    if rule == "fixed":
        return kl_coef
    high, low, up, down = (1.5, 1 / 1.5, 2.0, 0.5) if rule == "paper" else (2.0, 0.5, 1.5, 0.5)
    factor = jnp.where(kl > high * kl_target, up, jnp.where(kl < low * kl_target, down, 1.0))
    return jnp.clip(kl_coef * factor, *KL_COEF_BOUNDS).astype(jnp.float32)


def sgd_step(learner: Learner, minibatch: Batch, *, policy_fn, optimizer, hp, learning_rate,
             config: PPOConfig):
    """One gradient step on one minibatch: clip by global norm, Adam, scale by -learning_rate."""
    grad_fn = jax.value_and_grad(ppo_loss, has_aux=True)
    (_, info), grads = grad_fn(learner.params, policy_fn, minibatch, hp, learner.kl_coef,
                               objective=config.policy_objective, clip_value=config.clip_value,
                               normalize_advantages=config.normalize_advantages,
                               estimator=config.advantage_estimator)
    grad_norm = optax.tree.norm(grads)
    grads, _ = optax.clip_by_global_norm(hp.max_grad_norm).update(grads, optax.EmptyState())
    updates, opt_state = optimizer.update(grads, learner.opt_state, learner.params)
    updates = jax.tree.map(lambda u: -learning_rate * u, updates)
    params = optax.apply_updates(learner.params, updates)
    return learner._replace(params=params, opt_state=opt_state), (info, grad_norm)


def minibatch_indices(key, num_samples: int, update_epochs: int, num_minibatches: int,
                      fast: bool = True):
    """`(update_epochs, num_minibatches, num_samples // num_minibatches)` sample indices: each
    epoch is a fresh permutation of `range(num_samples)` cut into `num_minibatches` equal parts
    (`fast`: the packed CPU shuffle of `fast_paths.random_permutations`)."""
    perms = random_permutations(key, num_samples, update_epochs, fast)
    return perms.reshape(update_epochs, num_minibatches, num_samples // num_minibatches)


def take_transitions(flat: Batch, idx) -> Batch:
    """The samples `idx` of a batch whose per-sample leaves have one leading axis."""
    return jax.tree.map(lambda x: jnp.take(x, idx, axis=0), flat)


def take_sequences(batch: Batch, envs) -> Batch:
    """The whole sequences of environments `envs` from a `(num_steps, num_envs, ...)` batch,
    flattened time-major to `num_steps * len(envs)` samples; `carry` keeps one row per env and
    `sequences` its `(num_steps, len(envs))` shape."""
    carry = jax.tree.map(lambda x: jnp.take(x, envs, axis=0), batch.carry)
    sequences = jax.tree.map(lambda x: jnp.take(x, envs, axis=1), batch.sequences)
    per_sample = jax.tree.map(
        lambda x: jnp.take(x, envs, axis=1).reshape((-1, *x.shape[2:])),
        batch._replace(carry=None, sequences=None))
    return per_sample._replace(carry=carry, sequences=sequences)


def flatten_transitions(batch: Batch, batch_size: int) -> Batch:
    """A `(num_steps, num_envs, ...)` batch as `batch_size` transitions on one leading axis."""
    return jax.tree.map(lambda x: x.reshape((batch_size, *x.shape[2:])), batch)


class Sampler(NamedTuple):
    """How the update draws minibatches from a batch with leaves `(num_steps, num_envs, ...)`.

    prepare(batch) -> samples; each epoch permutes `range(num_units)` and `take(samples, idx)`
    gives one minibatch; `whole(samples)` is every sample as one minibatch-shaped `Batch`.
    """

    num_units: int  # what a permutation shuffles: transitions, or environments (sequences)
    prepare: Callable[[Batch], Any]
    take: Callable[[Any, jax.Array], Batch]
    whole: Callable[[Any], Batch]


def sequence_sampler(num_envs: int) -> Sampler:
    """Minibatches of environments, each with its whole time-major sequence."""
    return Sampler(num_envs, lambda batch: batch, take_sequences,
                   lambda batch: take_sequences(batch, jnp.arange(num_envs)))


def transition_sampler(batch_size: int) -> Sampler:
    """Minibatches of single transitions, shuffled across time and environments."""
    return Sampler(batch_size, functools.partial(flatten_transitions, batch_size=batch_size),
                   take_transitions, lambda samples: samples)


def make_sampler(config: PPOConfig) -> Sampler:
    """The config's one choice of sampler: whole sequences for a recurrent policy (`gru_size`)
    or an estimator that `uses_policy` (ConfigError unless num_envs divides into
    num_minibatches), single transitions otherwise."""
    if not (config.gru_size or ESTIMATORS[config.advantage_estimator].uses_policy):
        return transition_sampler(config.batch_size)
    if config.num_envs % config.num_minibatches:
        raise ConfigError(f"PPOConfig.num_minibatches: minibatches of whole sequences need "
                          f"num_envs = {config.num_envs} to divide into {config.num_minibatches} "
                          f"minibatches of environments")
    return sequence_sampler(config.num_envs)


def minibatch_plan(batch: Batch, key, config: PPOConfig, sampler: Sampler):
    """How the update samples `batch` (leaves `(num_steps, num_envs, ...)`): returns `(samples,
    indices (update_epochs, num_minibatches, k))`, with `sampler.take(samples, idx)` one
    minibatch."""
    indices = minibatch_indices(key, sampler.num_units, config.update_epochs,
                                config.num_minibatches, fast_paths_enabled(config.fast_paths))
    return sampler.prepare(batch), indices


def _masked_mean(x, taken):
    """Mean of `x (update_epochs, num_minibatches)` over the epochs marked `taken`."""
    weights = jnp.broadcast_to(taken[:, None], x.shape).astype(x.dtype)
    return (x * weights).sum() / weights.sum()


def update_policy(learner: Learner, batch: Batch, key, *, policy_fn, optimizer, hp,
                  learning_rate, config: PPOConfig, sampler: Optional[Sampler] = None):
    """K epochs of minibatch SGD over `batch` (leaves `(num_steps, num_envs, ...)`), stopped
    early by `hp.target_kl`, then β adapted. `sampler`: the config's (`make_sampler`) unless
    given. Returns `(learner, UpdateInfo)`.

    Early stopping keeps the program's shape: epochs after the stop run through `lax.cond` as
    no-ops, so seeds that stop at different epochs still vmap together.
    """
    sampler = make_sampler(config) if sampler is None else sampler
    samples, indices = minibatch_plan(batch, key, config, sampler)

    def step(learner, idx):
        return sgd_step(learner, sampler.take(samples, idx), policy_fn=policy_fn, optimizer=optimizer,
                        hp=hp, learning_rate=learning_rate, config=config)

    def run_epoch(learner, epoch_indices):
        return jax.lax.scan(step, learner, epoch_indices, unroll=config.update_unroll)

    def skip_epoch(learner, epoch_indices):
        infos = jax.eval_shape(run_epoch, learner, epoch_indices)[1]
        return learner, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), infos)

    def epoch(carry, epoch_indices):
        learner, stopped = carry
        learner, infos = jax.lax.cond(stopped, skip_epoch, run_epoch, learner, epoch_indices)
        epoch_kl = infos[0].approx_kl.mean()
        stop_now = (hp.target_kl > 0) & (epoch_kl > hp.target_kl)
        return (learner, stopped | stop_now), (infos, jnp.logical_not(stopped))

    start_kl_coef = learner.kl_coef
    (learner, _), ((losses, grad_norms), taken) = jax.lax.scan(
        epoch, (learner, jnp.zeros((), bool)), indices)
    if OBJECTIVES[config.policy_objective].adapts_kl_coef:  # β for the next update, from its KL
        kl = policy_kl(learner.params, sampler.whole(samples), policy_fn)
        learner = learner._replace(kl_coef=adapt_kl_coef(
            learner.kl_coef, kl, hp.kl_target, config.kl_adaptation))
    epochs = taken.sum().astype(jnp.float32)
    info = UpdateInfo(jax.tree.map(lambda x: _masked_mean(x, taken), losses),
                      _masked_mean(grad_norms, taken), start_kl_coef, epochs,
                      epochs * config.num_minibatches)
    return learner, info


def policy_kl(params, samples: Batch, policy_fn):
    """Exact mean KL(π_old || π_params) over `samples` (the paper's d for the β rule)."""
    dist, _ = policy_fn(params, samples)
    return samples.old_dist.kl(dist).mean()
