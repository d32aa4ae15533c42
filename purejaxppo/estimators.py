"""Advantage/target estimators over time-major sequences, in a table keyed by name.

An estimator maps one rollout's sequences (`EstimatorInputs`, leaves `(T, ...)`, time first) and
the traced `HParams` to `(advantages, returns)`: the policy gradient's Â and the value targets.
`PPOConfig.advantage_estimator` names the entry of `ESTIMATORS` a run uses:

    "gae"     Generalised Advantage Estimation, truncation-aware (`compute_gae`)
    "vtrace"  V-trace (Espeholt et al. 2018), truncation-aware, with separate ρ̄, ρ̄_pg and c̄
              (`compute_vtrace`); target log-probs from `policy_log_probs`, on-policy if None

An entry is called once after the rollout (`uses_policy=False`), or, with `uses_policy=True`,
also inside the loss on each minibatch's whole sequences with the current policy's log-probs
(`EstimatorInputs.policy_log_probs`). "vtrace" does not use the policy: APPO's learner passes
the target network's log-probs as `policy_log_probs`, once per drawn batch. Add an entry from
anywhere with `register_estimator(name, estimate, uses_policy=...)`.
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


def episode_ends(terminated, truncated, dtype):
    """`(terminated, done)` as `dtype` 0/1 arrays, done = terminated or truncated (`(T, ...)`)."""
    terminated = terminated.astype(dtype)
    return terminated, jnp.maximum(terminated, truncated.astype(dtype))


def reverse_trace(deltas, decays):
    """A_t = δ_t + decay_t · A_{t+1} with A_T = 0, a reverse `lax.scan` over the leading (time)
    axis; `deltas`, `decays`: `(T, ...)`. Returns A `(T, ...)`."""

    def backward(next_advantage, step):
        delta, decay = step
        advantage = delta + decay * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(deltas[0]), (deltas, decays),
                                 reverse=True)
    return advantages


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
    terminated, done = episode_ends(terminated, truncated, values.dtype)
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values
    advantages = reverse_trace(deltas, gamma * gae_lambda * (1.0 - done))
    return advantages, advantages + values


def gae(inputs: EstimatorInputs, hp):
    """The "gae" entry: `compute_gae` with `hp.gamma` and `hp.gae_lambda`."""
    return compute_gae(inputs.rewards, inputs.values, inputs.next_values, inputs.terminated,
                       inputs.truncated, hp.gamma, hp.gae_lambda)


def compute_vtrace(rewards, values, next_values, terminated, truncated, behaviour_log_probs,
                   target_log_probs, gamma, lam, clip_rho, clip_pg_rho, clip_c):
    """V-trace targets and policy-gradient advantages (Espeholt et al. 2018, §4), as a reverse
    `lax.scan` along the time axis, with `compute_gae`'s conventions for the episode ends.

    rewards, values, next_values, terminated, truncated: `(T, ...)` as in `compute_gae`;
    behaviour_log_probs[t] log μ(a_t|s_t) (the policy that acted), target_log_probs[t]
    log π(a_t|s_t) (the policy evaluated), `(T, ...)`. gamma, lam (λ), clip_rho (ρ̄), clip_pg_rho
    (ρ̄_pg), clip_c (c̄): scalars or arrays broadcasting against `(...)`, traced or not.

    ρ_t = π/μ = exp(target − behaviour), with no gradient through it;
    δ_t = min(ρ̄, ρ_t) (r_t + γ (1 − terminated_t) V(s'_t) − V(s_t))
    A_t = δ_t + γ c_t (1 − done_t) A_{t+1},   c_t = λ min(c̄, ρ_t),   A_T = 0
    vs_t = V(s_t) + A_t  (= the paper's sum V(x_s) + Σ_t γ^{t−s} (Π_{i<t} c_i) δ_t)
    next_vs_t = V(s'_t) + (1 − done_t) A_{t+1}    (the V-trace target of the true next state)
    pg_advantages_t = min(ρ̄_pg, ρ_t) (r_t + γ (1 − terminated_t) next_vs_t − V(s_t))

    The trace is cut at every episode end (done_t = terminated_t or truncated_t). A truncated
    step bootstraps from V(s'_t) = V(final_observation), as GAE does here (RLlib, rlax (one
    discount per step) and Stoix treat truncations as terminations); c̄ is kept separate from ρ̄
    (rlax and RLlib fix c̄ = 1).
    On-policy (ρ = 1) with ρ̄, c̄ ≥ 1, vs equals GAE(λ)'s returns. Returns
    `(pg_advantages, vs)`, both `(T, ...)`.
    """
    terminated, done = episode_ends(terminated, truncated, values.dtype)
    rho = jnp.exp(jax.lax.stop_gradient(target_log_probs - behaviour_log_probs)).astype(
        values.dtype)
    discounts = gamma * (1.0 - terminated)
    deltas = jnp.minimum(clip_rho, rho) * (rewards + discounts * next_values - values)
    advantages = reverse_trace(deltas, gamma * lam * jnp.minimum(clip_c, rho) * (1.0 - done))
    following = jnp.concatenate([advantages[1:], jnp.zeros_like(advantages[:1])])  # A_{t+1}
    next_vs = next_values + (1.0 - done) * following
    pg_advantages = jnp.minimum(clip_pg_rho, rho) * (rewards + discounts * next_vs - values)
    return pg_advantages, values + advantages


def vtrace(inputs: EstimatorInputs, hp):
    """The "vtrace" entry: `compute_vtrace` with the behaviour's `inputs.log_probs`, the target
    `inputs.policy_log_probs` (or `inputs.log_probs` when None: on-policy, ρ = 1), `hp.gamma`,
    `hp.gae_lambda` as λ, `hp.vtrace_clip_rho`, `hp.vtrace_clip_pg_rho`, `hp.vtrace_clip_c`."""
    target = inputs.log_probs if inputs.policy_log_probs is None else inputs.policy_log_probs
    return compute_vtrace(inputs.rewards, inputs.values, inputs.next_values, inputs.terminated,
                          inputs.truncated, inputs.log_probs, target, hp.gamma, hp.gae_lambda,
                          hp.vtrace_clip_rho, hp.vtrace_clip_pg_rho, hp.vtrace_clip_c)


ESTIMATORS: dict[str, Estimator] = {"gae": Estimator(gae), "vtrace": Estimator(vtrace)}


def register_estimator(name: str, estimate: Callable, *, uses_policy: bool = False) -> Estimator:
    """Add (or replace) the entry `name` of `ESTIMATORS`; `PPOConfig(advantage_estimator=name)`
    then selects it. Returns the entry."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_estimator: name must be a non-empty string, got {name!r}")
    ESTIMATORS[name] = Estimator(estimate, bool(uses_policy))
    return ESTIMATORS[name]
