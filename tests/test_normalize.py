"""Normalisation: running statistics against numpy, the reward scaler against a plain loop, and the
train-state plumbing (per-run statistics, normalised bootstrap, raw episode returns)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxppo.train as train_module
from probes import OffsetConstantReward, ProbeParams
from purejaxppo import PPOConfig, make_env, make_train
from purejaxppo.normalize import (discounted_returns, init_reward_scaler, init_stats,
                                  normalize_obs, scale_rewards, update_stats)
from purejaxppo.train import make_network


def test_running_stats_equal_numpy_over_the_same_stream():
    """Batches of different sizes and scales, merged one by one (Chan et al.'s parallel update),
    give numpy's mean and population variance of everything seen."""
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=3.0, scale=s, size=(n, 2, 3)) for n, s in
               [(7, 1.0), (128, 5.0), (1, 0.1), (40, 2.0)]]
    stats = init_stats((2, 3))
    seen = []
    for batch in batches:
        stats = update_stats(stats, jnp.asarray(batch, jnp.float32))
        seen.append(batch)
        everything = np.concatenate(seen)
        np.testing.assert_allclose(stats.mean, everything.mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(stats.var, everything.var(0), rtol=1e-4)
        assert float(stats.count) == len(everything)


def test_update_stats_treats_all_leading_axes_as_samples():
    rng = np.random.default_rng(1)
    rollout = rng.normal(size=(16, 4, 5)).astype(np.float32)  # (num_steps, num_envs, obs)
    stats = update_stats(init_stats((5,)), jnp.asarray(rollout))
    flat = rollout.reshape(-1, 5)
    np.testing.assert_allclose(stats.mean, flat.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.var, flat.var(0), rtol=1e-4)


def test_initial_stats_normalise_to_the_identity_and_clip():
    obs = jnp.array([[0.5, -3.0, 20.0]])
    np.testing.assert_allclose(normalize_obs(obs, init_stats((3,)), 10.0), [[0.5, -3.0, 10.0]],
                               rtol=1e-6)
    stats = update_stats(init_stats((3,)), jnp.array([[1.0, 1.0, 1.0], [3.0, 5.0, 1.0]]))
    # mean (2, 3, 1), var (1, 4, 0): (x - mean) / sqrt(var + 1e-8), then clipped to ±5
    np.testing.assert_allclose(normalize_obs(jnp.array([[4.0, 1.0, 2.0]]), stats, 5.0),
                               [[2.0, -1.0, 5.0]], rtol=1e-5)


def test_discounted_returns_reset_after_episode_ends():
    rewards = np.array([[1.0, 2.0], [1.0, 0.0], [1.0, 4.0], [1.0, 1.0]], np.float32)
    done = np.array([[0, 0], [1, 0], [0, 1], [0, 0]], bool)
    gamma, start = 0.5, np.array([10.0, 0.0], np.float32)
    expected, acc = np.zeros_like(rewards), start.copy()
    for t in range(4):  # the scheme of baselines' VecNormalize
        acc = gamma * acc + rewards[t]
        expected[t] = acc
        acc[done[t]] = 0.0
    carry, returns = discounted_returns(jnp.asarray(start), jnp.asarray(rewards),
                                        jnp.asarray(done), gamma)
    np.testing.assert_allclose(returns, expected, rtol=1e-6)
    np.testing.assert_allclose(carry, acc, rtol=1e-6)


def test_scale_rewards_divides_by_the_std_of_discounted_returns_and_clips():
    rng = np.random.default_rng(2)
    rewards = rng.normal(loc=5.0, size=(32, 3)).astype(np.float32)
    done = rng.random((32, 3)) < 0.1
    scaler, scaled = scale_rewards(init_reward_scaler(3), jnp.asarray(rewards),
                                   jnp.asarray(done), 0.9, 100.0)
    _, returns = discounted_returns(jnp.zeros(3), jnp.asarray(rewards), jnp.asarray(done), 0.9)
    std = np.asarray(returns).std()
    np.testing.assert_allclose(scaled, rewards / std, rtol=1e-4)
    assert float(scaler.stats.count) == 32 * 3
    _, clipped = scale_rewards(init_reward_scaler(3), jnp.asarray(rewards), jnp.asarray(done),
                               0.9, 0.1)
    assert float(jnp.max(jnp.abs(clipped))) == pytest.approx(0.1)


def _probe_config(**changes):
    return PPOConfig(env_name="probe", num_envs=8, num_steps=32, total_timesteps=256 * 100,
                     learning_rate=3e-3, anneal_lr=False, gamma=0.9, clip_value=False,
                     hidden_sizes=(16,), normalize_obs=True, **changes)


def _value_after_training(monkeypatch=None, raw_bootstrap=False):
    """Train on OffsetConstantReward (obs 100 ± 1, reward 1, 20-step limit); return the value of
    both observations and of the same observations unnormalised."""
    config = _probe_config()
    env, params = OffsetConstantReward(), ProbeParams(max_steps_in_episode=20)
    if raw_bootstrap:  # the known bug: final_observation bypasses the normalisation
        real = train_module.observe
        batch = config.num_steps * config.num_envs
        monkeypatch.setattr(train_module, "observe",
                            lambda obs, stats, cfg: obs if obs.shape[0] == batch
                            else real(obs, stats, cfg))
    result = jax.jit(make_train(config, env=env, env_params=params))(jax.random.key(0))
    network = make_network(config, make_env("probe", env, params))
    obs = jnp.array([[99.0], [101.0]])
    value = network.apply(result.params, normalize_obs(obs, result.obs_stats, config.obs_clip))[1]
    raw_value = network.apply(result.params, obs)[1]
    return np.asarray(value), np.asarray(raw_value), result


def test_bootstrap_uses_normalised_final_observation(monkeypatch):
    """V = 1 / (1 - γ) = 10 is learned only with the normalised bootstrap; a trainer feeding the
    raw final observation to the value network bootstraps from a value ~100 std away and learns
    something else (checked by running exactly that bug)."""
    value, raw_value, result = _value_after_training()
    np.testing.assert_allclose(value, [10.0, 10.0], atol=0.5)
    np.testing.assert_allclose(result.obs_stats.mean, [100.0], atol=0.2)
    assert np.all(np.abs(raw_value - 10.0) > 2.0)  # what the bug would bootstrap from
    buggy, _, _ = _value_after_training(monkeypatch, raw_bootstrap=True)
    assert np.all(np.abs(buggy - 10.0) > 1.0), buggy


def test_normalised_runs_report_raw_returns_and_keep_their_own_statistics():
    """Reward scaling changes what PPO learns from, not the reported episode returns; under vmap
    each seed has its own statistics (equal to its separate run)."""
    config = PPOConfig(env_name="Pendulum-v1", num_envs=4, num_steps=50, total_timesteps=4 * 50 * 6,
                       normalize_obs=True, normalize_reward=True)
    keys = jax.random.split(jax.random.key(0), 3)
    train = make_train(config)
    batched = jax.jit(jax.vmap(train))(keys)
    returns = np.asarray(batched.metrics.episode_return)
    finished = returns[np.isfinite(returns)]
    assert finished.size and np.all(finished < -100)  # Pendulum's raw scale (~-1000 .. -100)
    assert not np.allclose(batched.obs_stats.mean[0], batched.obs_stats.mean[1])
    single = jax.jit(train)(keys[1])
    np.testing.assert_allclose(batched.obs_stats.mean[1], single.obs_stats.mean, rtol=1e-5)
    np.testing.assert_allclose(batched.obs_stats.var[1], single.obs_stats.var, rtol=1e-4)
    assert float(single.obs_stats.count) == config.env_steps_per_run  # every rollout observation
