"""Per-update metrics, reduced inside the training scan (memory O(num_updates))."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Metrics(NamedTuple):
    """One row per update (each leaf `(num_updates,)`, with leading seed/setting axes when vmapped).

    episode_return / episode_length: mean over the episodes that *finished* during the update's
    rollout; NaN for an update in which no episode finished (unfinished episodes never count).
    Loss diagnostics are means over the minibatch steps the update took.
    """

    episode_return: jax.Array
    episode_length: jax.Array
    num_episodes: jax.Array
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    approx_kl: jax.Array  # sample estimate of KL(π_old || π_θ), mean over minibatch steps
    kl: jax.Array  # exact KL(π_old || π_θ) from the distributions, same steps
    clip_fraction: jax.Array
    explained_variance: jax.Array
    grad_norm: jax.Array
    learning_rate: jax.Array
    kl_coef: jax.Array  # β of the KL penalty used by this update (policy_objective)
    epochs: jax.Array  # epochs taken (fewer than update_epochs when target_kl stopped it)
    minibatch_steps: jax.Array  # gradient steps taken


def finished_episodes(episode_return, episode_length, done):
    """Mean return and length of finished episodes, and their count, from `(T, N)` arrays where
    `done` marks the steps that ended an episode. Mean is NaN when none finished."""
    count = done.sum()
    safe = jnp.maximum(count, 1)
    mean_return = jnp.where(count > 0, jnp.where(done, episode_return, 0.0).sum() / safe, jnp.nan)
    mean_length = jnp.where(count > 0, jnp.where(done, episode_length, 0).sum() / safe, jnp.nan)
    return mean_return, mean_length, count


def explained_variance(predictions, targets):
    """1 - Var[targets - predictions] / Var[targets]; NaN when the targets are constant."""
    var_targets = jnp.var(targets)
    return jnp.where(var_targets > 0,
                     1.0 - jnp.var(targets - predictions) / jnp.where(var_targets > 0, var_targets, 1.0),
                     jnp.nan)


def final_return(metrics: Metrics, window: int = 10) -> np.ndarray:
    """Mean return of the episodes finished in the last `window` updates, weighted by episode
    count (NaN-safe). Works on any leading axes: `(..., num_updates) -> (...)`."""
    returns = np.asarray(metrics.episode_return)[..., -window:]
    counts = np.asarray(metrics.num_episodes)[..., -window:].astype(np.float64)
    total = np.where(counts > 0, np.nan_to_num(returns) * counts, 0.0).sum(-1)
    n = counts.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)
