"""`make_train(config)` -> `train(key, hparams=None)`: all of PPO as one pure, jittable function."""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from purejaxppo.config import HParams, PPOConfig, validate_config, validate_hparams
from purejaxppo.envs import EnvSpec, make_env
from purejaxppo.gae import compute_gae
from purejaxppo.metrics import Metrics, explained_variance, finished_episodes
from purejaxppo.networks import ActorCritic, init_params
from purejaxppo.progress import emit_progress
from purejaxppo.rollout import EnvRunner, collect_rollout, reset_envs
from purejaxppo.update import Batch, Learner, learning_rate_at, make_optimizer, update_policy


class TrainState(NamedTuple):
    learner: Learner
    runner: EnvRunner


class TrainResult(NamedTuple):
    params: Any  # final network parameters
    metrics: Metrics  # one row per update


def make_network(config: PPOConfig, spec: EnvSpec) -> ActorCritic:
    return ActorCritic(spec.num_actions, config.hidden_sizes, config.activation,
                       config.shared_trunk)


def ppo_iteration(state: TrainState, update_idx, *, config: PPOConfig, spec: EnvSpec, apply_fn,
                  unravel, optimizer, hp: HParams, callback: Optional[Callable], callback_every: int):
    """One PPO update: collect a rollout, compute GAE, run K epochs of minibatch updates.

    `learner.params` is the network's parameters raveled into one vector (`unravel` gives the
    pytree back): Adam, gradient clipping and the global norm then run as a few fused vector
    operations per minibatch instead of a handful per parameter array.
    """
    learner, runner = state
    params = unravel(learner.params)
    runner, traj = collect_rollout(runner, params, apply_fn, spec.env, spec.env_params,
                                   config.num_steps, config.rollout_unroll)

    # Bootstrap from the true next state (pre-reset final observation), one batched forward.
    num_steps, num_envs = traj.rewards.shape
    final_obs = traj.final_obs.reshape((num_steps * num_envs, *traj.final_obs.shape[2:]))
    next_values = apply_fn(params, final_obs)[1].reshape(num_steps, num_envs)
    advantages, returns = compute_gae(traj.rewards, traj.values, next_values, traj.terminated,
                                      traj.truncated, hp.gamma, hp.gae_lambda)

    learning_rate = learning_rate_at(hp.learning_rate, update_idx, config.num_updates,
                                     config.anneal_lr)
    batch = Batch(traj.obs, traj.actions, traj.log_probs, traj.values, advantages, returns)
    key, update_key = jax.random.split(runner.key)
    learner, info = update_policy(learner, batch, update_key,
                                  apply_fn=lambda flat, obs: apply_fn(unravel(flat), obs),
                                  optimizer=optimizer, hp=hp, learning_rate=learning_rate,
                                  config=config)

    done = jnp.logical_or(traj.terminated, traj.truncated)
    episode_return, episode_length, num_episodes = finished_episodes(
        traj.episode_return, traj.episode_length, done)
    metrics = Metrics(
        episode_return=episode_return, episode_length=episode_length, num_episodes=num_episodes,
        policy_loss=info.loss.policy_loss, value_loss=info.loss.value_loss,
        entropy=info.loss.entropy, approx_kl=info.loss.approx_kl,
        clip_fraction=info.loss.clip_fraction,
        explained_variance=explained_variance(traj.values, returns),
        grad_norm=info.grad_norm, learning_rate=learning_rate)
    if callback is not None:  # update_idx is never batched, so this stays a real cond under vmap
        jax.lax.cond(update_idx % callback_every == 0,
                     lambda: emit_progress(callback, update_idx, metrics), lambda: None)
    return TrainState(learner, runner._replace(key=key)), metrics


def make_train(config: PPOConfig, *, env=None, env_params=None,
               callback: Optional[Callable] = None, callback_every: int = 1):
    """Validate `config` and return `train(key, hparams=None) -> TrainResult`.

    `train` is pure: jit it, vmap it over keys (seeds) and/or `HParams` (sweeps). `hparams`
    defaults to `config.hparams()`. `env`/`env_params` replace the gymnax env named by
    `config.env_name` (e.g. a custom gymnax environment). `callback(update_idx, metrics)` is
    called on the host every `callback_every` updates (unordered; it cannot change results).
    Under `jax.vmap` it is called once per report, not once per seed: `metrics` then carries the
    leading batch (seed / setting) axes (see `progress.emit_progress`).
    """
    validate_config(config)
    if isinstance(callback_every, bool) or not isinstance(callback_every, int) or callback_every <= 0:
        raise ValueError(f"callback_every: must be a positive integer, got {callback_every!r}")
    spec = make_env(config.env_name, env, env_params)
    network = make_network(config, spec)
    optimizer = make_optimizer(config)

    def train(key, hparams: Optional[HParams] = None) -> TrainResult:
        hp = config.hparams() if hparams is None else hparams
        validate_hparams(hp, where="HParams")
        hp = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), hp)
        init_key, env_key = jax.random.split(key)
        params, unravel = ravel_pytree(init_params(network, init_key, spec.obs_shape))
        state = TrainState(Learner(params, optimizer.init(params)),
                           reset_envs(spec.env, spec.env_params, env_key, config.num_envs))
        iteration = functools.partial(
            ppo_iteration, config=config, spec=spec, apply_fn=network.apply, unravel=unravel,
            optimizer=optimizer, hp=hp, callback=callback, callback_every=callback_every)
        state, metrics = jax.lax.scan(iteration, state, jnp.arange(config.num_updates))
        return TrainResult(unravel(state.learner.params), metrics)

    return train
