"""GAE against an independent plain-numpy loop and hand-computed cases."""

import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import compute_gae


def gae_reference(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Plain-Python GAE, one environment at a time, written from the definition."""
    T, N = rewards.shape
    advantages = np.zeros((T, N))
    for n in range(N):
        running = 0.0
        for t in reversed(range(T)):
            episode_continues = not (terminated[t, n] or truncated[t, n])
            bootstrap = 0.0 if terminated[t, n] else gamma * next_values[t, n]
            delta = rewards[t, n] + bootstrap - values[t, n]
            running = delta + (gamma * lam * running if episode_continues else 0.0)
            advantages[t, n] = running
    return advantages, advantages + values


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_numpy_reference_with_terminated_truncated_and_both(seed):
    rng = np.random.default_rng(seed)
    T, N = 64, 5
    rewards = rng.normal(size=(T, N)).astype(np.float32)
    values = rng.normal(size=(T, N)).astype(np.float32)
    next_values = rng.normal(size=(T, N)).astype(np.float32)
    terminated = rng.random((T, N)) < 0.1
    truncated = rng.random((T, N)) < 0.1
    terminated[3, 0] = truncated[3, 0] = True  # both at once: termination wins
    assert (terminated & ~truncated).any() and (truncated & ~terminated).any()
    assert (terminated & truncated).any()
    adv, ret = compute_gae(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(next_values),
                           jnp.asarray(terminated), jnp.asarray(truncated), 0.99, 0.95)
    ref_adv, ref_ret = gae_reference(rewards, values, next_values, terminated, truncated, 0.99,
                                     0.95)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-5)


def test_hand_computed_truncation_bootstraps_and_termination_does_not():
    """One env, 3 steps, γ = 0.5, λ = 1, rewards 1, values 0.

    step 0 continues; step 1 is truncated with V(final obs) = 4; step 2 is terminated.
      A_2 = 1                                      (terminated: no bootstrap)
      A_1 = 1 + 0.5 * 4 = 3                        (truncated: bootstrap, trace cut)
      A_0 = 1 + 0.5 * V(s_1) + 0.5 * 1 * A_1 - 0 with V(s_1) = next_values[0] = 0 -> 2.5
    """
    rewards = jnp.ones((3, 1))
    values = jnp.zeros((3, 1))
    next_values = jnp.array([[0.0], [4.0], [7.0]])  # 7 must be ignored (terminated)
    terminated = jnp.array([[False], [False], [True]])
    truncated = jnp.array([[False], [True], [False]])
    adv, ret = compute_gae(rewards, values, next_values, terminated, truncated, 0.5, 1.0)
    np.testing.assert_allclose(np.asarray(adv)[:, 0], [2.5, 3.0, 1.0])
    np.testing.assert_allclose(ret, adv)


def test_lambda_zero_is_one_step_td_and_lambda_one_is_discounted_return():
    rewards = jnp.array([[1.0], [2.0], [3.0]])
    values = jnp.array([[0.5], [0.25], [0.125]])
    next_values = jnp.array([[0.25], [0.125], [10.0]])
    no = jnp.zeros((3, 1), bool)
    g = 0.9
    adv0, _ = compute_gae(rewards, values, next_values, no, no, g, 0.0)
    np.testing.assert_allclose(adv0, rewards + g * next_values - values, rtol=1e-6)
    _, ret1 = compute_gae(rewards, values, next_values, no, no, g, 1.0)
    # λ = 1: returns are the discounted sum bootstrapped from the last next value.
    expected0 = 1 + g * 2 + g**2 * 3 + g**3 * 10
    assert float(ret1[0, 0]) == pytest.approx(expected0, rel=1e-6)
