"""Action distributions against independent references: scipy.stats, numpy formulas, numerical
integration and sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from purejaxppo.distributions import Categorical, DiagGaussian, TanhGaussian

RNG = np.random.default_rng(0)


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ---------------------------------------------------------------------------------- categorical


def test_categorical_log_prob_entropy_kl_mode_against_numpy():
    logits = RNG.normal(size=(5, 4)).astype(np.float32)
    other = RNG.normal(size=(5, 4)).astype(np.float32)
    actions = np.array([0, 3, 1, 2, 3])
    p, q = _softmax(logits.astype(np.float64)), _softmax(other.astype(np.float64))
    dist = Categorical(jnp.asarray(logits))
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(actions)),
                               np.log(p[np.arange(5), actions]), rtol=1e-5)
    np.testing.assert_allclose(dist.entropy(), [stats.entropy(row) for row in p], rtol=1e-5)
    np.testing.assert_allclose(dist.kl(Categorical(jnp.asarray(other))),
                               [stats.entropy(a, b) for a, b in zip(p, q)], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(dist.mode(), logits.argmax(-1))
    np.testing.assert_array_equal(dist.to_env(jnp.asarray(actions)), actions)


def test_categorical_hand_computed_case():
    dist = Categorical(jnp.log(jnp.array([[0.2, 0.8], [0.5, 0.5]])))
    np.testing.assert_allclose(dist.log_prob(jnp.array([1, 0])), np.log([0.8, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(dist.entropy(),
                               [-(0.2 * np.log(0.2) + 0.8 * np.log(0.8)), np.log(2)], rtol=1e-6)


def test_categorical_sampling_frequencies():
    probs = np.array([0.1, 0.6, 0.3])
    dist = Categorical(jnp.log(jnp.tile(jnp.asarray(probs, jnp.float32), (20_000, 1))))
    counts = np.bincount(np.asarray(dist.sample(jax.random.key(0))), minlength=3) / 20_000
    np.testing.assert_allclose(counts, probs, atol=0.015)  # binomial sd <= 0.0035


# ----------------------------------------------------------------------------- diagonal Gaussian


def _gaussian(batch=6, dim=3, seed=1):
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=(batch, dim)).astype(np.float32)
    log_std = rng.normal(scale=0.5, size=(dim,)).astype(np.float32)
    return mean, log_std


def test_gaussian_log_prob_and_entropy_against_scipy():
    mean, log_std = _gaussian()
    actions = RNG.normal(size=mean.shape).astype(np.float32) * 2
    inf = jnp.full((3,), jnp.inf)
    dist = DiagGaussian(jnp.asarray(mean), jnp.asarray(log_std), -inf, inf)
    expected = stats.norm.logpdf(actions, mean, np.exp(log_std)).sum(-1)
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(actions)), expected, rtol=1e-5)
    expected_entropy = stats.norm.entropy(mean, np.broadcast_to(np.exp(log_std), mean.shape))
    np.testing.assert_allclose(dist.entropy(), expected_entropy.sum(-1), rtol=1e-5)
    np.testing.assert_array_equal(dist.mode(), mean)


def test_gaussian_kl_against_numerical_integration_and_closed_form():
    """1-D: KL(p || q) = ∫ p log(p / q), by quadrature; 3-D: the sum of per-dimension KLs."""
    p = DiagGaussian(jnp.array([[0.3]]), jnp.array([-0.2]), -jnp.inf, jnp.inf)
    q = DiagGaussian(jnp.array([[-0.5]]), jnp.array([0.4]), -jnp.inf, jnp.inf)
    sp, sq = np.exp(-0.2), np.exp(0.4)
    integrand = lambda x: stats.norm.pdf(x, 0.3, sp) * (  # noqa: E731
        stats.norm.logpdf(x, 0.3, sp) - stats.norm.logpdf(x, -0.5, sq))
    expected, _ = integrate.quad(integrand, -20, 20)
    assert float(p.kl(q)[0]) == pytest.approx(expected, rel=1e-5)

    (m1, s1), (m2, s2) = _gaussian(seed=2), _gaussian(seed=3)
    a = DiagGaussian(jnp.asarray(m1), jnp.asarray(s1), -jnp.inf, jnp.inf)
    b = DiagGaussian(jnp.asarray(m2), jnp.asarray(s2), -jnp.inf, jnp.inf)
    v1, v2 = np.exp(2.0 * s1), np.exp(2.0 * s2)
    closed = 0.5 * (np.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1.0)
    np.testing.assert_allclose(a.kl(b), closed.sum(-1), rtol=1e-4)
    np.testing.assert_allclose(a.kl(a), 0.0, atol=1e-6)


def test_gaussian_sampling_mean_and_std():
    mean = jnp.tile(jnp.array([[1.5, -0.5]]), (40_000, 1))
    log_std = jnp.log(jnp.array([0.3, 2.0]))
    samples = np.asarray(DiagGaussian(mean, log_std, -jnp.inf, jnp.inf).sample(jax.random.key(3)))
    np.testing.assert_allclose(samples.mean(0), [1.5, -0.5], atol=0.03)
    np.testing.assert_allclose(samples.std(0), [0.3, 2.0], rtol=0.02)


def test_gaussian_samples_are_stored_unclipped_and_only_the_env_action_is_clipped():
    mean = jnp.full((10_000, 1), 1.9)
    dist = DiagGaussian(mean, jnp.zeros(1), jnp.array([-2.0]), jnp.array([2.0]))
    samples = np.asarray(dist.sample(jax.random.key(0)))
    assert samples.max() > 3.0  # the sample is not clipped ...
    env_actions = np.asarray(dist.to_env(jnp.asarray(samples)))
    assert env_actions.max() == 2.0 and env_actions.min() >= -2.0  # ... what env.step gets is
    np.testing.assert_array_equal(env_actions[np.abs(samples) < 2], samples[np.abs(samples) < 2])


# -------------------------------------------------------------------------- tanh-squashed Gaussian


def _squashed(mean=0.4, log_std=-0.3, low=-2.0, high=1.0):
    return TanhGaussian(jnp.array([[mean]]), jnp.array([log_std]), jnp.array([low]),
                        jnp.array([high]))


def _u_of_a(a, low, high):
    return np.arctanh(2.0 * (a - low) / (high - low) - 1.0)


def test_tanh_gaussian_log_prob_is_a_density_over_the_bounds():
    """∫_low^high exp(log_prob(u(a))) da = 1: log_prob is the density of the squashed action."""
    low, high = -2.0, 1.0
    dist = _squashed(low=low, high=high)
    density = jax.jit(lambda u: jnp.exp(dist.log_prob(u.reshape(1, 1))))

    def pdf(a):
        return float(density(jnp.array([_u_of_a(a, low, high)], jnp.float32))[0])

    total, _ = integrate.quad(pdf, low + 1e-9, high - 1e-9, limit=200)
    assert total == pytest.approx(1.0, abs=1e-3)


def test_tanh_gaussian_log_prob_change_of_variables():
    """log p_a(a) = log N(u; μ, σ) - log |da/du|, da/du from finite differences of to_env."""
    low, high, mean, log_std = -2.0, 1.0, 0.4, -0.3
    dist = _squashed(mean, log_std, low, high)
    u = np.linspace(-3.0, 3.0, 13)
    h = 1e-4
    to_env = lambda x: np.asarray(dist.to_env(jnp.asarray(x, jnp.float32)), np.float64)  # noqa
    da_du = (low + 0.5 * (np.tanh(u + h) + 1) * (high - low)
             - low - 0.5 * (np.tanh(u - h) + 1) * (high - low)) / (2 * h)
    expected = stats.norm.logpdf(u, mean, np.exp(log_std)) - np.log(da_du)
    got = np.asarray(dist.log_prob(jnp.asarray(u, jnp.float32)[:, None]))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # to_env really is the squashing map used above, and lands inside the bounds.
    np.testing.assert_allclose(to_env(u), low + 0.5 * (np.tanh(u) + 1) * (high - low), atol=1e-6)
    assert np.all(to_env(np.array([-30.0, 30.0])) >= low)
    assert np.all(to_env(np.array([-30.0, 30.0])) <= high)


def test_tanh_gaussian_log_prob_stays_finite_far_in_the_tails():
    dist = _squashed()
    assert np.all(np.isfinite(np.asarray(dist.log_prob(jnp.array([[-40.0], [40.0]])))))


def test_tanh_gaussian_env_action_mean_matches_integral_and_kl_is_the_gaussians():
    low, high, mean, log_std = -1.0, 3.0, 0.2, 0.1
    dist = TanhGaussian(jnp.full((50_000, 1), mean), jnp.array([log_std]), jnp.array([low]),
                        jnp.array([high]))
    env_actions = np.asarray(dist.to_env(dist.sample(jax.random.key(5))))
    expected, _ = integrate.quad(lambda u: stats.norm.pdf(u, mean, np.exp(log_std))
                                 * (low + 0.5 * (np.tanh(u) + 1) * (high - low)), -15, 15)
    assert env_actions.mean() == pytest.approx(expected, abs=0.02)
    other = dist._replace(mean=dist.mean + 0.5, log_std=dist.log_std - 0.2)
    gaussian = DiagGaussian(dist.mean, dist.log_std, dist.low, dist.high)
    np.testing.assert_allclose(dist.kl(other), gaussian.kl(DiagGaussian(*other)), rtol=1e-6)
    np.testing.assert_array_equal(dist.entropy(), gaussian.entropy())


def test_distributions_work_under_vmap_and_jit():
    """Distributions are pytrees: they pass through jit and vmap like any array tuple."""

    @jax.jit
    def f(mean, key):
        dist = DiagGaussian(mean, jnp.zeros(2), -jnp.ones(2), jnp.ones(2))
        a = dist.sample(key)
        return dist.log_prob(a), dist.to_env(a)

    means = jnp.zeros((3, 4, 2))
    log_probs, actions = jax.vmap(f)(means, jax.random.split(jax.random.key(0), 3))
    assert log_probs.shape == (3, 4) and actions.shape == (3, 4, 2)
