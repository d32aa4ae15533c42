"""PPO losses against hand-computed cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo.loss import normalize, policy_loss, value_loss


def test_policy_loss_hand_computed_inside_and_outside_clip_both_signs():
    """ε = 0.2. Ratios 1.1 (inside), 1.5 (above), 0.5 (below), each with A = +1 and A = -1.

    per-sample loss = max(-A ρ, -A clip(ρ, 0.8, 1.2)):
      A=+1: ρ=1.1 -> -1.1 ; ρ=1.5 -> max(-1.5, -1.2) = -1.2 ; ρ=0.5 -> max(-0.5, -0.8) = -0.5
      A=-1: ρ=1.1 ->  1.1 ; ρ=1.5 -> max( 1.5,  1.2) =  1.5 ; ρ=0.5 -> max( 0.5,  0.8) =  0.8
    mean = (-1.1 - 1.2 - 0.5 + 1.1 + 1.5 + 0.8) / 6 = 0.6 / 6 = 0.1
    """
    ratios = np.array([1.1, 1.5, 0.5, 1.1, 1.5, 0.5])
    advantages = jnp.array([1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
    old_log_prob = jnp.zeros(6)
    log_prob = jnp.log(jnp.asarray(ratios))
    loss, approx_kl, clip_fraction = policy_loss(log_prob, old_log_prob, advantages, 0.2)
    assert float(loss) == pytest.approx(0.1, abs=1e-6)
    assert float(clip_fraction) == pytest.approx(4 / 6)
    expected_kl = np.mean((ratios - 1) - np.log(ratios))
    assert float(approx_kl) == pytest.approx(expected_kl, rel=1e-5)


def test_policy_gradient_is_zero_where_clipped_and_nonzero_inside():
    advantages = jnp.array([1.0, 1.0, -1.0, -1.0])
    log_ratio = jnp.log(jnp.array([1.5, 1.1, 0.5, 1.1]))
    grad = jax.grad(lambda lp: policy_loss(lp, jnp.zeros(4), advantages, 0.2)[0])(log_ratio)
    # d/dlogρ of -A ρ / 4 = -A ρ / 4 inside the clip range, 0 where the clipped term is active.
    np.testing.assert_allclose(grad, [0.0, -1.1 / 4, 0.0, 1.1 / 4], rtol=1e-6)


def test_value_loss_unclipped_and_clipped():
    values = jnp.array([1.0, 3.0])
    old_values = jnp.array([0.0, 2.9])
    returns = jnp.array([2.0, 2.0])
    # unclipped: 0.5 * mean((1-2)^2, (3-2)^2) = 0.5
    assert float(value_loss(values, old_values, returns, 0.5, clip_value=False)) == pytest.approx(0.5)
    # clipped values: 0 + clip(1, ±0.5) = 0.5 -> error 2.25 (> 1); 2.9 + clip(0.1) = 3.0 -> 1.0
    # max per sample: (2.25, 1.0); 0.5 * mean = 0.8125
    assert float(value_loss(values, old_values, returns, 0.5, clip_value=True)) == pytest.approx(0.8125)


def test_normalize():
    x = jnp.array([1.0, 2.0, 3.0, 4.0])
    y = np.asarray(normalize(x))
    assert y.mean() == pytest.approx(0.0, abs=1e-6)
    assert y.std() == pytest.approx(1.0, abs=1e-6)
