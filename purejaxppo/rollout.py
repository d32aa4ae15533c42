"""Rollout: `lax.scan` over `num_steps` of `num_envs` vmapped gymnax environments (6-value step)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.distributions import per_sample
from purejaxppo.networks import reset_carry


class EpisodeStats(NamedTuple):
    """Running return and length of each env's current episode, `(num_envs,)` each."""

    returns: jax.Array
    lengths: jax.Array


class EnvRunner(NamedTuple):
    """What the rollout carries from step to step and from update to update."""

    env_state: Any
    obs: jax.Array  # (num_envs, *obs_shape), the observation the policy acts on next
    episode: EpisodeStats
    key: jax.Array
    carry: Any = None  # recurrent policies: hidden state `(num_envs, C)` for `obs`; else None


class Transition(NamedTuple):
    """One rollout step for all envs; stacked by the scan to `(num_steps, num_envs, ...)`."""

    obs: jax.Array  # raw observations, as the env returned them
    actions: jax.Array  # as sampled (before clipping/squashing into the env's bounds)
    log_probs: jax.Array
    values: jax.Array
    dist: Any  # the policy's distribution at `obs`, per sample (for the exact KL)
    rewards: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array  # info["final_observation"]: the true next state, before any auto-reset
    episode_return: jax.Array  # return of the episode that ended at this step, 0 where none did
    episode_length: jax.Array
    next_carry: Any = None  # recurrent: hidden state after this step, before any reset (it goes
    #                         with final_obs for the truncation bootstrap); else None


def reset_envs(env, env_params, key, num_envs: int, carry=None) -> EnvRunner:
    """Reset `num_envs` environments; returns a fresh `EnvRunner` (`carry`: the initial hidden
    state of a recurrent policy, `networks.initial_carry`)."""
    key, reset_key = jax.random.split(key)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_envs), env_params)
    zeros = jnp.zeros((num_envs,), jnp.float32)
    return EnvRunner(env_state, obs, EpisodeStats(zeros, jnp.zeros((num_envs,), jnp.int32)), key,
                     carry)


def env_step(runner: EnvRunner, params, apply_fn, env, env_params):
    """Sample actions from the policy and step every env once. Returns `(runner, Transition)`.

    `apply_fn(params, obs, carry) -> (distribution, values, carry)` (`networks.policy_step`).
    The action is stored as sampled (its log-prob is what PPO's ratio compares against);
    `env.step` gets `distribution.to_env(action)`, e.g. clipped or squashed into a Box's bounds.
    A recurrent carry is reset to its initial value (`networks.reset_carry`) where an episode
    ended, after termination and after truncation alike, so the next episode starts from it.
    """
    key, action_key, step_key = jax.random.split(runner.key, 3)
    dist, values, next_carry = apply_fn(params, runner.obs, runner.carry)
    actions = dist.sample(action_key)
    log_probs = dist.log_prob(actions)

    num_envs = actions.shape[0]
    obs, env_state, rewards, terminated, truncated, info = jax.vmap(
        env.step, in_axes=(0, 0, 0, None))(
        jax.random.split(step_key, num_envs), runner.env_state, dist.to_env(actions), env_params)
    rewards = rewards.astype(jnp.float32)
    done = jnp.logical_or(terminated, truncated)

    episode_returns = runner.episode.returns + rewards
    episode_lengths = runner.episode.lengths + 1
    transition = Transition(
        obs=runner.obs, actions=actions, log_probs=log_probs, values=values,
        dist=per_sample(dist), rewards=rewards, terminated=terminated, truncated=truncated,
        final_obs=info["final_observation"], episode_return=jnp.where(done, episode_returns, 0.0),
        episode_length=jnp.where(done, episode_lengths, 0), next_carry=next_carry)
    episode = EpisodeStats(jnp.where(done, 0.0, episode_returns), jnp.where(done, 0, episode_lengths))
    return EnvRunner(env_state, obs, episode, key, reset_carry(next_carry, done)), transition


def collect_rollout(runner: EnvRunner, params, apply_fn, env, env_params, num_steps: int,
                    unroll: int = 1):
    """Run `num_steps` env steps. Returns `(runner, Transition)` with leaves `(num_steps, num_envs, ...)`."""

    def step(carry, _):
        return env_step(carry, params, apply_fn, env, env_params)

    return jax.lax.scan(step, runner, None, length=num_steps, unroll=unroll)
