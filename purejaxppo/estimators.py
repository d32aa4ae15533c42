"""Advantage/target estimators over time-major sequences, in a table keyed by name.

An estimator maps one rollout's sequences (`EstimatorInputs`, leaves `(T, ...)`, time first) and
the traced `HParams` to `(advantages, returns)`: the policy gradient's Â and the value targets.
`PPOConfig.advantage_estimator` names the entry of `ESTIMATORS` a run uses:

    "gae"   Generalised Advantage Estimation, truncation-aware (`compute_gae`)

An entry is called once after the rollout (`uses_policy=False`), or, with `uses_policy=True`,
also inside the loss on each minibatch's whole sequences with the current policy's log-probs
(`EstimatorInputs.policy_log_probs`; off-policy corrections such as V-trace need them). Add one
from anywhere with `register_estimator(name, estimate, uses_policy=...)`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp


class EstimatorInputs(NamedTuple):
    """What an estimator sees: per-step arrays `(T, ...)` (usually `(num_steps, num_envs)`).

    next_values[t] is V(s'_t) of the *true* next state (for a step that ended an episode,
    V(info["final_observation"])); terminated[t]: the episode really ended at s'_t (no bootstrap);
    truncated[t]: cut by a time limit at s'_t (bootstrap from next_values[t]). log_probs are the
    behaviour policy's (the one that acted); policy_log_probs the policy being trained, None
    where they are the same (after the rollout, on-policy).
    """

    rewards: jax.Array
    values: jax.Array
    next_values: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    log_probs: jax.Array
    policy_log_probs: Optional[jax.Array] = None


class Estimator(NamedTuple):
    """A table entry: `estimate(inputs: EstimatorInputs, hp: HParams) -> (advantages, returns)`,
    both shaped like `inputs.rewards`. `uses_policy`: also re-estimated inside the loss with the
    current policy's log-probs, which makes the update sample whole sequences."""

    estimate: Callable[[EstimatorInputs, Any], tuple[jax.Array, jax.Array]]
    uses_policy: bool = False


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


def gae(inputs: EstimatorInputs, hp):
    """The "gae" entry: `compute_gae` with `hp.gamma` and `hp.gae_lambda`."""
    return compute_gae(inputs.rewards, inputs.values, inputs.next_values, inputs.terminated,
                       inputs.truncated, hp.gamma, hp.gae_lambda)


ESTIMATORS: dict[str, Estimator] = {"gae": Estimator(gae)}


def register_estimator(name: str, estimate: Callable, *, uses_policy: bool = False) -> Estimator:
    """Add (or replace) the entry `name` of `ESTIMATORS`; `PPOConfig(advantage_estimator=name)`
    then selects it. Returns the entry."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_estimator: name must be a non-empty string, got {name!r}")
    ESTIMATORS[name] = Estimator(estimate, bool(uses_policy))
    return ESTIMATORS[name]
