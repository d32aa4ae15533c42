"""Learning on probe environments whose optimal values and actions are known."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probes import (ActionReward, ConstantReward, ConstantRewardTimeoutAsTerminal, DelayedReward,
                    ObservationReward, ProbeParams)
from purejaxppo import PPOConfig, make_env, make_train
from purejaxppo.train import make_network

GAMMA = 0.9
PROBE_CONFIG = PPOConfig(env_name="probe", num_envs=8, num_steps=32, total_timesteps=256 * 100,
                         learning_rate=3e-3, anneal_lr=False, gamma=GAMMA, clip_value=False,
                         hidden_sizes=(16,))


def train_probe(env, max_steps):
    """Train on `env`; return a function obs (B, 1) -> (action probabilities, values)."""
    params = ProbeParams(max_steps_in_episode=max_steps)
    result = jax.jit(make_train(PROBE_CONFIG, env=env, env_params=params))(jax.random.key(0))
    network = make_network(PROBE_CONFIG, make_env("probe", env, params))

    def policy_and_value(obs):
        logits, values = network.apply(result.params, jnp.asarray(obs, jnp.float32))
        return np.asarray(jax.nn.softmax(logits)), np.asarray(values)

    return policy_and_value


def test_constant_reward_value_is_one_over_one_minus_gamma():
    """No termination, only a 20-step time limit: truncation must bootstrap, so V = 1/(1-γ) = 10."""
    _, value = train_probe(ConstantReward(), max_steps=20)(np.ones((1, 1)))
    assert value[0] == pytest.approx(1.0 / (1.0 - GAMMA), abs=0.3)


def test_constant_reward_probe_catches_timeouts_treated_as_terminal():
    """The same probe with the time limit reported as termination learns far less than 10
    (≈ 6, the mean truncated discounted sum), so the test above would fail for such a trainer."""
    _, value = train_probe(ConstantRewardTimeoutAsTerminal(), max_steps=20)(np.ones((1, 1)))
    assert value[0] < 8.0


def test_observation_dependent_reward_value():
    _, values = train_probe(ObservationReward(), max_steps=1)(np.array([[1.0], [-1.0]]))
    np.testing.assert_allclose(values, [1.0, -1.0], atol=0.05)


def test_action_dependent_reward_policy_and_value():
    probs, values = train_probe(ActionReward(), max_steps=1)(np.array([[1.0], [-1.0]]))
    assert probs[0, 1] > 0.95  # observation +1 -> action 1
    assert probs[1, 0] > 0.95  # observation -1 -> action 0
    np.testing.assert_allclose(values, [1.0, 1.0], atol=0.1)


def test_delayed_reward_discounts_through_one_step():
    _, values = train_probe(DelayedReward(), max_steps=5)(np.array([[-1.0], [1.0]]))
    np.testing.assert_allclose(values, [GAMMA, 1.0], atol=0.05)
