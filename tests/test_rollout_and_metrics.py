"""Rollout bookkeeping (time limits, final observations, episode stats) and metric reductions."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probes import ConstantReward, DelayedReward, ProbeParams
from purejaxppo import PPOConfig, make_env, make_train
from purejaxppo.metrics import Metrics, explained_variance, final_return, finished_episodes
from purejaxppo.networks import ActorCritic, init_params, policy_step
from purejaxppo.rollout import collect_rollout, reset_envs


def rollout(env, params, num_steps, num_envs=2):
    spec = make_env("probe", env, params)
    network = ActorCritic(spec.action_space, hidden_sizes=(8,))
    net_params = init_params(network, jax.random.key(0), spec.obs_shape)
    runner = reset_envs(spec.env, spec.env_params, jax.random.key(1), num_envs)
    return collect_rollout(runner, net_params, functools.partial(policy_step, network), spec.env,
                           spec.env_params, num_steps)


def test_time_limit_is_truncated_not_terminated_and_episode_stats_are_exact():
    runner, traj = rollout(ConstantReward(), ProbeParams(max_steps_in_episode=3), num_steps=7)
    truncated = np.asarray(traj.truncated)[:, 0]
    np.testing.assert_array_equal(truncated, [0, 0, 1, 0, 0, 1, 0])
    assert not np.asarray(traj.terminated).any()
    np.testing.assert_array_equal(np.asarray(traj.episode_return)[:, 0], [0, 0, 3, 0, 0, 3, 0])
    np.testing.assert_array_equal(np.asarray(traj.episode_length)[:, 0], [0, 0, 3, 0, 0, 3, 0])
    # The episode in progress (one step into the third) is carried over, not dropped.
    np.testing.assert_array_equal(np.asarray(runner.episode.returns), [1.0, 1.0])
    np.testing.assert_array_equal(np.asarray(runner.episode.lengths), [1, 1])


def test_final_obs_is_the_pre_reset_observation():
    _, traj = rollout(DelayedReward(), ProbeParams(max_steps_in_episode=5), num_steps=4)
    obs = np.asarray(traj.obs)[:, 0, 0]
    final_obs = np.asarray(traj.final_obs)[:, 0, 0]
    np.testing.assert_array_equal(obs, [-1, 1, -1, 1])  # auto-reset after every second step
    np.testing.assert_array_equal(final_obs, [1, 1, 1, 1])  # true next state, also at resets
    np.testing.assert_array_equal(np.asarray(traj.terminated)[:, 0], [0, 1, 0, 1])


def test_finished_episodes_are_masked_not_zero_filled():
    episode_return = jnp.array([[0.0, 0.0], [10.0, 0.0], [0.0, 20.0]])
    episode_length = jnp.array([[0, 0], [5, 0], [0, 9]])
    done = jnp.array([[False, False], [True, False], [False, True]])
    mean_return, mean_length, count = finished_episodes(episode_return, episode_length, done)
    assert float(mean_return) == 15.0 and float(mean_length) == 7.0 and int(count) == 2
    nothing = finished_episodes(episode_return, episode_length, jnp.zeros_like(done))
    assert np.isnan(float(nothing[0])) and np.isnan(float(nothing[1])) and int(nothing[2]) == 0


def test_final_return_weights_by_episode_count_and_skips_empty_updates():
    n = 4
    fields = {name: np.zeros((2, n)) for name in Metrics._fields}
    fields["episode_return"] = np.array([[1.0, np.nan, 3.0, 5.0], [np.nan] * 4])
    fields["num_episodes"] = np.array([[1, 0, 1, 3], [0] * 4])
    out = final_return(Metrics(**fields), window=3)
    assert out[0] == pytest.approx((3.0 * 1 + 5.0 * 3) / 4)
    assert np.isnan(out[1])


def test_explained_variance_matches_numpy():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=100)
    predictions = targets + 0.3 * rng.normal(size=100)
    expected = 1 - np.var(targets - predictions) / np.var(targets)
    assert float(explained_variance(jnp.asarray(predictions), jnp.asarray(targets))) == \
        pytest.approx(expected, rel=1e-5)
    assert np.isnan(float(explained_variance(jnp.ones(3), jnp.ones(3))))


def test_training_metrics_count_every_finished_episode():
    """Probe with 3-step episodes: each update of 2 envs x 6 steps finishes exactly 4 episodes
    of return 3 and length 3 (no partial episode is counted)."""
    config = PPOConfig(env_name="probe", num_envs=2, num_steps=6, total_timesteps=2 * 6 * 3,
                       num_minibatches=2)
    result = jax.jit(make_train(config, env=ConstantReward(),
                                env_params=ProbeParams(max_steps_in_episode=3)))(jax.random.key(0))
    np.testing.assert_array_equal(result.metrics.num_episodes, [4, 4, 4])
    np.testing.assert_array_equal(result.metrics.episode_return, [3.0, 3.0, 3.0])
    np.testing.assert_array_equal(result.metrics.episode_length, [3.0, 3.0, 3.0])
