"""Generalised Advantage Estimation with correct time-limit handling."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def compute_gae(rewards, values, next_values, terminated, truncated, gamma, gae_lambda):
    """GAE(γ, λ) over a rollout, as a reverse `lax.scan` along the time axis.

    All inputs are `(T, ...)` arrays (usually `(num_steps, num_envs)`):
      rewards[t]      r_t
      values[t]       V(s_t)
      next_values[t]  V(s'_t), the value of the *true* next state: for a step that ended an episode
                      this is V(info["final_observation"]), not of the auto-reset observation.
      terminated[t]   the episode really ended at s'_t: its continuation value is 0.
      truncated[t]    the episode was cut by a time limit at s'_t: bootstrap from V(s'_t).

    δ_t = r_t + γ (1 - terminated_t) V(s'_t) - V(s_t)
    A_t = δ_t + γ λ (1 - done_t) A_{t+1},   done_t = terminated_t or truncated_t

    so the trace is cut at every episode boundary, and the last step of the rollout bootstraps from
    `next_values[-1]`. Returns `(advantages, returns)` with `returns = advantages + values`.
    """
    terminated = terminated.astype(values.dtype)
    done = jnp.maximum(terminated, truncated.astype(values.dtype))
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values

    def backward(next_advantage, step):
        delta, done_t = step
        advantage = delta + gamma * gae_lambda * (1.0 - done_t) * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(deltas[0]), (deltas, done), reverse=True)
    return advantages, advantages + values
