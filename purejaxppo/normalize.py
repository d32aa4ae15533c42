"""Running normalisation statistics, carried in the train state (pure functions, vmappable).

* Observations: per-feature running mean and variance, merged once per rollout with the batch's
  own mean and variance (Chan et al.'s parallel form of Welford's algorithm), applied as
  `clip((obs - mean) / sqrt(var + eps), ±obs_clip)`.
* Rewards: divided by the running standard deviation of the discounted return
  `R_t = γ R_{t-1} + r_t` (reset to 0 after every episode end), the scheme of OpenAI baselines'
  and SB3's `VecNormalize`; optionally clipped to ±reward_clip. The mean is not subtracted.

Each run (seed, sweep setting) has its own statistics: they live in that run's train state.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

EPS = 1e-8


class RunningStats(NamedTuple):
    """Mean and (population) variance of everything seen so far, and how many samples that was.

    Starts at `count = 0, mean = 0, var = 1` (normalising is then the identity); after any
    `update_stats` it equals numpy's `mean`/`var` over all the samples given (float32 rounding).
    """

    mean: jax.Array
    var: jax.Array
    count: jax.Array


def init_stats(shape: tuple[int, ...] = ()) -> RunningStats:
    return RunningStats(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32),
                        jnp.zeros((), jnp.float32))


def update_stats(stats: RunningStats, batch) -> RunningStats:
    """Merge `batch (..., *stats.mean.shape)` (all leading axes are samples) into `stats`."""
    batch = batch.reshape((-1, *stats.mean.shape)).astype(jnp.float32)
    batch_count = jnp.float32(batch.shape[0])
    batch_mean = batch.mean(0)
    batch_var = batch.var(0)
    total = stats.count + batch_count
    delta = batch_mean - stats.mean
    mean = stats.mean + delta * (batch_count / total)
    m2 = stats.var * stats.count + batch_var * batch_count + jnp.square(delta) * (
        stats.count * batch_count / total)
    return RunningStats(mean, m2 / total, total)


def normalize_obs(obs, stats: RunningStats, clip):
    """`clip((obs - mean) / sqrt(var + eps), -clip, clip)` over the trailing `mean.shape` axes."""
    normalized = (obs.astype(jnp.float32) - stats.mean) / jnp.sqrt(stats.var + EPS)
    return jnp.clip(normalized, -clip, clip)


class RewardScaler(NamedTuple):
    """Per-env discounted-return accumulator `(num_envs,)` and its running statistics."""

    returns: jax.Array
    stats: RunningStats


def init_reward_scaler(num_envs: int) -> RewardScaler:
    return RewardScaler(jnp.zeros((num_envs,), jnp.float32), init_stats())


def discounted_returns(returns, rewards, done, gamma):
    """Scan `R_t = γ R_{t-1} + r_t` over `(T, N)` rewards, resetting `R` to 0 after `done`.

    Returns `(carry (N,), R (T, N))`: `R[t]` includes `r_t`; the carry continues the next rollout.
    """

    def step(acc, inputs):
        reward, done_t = inputs
        acc = gamma * acc + reward
        return jnp.where(done_t, 0.0, acc), acc

    return jax.lax.scan(step, returns, (rewards, done))


def scale_rewards(scaler: RewardScaler, rewards, done, gamma, clip):
    """Update the return statistics with this rollout's `(T, N)` rewards, then divide the rewards
    by the updated `sqrt(var + eps)` and clip to ±clip. Returns `(scaler, scaled_rewards)`."""
    carry, returns = discounted_returns(scaler.returns, rewards, done, gamma)
    stats = update_stats(scaler.stats, returns)
    scaled = jnp.clip(rewards / jnp.sqrt(stats.var + EPS), -clip, clip)
    return RewardScaler(carry, stats), scaled
