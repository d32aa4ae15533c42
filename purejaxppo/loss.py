"""PPO losses: small pure functions, composed in `ppo_loss` (any action distribution).

With ρ = π_θ(a|s) / π_old(a|s) and advantages Â (Schulman et al. 2017):

    clip:             L = −mean(min(ρ·Â, clip(ρ, 1−ε, 1+ε)·Â))                     (§3)
    kl_penalty:       L = −mean(ρ·Â) + β·mean(KL(π_old(·|s) ‖ π_θ(·|s)))             (§4)
    clip+kl_penalty:  L = −mean(min(ρ·Â, clip(ρ, 1−ε, 1+ε)·Â)) + β·mean(KL(π_old ‖ π_θ))

The KL is exact, from the two distributions (`Distribution.kl`), not the sample estimate; the
sample estimate mean((ρ − 1) − log ρ) is reported beside it as approx_kl.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class LossInfo(NamedTuple):
    """Per-minibatch diagnostics (scalars)."""

    total_loss: jax.Array
    policy_loss: jax.Array  # the policy objective, β·KL included for the penalty objectives
    value_loss: jax.Array
    entropy: jax.Array
    approx_kl: jax.Array  # sample estimate mean((ρ - 1) - log ρ)
    kl: jax.Array  # exact mean KL(π_old || π_θ) over the minibatch
    clip_fraction: jax.Array


def normalize(x, eps: float = 1e-8):
    """(x - mean) / (std + eps) over all elements."""
    return (x - x.mean()) / (x.std() + eps)


def policy_loss(log_prob, old_log_prob, advantages, clip_eps):
    """Clipped surrogate: mean of max(-A·ρ, -A·clip(ρ, 1-ε, 1+ε)), ρ = exp(logπ - logπ_old).

    Returns `(loss, approx_kl, clip_fraction)`; approx_kl is the low-variance estimator
    mean((ρ - 1) - log ρ), clip_fraction the share of samples with |ρ - 1| > ε.
    """
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    loss = jnp.maximum(unclipped, clipped).mean()
    approx_kl = ((ratio - 1.0) - log_ratio).mean()
    clip_fraction = (jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32).mean()
    return loss, approx_kl, clip_fraction


def value_loss(values, old_values, returns, vf_clip_eps, clip_value: bool):
    """0.5 · mean squared error to the returns; with `clip_value`, the pessimistic max of the
    unclipped and the clipped (old_values ± vf_clip_eps) error."""
    error = jnp.square(values - returns)
    if clip_value:
        clipped = old_values + jnp.clip(values - old_values, -vf_clip_eps, vf_clip_eps)
        error = jnp.maximum(error, jnp.square(clipped - returns))
    return 0.5 * error.mean()


def surrogate_loss(log_prob, old_log_prob, advantages):
    """The unclipped surrogate −mean(ρ·Â) of PPO-Penalty (and of TRPO)."""
    return -(jnp.exp(log_prob - old_log_prob) * advantages).mean()


def kl_penalty(kl, kl_coef):
    """β · mean(KL): `kl` holds the exact per-sample KL(π_old || π_θ)."""
    return kl_coef * kl.mean()


def ppo_loss(params, policy_fn, minibatch, hp, kl_coef, *, objective: str, clip_value: bool,
             normalize_advantages: bool):
    """Total PPO loss for one minibatch: policy objective + vf_coef · value − ent_coef · entropy.

    `policy_fn(params, minibatch) -> (distribution, values)` evaluates the network on the
    minibatch's samples (see `update`). `minibatch` (a `update.Batch`) has per-sample fields obs,
    actions (as sampled), log_probs, values, advantages, returns and old_dist (the rollout
    policy's distribution, per sample). `objective` is `PPOConfig.policy_objective`; `kl_coef`
    is the current β. Returns `(loss, LossInfo)`, differentiable in `params`.
    """
    dist, values = policy_fn(params, minibatch)
    advantages = minibatch.advantages
    if normalize_advantages:
        advantages = normalize(advantages)
    log_prob = dist.log_prob(minibatch.actions)
    clipped, approx_kl, clip_fraction = policy_loss(log_prob, minibatch.log_probs, advantages,
                                                    hp.clip_eps)
    kl = minibatch.old_dist.kl(dist)
    if objective == "kl_penalty":
        pg_loss = surrogate_loss(log_prob, minibatch.log_probs, advantages)
    else:
        pg_loss = clipped
    if objective in ("kl_penalty", "clip+kl_penalty"):
        pg_loss = pg_loss + kl_penalty(kl, kl_coef)
    v_loss = value_loss(values, minibatch.values, minibatch.returns, hp.vf_clip_eps, clip_value)
    entropy = dist.entropy().mean()
    total = pg_loss + hp.vf_coef * v_loss - hp.ent_coef * entropy
    return total, LossInfo(total, pg_loss, v_loss, entropy, approx_kl, kl.mean(), clip_fraction)
