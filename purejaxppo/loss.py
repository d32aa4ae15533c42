"""PPO losses: small pure functions, composed in `ppo_loss` (any action distribution).

The policy objective is an entry of `OBJECTIVES`, keyed by `PPOConfig.policy_objective`. With
ρ = π_θ(a|s) / π_old(a|s) and advantages Â (Schulman et al. 2017):

    clip:             L = −mean(min(ρ·Â, clip(ρ, 1−ε, 1+ε)·Â))                     (§3)
    kl_penalty:       L = −mean(ρ·Â) + β·mean(KL(π_old(·|s) ‖ π_θ(·|s)))             (§4)
    clip+kl_penalty:  L = −mean(min(ρ·Â, clip(ρ, 1−ε, 1+ε)·Â)) + β·mean(KL(π_old ‖ π_θ))

APPO's (RLlib's APPO learner; μ the behaviour policy that acted, π_target the target network,
c = `behaviour_ratio_clip`; trained by `appo.py`, which supplies the target's log-probs and makes
π_target the KL's reference):

    appo:             r = clip(μ/π_target, 0, c)·π_θ/μ;  L = −mean(min(r·Â, clip(r, 1−ε, 1+ε)·Â))
    appo+kl:          the same + β·mean(KL(π_target ‖ π_θ))

Add one from anywhere with `register_objective(name, loss, adapts_kl_coef=..., uses_target=...)`;
the advantages come from the estimator table (`estimators.ESTIMATORS`,
`PPOConfig.advantage_estimator`).

The KL is exact, from the two distributions (`Distribution.kl`), not the sample estimate; the
sample estimate mean((ρ − 1) − log ρ) is reported beside it as approx_kl.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from purejaxppo.estimators import ESTIMATORS


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
    loss = clipped_surrogate(ratio, advantages, clip_eps)
    approx_kl = ((ratio - 1.0) - log_ratio).mean()
    clip_fraction = (jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32).mean()
    return loss, approx_kl, clip_fraction


def clipped_surrogate(ratio, advantages, clip_eps):
    """PPO's clipped surrogate of a ratio `r`: mean of max(−Â·r, −Â·clip(r, 1−ε, 1+ε))."""
    unclipped = -advantages * ratio
    clipped = -advantages * jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return jnp.maximum(unclipped, clipped).mean()


def appo_ratio(log_prob, behaviour_log_prob, target_log_prob, behaviour_ratio_clip):
    """APPO's ratio clip(μ/π_target, 0, c)·π_θ/μ from log-probs of the stored actions under π_θ,
    the behaviour policy μ and the target network (RLlib's APPO learner)."""
    behaviour_weight = jnp.clip(jnp.exp(behaviour_log_prob - target_log_prob), 0.0,
                                behaviour_ratio_clip)
    return behaviour_weight * jnp.exp(log_prob - behaviour_log_prob)


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


class PolicyTerms(NamedTuple):
    """What an objective sees for one minibatch (per-sample arrays `(n,)`, scalars otherwise)."""

    log_prob: jax.Array  # log π_θ(a|s) of the stored actions, differentiable
    old_log_prob: jax.Array  # log π_old(a|s), the acting policy's
    advantages: jax.Array  # Â, normalised when normalize_advantages
    kl: jax.Array  # exact per-sample KL(π_old(·|s) ‖ π_θ(·|s))
    kl_coef: jax.Array  # the current β
    clipped: jax.Array  # the clipped surrogate loss, computed once for the diagnostics
    target_log_prob: Optional[jax.Array] = None  # log π_target(a|s): objectives that `uses_target`


class Objective(NamedTuple):
    """A table entry: `loss(terms: PolicyTerms, hp: HParams) -> scalar policy loss` (minimised).
    `adapts_kl_coef`: β is adapted after each update by `PPOConfig.kl_adaptation`.
    `uses_target`: the objective needs a target network (`appo.py` keeps one, fills
    `PolicyTerms.target_log_prob` and makes the target's distribution π_old of the KL terms)."""

    loss: Callable[[PolicyTerms, Any], jax.Array]
    adapts_kl_coef: bool = False
    uses_target: bool = False


def clip_objective(terms: PolicyTerms, hp):
    """PPO-Clip: the clipped surrogate."""
    return terms.clipped


def kl_penalty_objective(terms: PolicyTerms, hp):
    """PPO-Penalty: the unclipped surrogate + β·mean(KL)."""
    return (surrogate_loss(terms.log_prob, terms.old_log_prob, terms.advantages)
            + kl_penalty(terms.kl, terms.kl_coef))


def clip_kl_penalty_objective(terms: PolicyTerms, hp):
    """Both: the clipped surrogate + β·mean(KL)."""
    return terms.clipped + kl_penalty(terms.kl, terms.kl_coef)


