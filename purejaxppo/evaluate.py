"""Evaluation: `num_episodes` environments in parallel, each until its first episode ends, as one
jitted scan. Actions are the policy's `mode()` (deterministic) or samples; observation statistics
are frozen (those saved with the policy)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.envs import EnvSpec
from purejaxppo.networks import ActorCritic, initial_carry, policy_step
from purejaxppo.train import observe

DEFAULT_MAX_STEPS = 1000  # for environments whose params name no episode limit


class EvalResult(NamedTuple):
    returns: jax.Array  # (num_episodes,) undiscounted return of each episode
    lengths: jax.Array  # (num_episodes,) its length (max_steps if it never ended)
    states: Any  # env states of episode 0 before each step, leaves (max_steps, ...); or None


def max_episode_steps(spec: EnvSpec) -> int:
    """The environment's own episode limit (`env_params.max_steps_in_episode`), else 1000."""
    limit = getattr(spec.env_params, "max_steps_in_episode", None)
    return int(limit) if limit is not None else DEFAULT_MAX_STEPS


def evaluate(network: ActorCritic, spec: EnvSpec, config, params, obs_stats, key, *,
             num_episodes: int, deterministic: bool, record: bool = False,
             max_steps: int | None = None) -> EvalResult:
    """Play `num_episodes` episodes of the policy `params` (one run; vmap for several).

    Each of `num_episodes` environments counts only its first episode (later steps are masked),
    so a recurrent policy's hidden state needs no reset.
    With `record`, the env states of environment 0 before each step are returned, for rendering
    its episode (`lengths[0]` frames are meaningful). Pure and jittable; `num_episodes`,
    `deterministic`, `record` and `max_steps` are static.
    """
    max_steps = max_episode_steps(spec) if max_steps is None else max_steps
    key, reset_key = jax.random.split(key)
    obs, env_state = jax.vmap(spec.env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_episodes), spec.env_params)
    zeros = jnp.zeros((num_episodes,), jnp.float32)

    def step(carry, _):
        env_state, obs, hidden, done, returns, lengths, key = carry
        key, action_key, step_key = jax.random.split(key, 3)
        dist, _, hidden = policy_step(network, params, observe(obs, obs_stats, config), hidden)
        actions = dist.mode() if deterministic else dist.sample(action_key)
        obs_next, state_next, rewards, terminated, truncated, _ = jax.vmap(
            spec.env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(step_key, num_episodes), env_state, dist.to_env(actions),
            spec.env_params)
        active = jnp.logical_not(done)
        returns = returns + jnp.where(active, rewards.astype(jnp.float32), 0.0)
        lengths = lengths + active.astype(jnp.int32)
        done = done | terminated | truncated
        recorded = jax.tree.map(lambda x: x[0], env_state) if record else None
        return (state_next, obs_next, hidden, done, returns, lengths, key), recorded

    carry = (env_state, obs, initial_carry(network, num_episodes),
             jnp.zeros((num_episodes,), bool), zeros, jnp.zeros((num_episodes,), jnp.int32), key)
    (_, _, _, _, returns, lengths, _), states = jax.lax.scan(step, carry, None, length=max_steps)
    return EvalResult(returns, lengths, states)


def make_evaluator(trainer, *, num_episodes: int, deterministic: bool, record: bool = False):
    """`jit(vmap(evaluate))` for the runs of `trainer` (a `train.Trainer`):
    `(params, obs_stats, keys)`, each with a leading run axis, -> `EvalResult` per run."""
    def one(params, obs_stats, key):
        return evaluate(trainer.network, trainer.spec, trainer.config, params, obs_stats, key,
                        num_episodes=num_episodes, deterministic=deterministic, record=record)

    return jax.jit(jax.vmap(one))
