"""`make_train(config)` -> `train(key, hparams=None)`: all of PPO as one pure, jittable function.

`train` is made of two halves, also pure and vmappable (`make_trainer` returns all three):

    state = init(key, hparams)                       # TrainState: everything training carries
    state, metrics = run(state, hparams, num_updates)   # any number of updates, resumable
    train(key, hparams) == run(init(key, hparams), hparams, config.num_updates)
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from purejaxppo.appo import UpdateRule, make_update_rule
from purejaxppo.config import HParams, PPOConfig, validate_config, validate_hparams
from purejaxppo.envs import EnvSpec, check_config_for_env, make_env
from purejaxppo.fast_paths import fast_key, fast_paths_enabled, restore_key
from purejaxppo.estimators import ESTIMATORS, EstimatorInputs
from purejaxppo.metrics import Metrics, explained_variance, finished_episodes
from purejaxppo.networks import (ActorCritic, batch_policy, carry_resets, init_params,
                                 initial_carry, make_network, policy_step)
from purejaxppo.normalize import (RewardScaler, RunningStats, init_reward_scaler, init_stats,
                                  normalize_obs, scale_rewards, update_stats)
from purejaxppo.parallel import grouped_when_vmapped
from purejaxppo.progress import emit_progress
from purejaxppo.rollout import EnvRunner, Transition, collect_rollout, reset_envs
from purejaxppo.update import (Batch, Learner, Sampler, learning_rate_at, make_optimizer,
                               make_sampler)


class TrainState(NamedTuple):
    """Everything training needs to continue exactly (a pytree; leading axes when vmapped)."""

    learner: Learner  # network parameters (a pytree), Adam state, KL penalty's β, param_sets
    runner: EnvRunner  # env states, last observations, episode stats, PRNG key, GRU state
    obs_stats: Optional[RunningStats]  # None unless config.normalize_obs
    reward_scaler: Optional[RewardScaler]  # None unless config.normalize_reward
    update: jax.Array  # updates done so far (int32): LR annealing continues from here


class TrainResult(NamedTuple):
    params: Any  # final network parameters
    metrics: Metrics  # one row per update
    obs_stats: Optional[RunningStats] = None  # final observation statistics (normalize_obs)
    diverged_at: Any = None  # first update with a non-finite loss or gradient norm, -1 if none


def first_divergence(metrics: Metrics):
    """Index of the first update whose losses or gradient norm are not finite, -1 if none
    (`(..., num_updates) -> (...)` int32)."""
    finite = (jnp.isfinite(metrics.policy_loss) & jnp.isfinite(metrics.value_loss)
              & jnp.isfinite(metrics.entropy) & jnp.isfinite(metrics.grad_norm))
    return jnp.where(finite.all(-1), -1, jnp.argmin(finite, axis=-1)).astype(jnp.int32)


def observe(obs, stats: Optional[RunningStats], config: PPOConfig):
    """What the network sees: `obs` normalised with `stats` (clipped to ±obs_clip), or as is."""
    return obs if stats is None else normalize_obs(obs, stats, config.obs_clip)


class Rollout(NamedTuple):
    """What one update's rollout hands the learner (per-step leaves `(num_steps, num_envs,
    ...)`)."""

    runner: EnvRunner  # after the rollout (its key in the fast representation)
    traj: Transition
    done: jax.Array  # terminated or truncated
    sequences: EstimatorInputs  # rewards as trained on, the acting critic's values and bootstrap
    returns: jax.Array  # the estimator's value targets (after the rollout)
    batch: Batch
    reward_scaler: Optional[RewardScaler]


def collect(state: TrainState, hp: HParams, *, config: PPOConfig, spec: EnvSpec,
            network: ActorCritic, rule: UpdateRule) -> Rollout:
    """Act for `num_steps` with the rule's acting parameters (the trained ones, or APPO's lagged
    set), bootstrap, scale rewards, estimate advantages and returns (the config's
    `advantage_estimator`, GAE by default) and build the update's `Batch`.

    Observations are normalised with the statistics *before* this rollout, everywhere they enter
    the network in this update (acting, the final-observation bootstrap, the loss).
    """
    params = rule.acting_params(state.learner, state.update)
    policy = functools.partial(_act, network, state.obs_stats, config)
    start_carry = state.runner.carry
    # The same random numbers, cheaper on CPU (fast_paths.fast_key); the state keeps key types.
    runner = state.runner._replace(
        key=fast_key(state.runner.key, fast_paths_enabled(config.fast_paths)))
    runner, traj = collect_rollout(runner, params, policy, spec.env, spec.env_params,
                                   config.num_steps, config.rollout_unroll)

    # Bootstrap from the true next state (pre-reset final observation, and for a GRU the hidden
    # state after that step), one batched forward.
    num_steps, num_envs = traj.rewards.shape
    flat = lambda x: x.reshape((num_steps * num_envs, *x.shape[2:]))  # noqa: E731
    next_values = policy(params, flat(traj.final_obs), jax.tree.map(flat, traj.next_carry))[1]
    next_values = next_values.reshape(num_steps, num_envs)
    done = jnp.logical_or(traj.terminated, traj.truncated)
    rewards, reward_scaler = traj.rewards, state.reward_scaler
    if reward_scaler is not None:
        reward_scaler, rewards = scale_rewards(reward_scaler, rewards, done, hp.gamma,
                                               config.reward_clip)
    sequences = EstimatorInputs(rewards, traj.values, next_values, traj.terminated,
                                traj.truncated, traj.log_probs)
    advantages, returns = ESTIMATORS[config.advantage_estimator].estimate(sequences, hp)
    batch = make_batch(traj, done, sequences, advantages, returns, start_carry, state.obs_stats,
                       config)
    return Rollout(runner, traj, done, sequences, returns, batch, reward_scaler)


def ppo_iteration(state: TrainState, step, *, config: PPOConfig, spec: EnvSpec,
                  network: ActorCritic, optimizer, sampler: Sampler, rule: UpdateRule,
                  hp: HParams, callback: Optional[Callable], callback_every: int):
    """One update: `collect` a rollout, then the rule's learn step (PPO: K epochs of minibatch
    updates on it; APPO: see `appo.py`), then the observation statistics are updated with the
    rollout's raw observations. `step` counts updates within this `run` call; it is never
    batched, so the progress `cond` stays a real branch under vmap.
    """
    update_idx = state.update
    rollout = collect(state, hp, config=config, spec=spec, network=network, rule=rule)
    learning_rate = learning_rate_at(hp.learning_rate, update_idx, config.num_updates,
                                     config.anneal_lr)
    key, update_key = jax.random.split(rollout.runner.key)
    learner, info = rule.learn(state.learner, rollout.batch, rollout.sequences, update_key,
                               update_idx, policy_fn=batch_policy(network, config.num_steps),
                               optimizer=optimizer, hp=hp, learning_rate=learning_rate,
                               config=config, sampler=sampler)
    obs_stats = None if state.obs_stats is None else update_stats(state.obs_stats,
                                                                  rollout.traj.obs)

    metrics = make_metrics(rollout.traj, rollout.done, info, rollout.returns, learning_rate)
    if callback is not None:
        jax.lax.cond(step % callback_every == 0,
                     lambda: emit_progress(callback, update_idx, metrics), lambda: None)
    runner = rollout.runner._replace(key=restore_key(key, state.runner.key))
    return TrainState(learner, runner, obs_stats, rollout.reward_scaler, update_idx + 1), metrics


def make_batch(traj, done, sequences: EstimatorInputs, advantages, returns, start_carry,
               obs_stats, config: PPOConfig) -> Batch:
    """The update's data, leaves `(num_steps, num_envs, ...)`: observations as the network saw
    them, actions as sampled, the acting distribution. A recurrent policy also gets where episodes
    start (`networks.carry_resets`) and `start_carry` itself; an estimator that `uses_policy`
    its `sequences`, to re-estimate inside the loss."""
    uses_policy = ESTIMATORS[config.advantage_estimator].uses_policy
    return Batch(observe(traj.obs, obs_stats, config), traj.actions, traj.log_probs,
                 traj.values, advantages, returns, traj.dist, carry_resets(done, start_carry),
                 start_carry, sequences if uses_policy else None)


def _act(network, obs_stats, config, params, obs, carry):
    """`networks.policy_step` on observations normalised with `obs_stats`."""
    return policy_step(network, params, observe(obs, obs_stats, config), carry)


def make_metrics(traj, done, info, returns, learning_rate) -> Metrics:
    """The update's metrics row: raw episode returns of finished episodes, loss diagnostics."""
    episode_return, episode_length, num_episodes = finished_episodes(
        traj.episode_return, traj.episode_length, done)
    return Metrics(
        episode_return=episode_return, episode_length=episode_length, num_episodes=num_episodes,
        policy_loss=info.loss.policy_loss, value_loss=info.loss.value_loss,
        entropy=info.loss.entropy, approx_kl=info.loss.approx_kl, kl=info.loss.kl,
        clip_fraction=info.loss.clip_fraction,
        explained_variance=explained_variance(traj.values, returns),
        grad_norm=info.grad_norm, learning_rate=learning_rate, kl_coef=info.kl_coef,
        epochs=info.epochs, minibatch_steps=info.minibatch_steps)


class Trainer(NamedTuple):
    """The pure functions of one config (see the module docstring) and what they were made from.

    init(key, hparams=None) -> TrainState
    run(state, hparams=None, num_updates=config.num_updates) -> (TrainState, Metrics)
    train(key, hparams=None) -> TrainResult
    params(state) -> the network's parameter pytree held in `state`
    """

    config: PPOConfig
    spec: EnvSpec
    network: ActorCritic
    init: Callable
    run: Callable
    train: Callable
    params: Callable


def make_trainer(config: PPOConfig, *, env=None, env_params=None,
                 callback: Optional[Callable] = None, callback_every: int = 1,
                 group_vmap: Optional[bool] = None) -> Trainer:
    """Validate `config` (before anything compiles) and build its `Trainer`. Arguments as
    `make_train`. A `run` of k updates followed by a `run` of k more gives bitwise the state of
    one `run` of 2k on the same device; with a callback, chunks that are multiples of
    `callback_every` report at the same updates as one call."""
    validate_config(config)
    if isinstance(callback_every, bool) or not isinstance(callback_every, int) or callback_every <= 0:
        raise ValueError(f"callback_every: must be a positive integer, got {callback_every!r}")
    if group_vmap is not None and not isinstance(group_vmap, bool):
        raise ValueError(f"group_vmap: must be True, False or None, got {group_vmap!r}")
    spec = make_env(config.env_name, env, env_params)
    check_config_for_env(config, spec)
    network = make_network(config, spec)
    optimizer = make_optimizer(config)
    sampler = make_sampler(config)
    rule = make_update_rule(config)

    def hparams_of(hparams):
        hp = config.hparams() if hparams is None else hparams
        validate_hparams(hp, where="HParams", scalar=True)
        return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), hp)

    def init(key, hparams: Optional[HParams] = None) -> TrainState:
        hp = hparams_of(hparams)  # checked here too: init takes the same arguments as train
        init_key, env_key = jax.random.split(key)
        params = init_params(network, init_key, spec.obs_shape)
        state = TrainState(
            Learner(params, optimizer.init(params), hp.kl_coef),
            reset_envs(spec.env, spec.env_params, env_key, config.num_envs,
                       initial_carry(network, config.num_envs)),
            init_stats(spec.obs_shape) if config.normalize_obs else None,
            init_reward_scaler(config.num_envs) if config.normalize_reward else None,
            jnp.zeros((), jnp.int32))

        def rollout_shapes(learner):  # one update's Batch and sequences, shapes only
            collected = jax.eval_shape(functools.partial(
                collect, config=config, spec=spec, network=network, rule=rule),
                state._replace(learner=learner), hp)
            return collected.batch, collected.sequences

        return state._replace(learner=rule.init_learner(state.learner, rollout_shapes))

    def run(state: TrainState, hparams: Optional[HParams] = None,
            num_updates: int = config.num_updates):
        iteration = functools.partial(
            ppo_iteration, config=config, spec=spec, network=network, optimizer=optimizer,
            sampler=sampler, rule=rule, hp=hparams_of(hparams), callback=callback,
            callback_every=callback_every)
        return jax.lax.scan(iteration, state, jnp.arange(num_updates))

    def train_one(key, hparams: Optional[HParams] = None) -> TrainResult:
        state, metrics = run(init(key, hparams), hparams, config.num_updates)
        return TrainResult(state.learner.params, metrics, state.obs_stats,
                           first_divergence(metrics))

    if group_vmap is None:  # with a callback, one vmap: each report carries every run
        group_vmap = callback is None
    grouped = grouped_when_vmapped(train_one) if group_vmap else train_one

    def train(key, hparams: Optional[HParams] = None) -> TrainResult:
        hparams_of(hparams)  # its errors here, before tracing in grouped_when_vmapped
        return grouped(key, hparams)

    return Trainer(config, spec, network, init, run, train,
                   lambda state: state.learner.params)


def make_train(config: PPOConfig, *, env=None, env_params=None,
               callback: Optional[Callable] = None, callback_every: int = 1,
               group_vmap: Optional[bool] = None):
    """Validate `config` and return `train(key, hparams=None) -> TrainResult`.

    `train` is pure: jit it, vmap it over keys (seeds) and/or `HParams` (sweeps). `hparams`
    defaults to `config.hparams()`. `env`/`env_params` replace the gymnax env named by
    `config.env_name` (e.g. a custom gymnax environment). `callback(update_idx, metrics)` is
    called on the host every `callback_every` updates (unordered; it cannot change results).
    Under `jax.vmap` it is called once per report, not once per seed: `metrics` then carries the
    leading batch (seed / setting) axes (see `progress.emit_progress`). `TrainResult.diverged_at`
    reports, per run, the first update that went non-finite (-1: none). `group_vmap`: whether
    `jax.vmap(train)` over more runs than `parallel.runs_per_group` allows runs them in groups
    (`parallel.grouped_when_vmapped`: faster on the CPU, same results up to float rounding;
    a callback then reports once per group); default: grouped unless there is a callback.
    For the two halves of `train` (to checkpoint, resume or evaluate mid-way) see `make_trainer`.
    """
    return make_trainer(config, env=env, env_params=env_params, callback=callback,
                        callback_every=callback_every, group_vmap=group_vmap).train