def appo_objective(terms: PolicyTerms, hp):
    """APPO: PPO's clipped surrogate of `appo_ratio` (behaviour weights clipped at
    `hp.behaviour_ratio_clip`, the ratio at ±`hp.clip_eps`)."""
    ratio = appo_ratio(terms.log_prob, terms.old_log_prob, terms.target_log_prob,
                       hp.behaviour_ratio_clip)
    return clipped_surrogate(ratio, terms.advantages, hp.clip_eps)


def appo_kl_objective(terms: PolicyTerms, hp):
    """APPO with the KL loss: `appo_objective` + β·mean(KL(π_target ‖ π_θ)) (`terms.kl` is taken
    against the target's distribution)."""
    return appo_objective(terms, hp) + kl_penalty(terms.kl, terms.kl_coef)


OBJECTIVES: dict[str, Objective] = {
    "clip": Objective(clip_objective),
    "kl_penalty": Objective(kl_penalty_objective, adapts_kl_coef=True),
    "clip+kl_penalty": Objective(clip_kl_penalty_objective, adapts_kl_coef=True),
    "appo": Objective(appo_objective, uses_target=True),
    "appo+kl": Objective(appo_kl_objective, adapts_kl_coef=True, uses_target=True),
}


def register_objective(name: str, loss: Callable, *, adapts_kl_coef: bool = False,
                       uses_target: bool = False) -> Objective:
    """Add (or replace) the entry `name` of `OBJECTIVES`; `PPOConfig(policy_objective=name)` then
    selects it. Returns the entry."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_objective: name must be a non-empty string, got {name!r}")
    OBJECTIVES[name] = Objective(loss, bool(adapts_kl_coef), bool(uses_target))
    return OBJECTIVES[name]


def advantages_and_returns(minibatch, dist, hp, estimator: str):
    """The minibatch's `(advantages, returns)` per sample: as estimated after the rollout, or for
    an estimator that `uses_policy`, re-estimated here on the minibatch's whole sequences
    (`minibatch.sequences`, leaves `(T, n)`) with the log-probs of `dist`, the current policy
    (no gradient flows through the estimate)."""
    if not ESTIMATORS[estimator].uses_policy:
        return minibatch.advantages, minibatch.returns
    sequences = minibatch.sequences
    current = jax.lax.stop_gradient(dist.log_prob(minibatch.actions))
    advantages, returns = ESTIMATORS[estimator].estimate(
        sequences._replace(policy_log_probs=current.reshape(sequences.rewards.shape)), hp)
    return (jax.lax.stop_gradient(advantages).reshape(-1),
            jax.lax.stop_gradient(returns).reshape(-1))


def ppo_loss(params, policy_fn, minibatch, hp, kl_coef, *, objective: str, clip_value: bool,
             normalize_advantages: bool, estimator: str = "gae"):
    """Total PPO loss for one minibatch: policy objective + vf_coef · value − ent_coef · entropy.

    `policy_fn(params, minibatch) -> (distribution, values)` evaluates the network on the
    minibatch's samples (see `update`). `minibatch` (a `update.Batch`) has per-sample fields obs,
    actions (as sampled), log_probs, values, advantages, returns and old_dist (the rollout
    policy's distribution, per sample; the target network's under APPO), and target_log_probs
    for objectives that `uses_target`. `objective` names the `OBJECTIVES` entry
    (`PPOConfig.policy_objective`), `estimator` the `ESTIMATORS` entry; `kl_coef` is the current
    β. Returns `(loss, LossInfo)`, differentiable in `params`.
    """
    dist, values = policy_fn(params, minibatch)
    advantages, returns = advantages_and_returns(minibatch, dist, hp, estimator)
    if normalize_advantages:
        advantages = normalize(advantages)
    log_prob = dist.log_prob(minibatch.actions)
    clipped, approx_kl, clip_fraction = policy_loss(log_prob, minibatch.log_probs, advantages,
                                                    hp.clip_eps)
    kl = minibatch.old_dist.kl(dist)
    terms = PolicyTerms(log_prob, minibatch.log_probs, advantages, kl, kl_coef, clipped,
                        minibatch.target_log_probs)
    pg_loss = OBJECTIVES[objective].loss(terms, hp)
    v_loss = value_loss(values, minibatch.values, returns, hp.vf_clip_eps, clip_value)
    entropy = dist.entropy().mean()
    total = pg_loss + hp.vf_coef * v_loss - hp.ent_coef * entropy
    return total, LossInfo(total, pg_loss, v_loss, entropy, approx_kl, kl.mean(), clip_fraction)
