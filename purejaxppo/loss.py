"""PPO-Clip losses: small pure functions, composed in `ppo_loss` (any action distribution)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class LossInfo(NamedTuple):
    """Per-minibatch diagnostics (scalars)."""

    total_loss: jax.Array
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    approx_kl: jax.Array
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


def ppo_loss(params, apply_fn, minibatch, hp, clip_value: bool, normalize_advantages: bool):
    """Total PPO loss for one minibatch: policy + vf_coef · value - ent_coef · entropy.

    `apply_fn(params, obs) -> (distribution, values)` (see `distributions`); `minibatch` has fields
    obs, actions, log_probs, values, advantages, returns (leading axis B), actions as sampled.
    Returns `(loss, LossInfo)`, differentiable in `params`.
    """
    dist, values = apply_fn(params, minibatch.obs)
    advantages = minibatch.advantages
    if normalize_advantages:
        advantages = normalize(advantages)
    log_prob = dist.log_prob(minibatch.actions)
    pg_loss, approx_kl, clip_fraction = policy_loss(log_prob, minibatch.log_probs, advantages,
                                                    hp.clip_eps)
    v_loss = value_loss(values, minibatch.values, minibatch.returns, hp.vf_clip_eps, clip_value)
    entropy = dist.entropy().mean()
    total = pg_loss + hp.vf_coef * v_loss - hp.ent_coef * entropy
    return total, LossInfo(total, pg_loss, v_loss, entropy, approx_kl, clip_fraction)
