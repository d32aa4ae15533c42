"""APPO (issue 21): the objectives "appo"/"appo+kl" against a numpy reference; the learner of
`purejaxppo/appo.py` (lag ring, target network, circular buffer) against PPO and hand checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo.distributions import Categorical
from purejaxppo.loss import OBJECTIVES, ppo_loss
from purejaxppo.config import PPOConfig
from purejaxppo.update import Batch


def reference_appo_loss(logp, behaviour, target, adv, eps, c):
    """RLlib's APPO surrogate written out in numpy (float64)."""
    ratio = np.clip(np.exp(behaviour - target), 0.0, c) * np.exp(logp - behaviour)
    return -np.mean(np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv))


def reference_kl(p_logits, q_logits):
    """KL(p ‖ q) per row of two categorical logit arrays (numpy)."""
    p = np.exp(p_logits - np.log(np.exp(p_logits).sum(-1, keepdims=True)))
    logq = q_logits - np.log(np.exp(q_logits).sum(-1, keepdims=True))
    logp = np.log(p)
    return (p * (logp - logq)).sum(-1)


@pytest.mark.parametrize("objective", ["appo", "appo+kl"])
def test_appo_objectives_match_numpy(objective):
    rng = np.random.default_rng(0)
    n, a = 64, 3
    logits = rng.normal(size=(n, a)).astype(np.float32)  # π_θ
    behaviour_logits = (logits + rng.normal(scale=0.8, size=(n, a))).astype(np.float32)  # μ
    target_logits = (logits + rng.normal(scale=0.8, size=(n, a))).astype(np.float32)
    actions = rng.integers(0, a, n).astype(np.int32)
    adv = rng.normal(size=n).astype(np.float32)
    log_softmax = lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True))  # noqa: E731
    pick = lambda lp: lp[np.arange(n), actions]  # noqa: E731
    behaviour, target = pick(log_softmax(behaviour_logits)), pick(log_softmax(target_logits))
    hp = PPOConfig(clip_eps=0.3, behaviour_ratio_clip=1.5, vf_coef=0.0, ent_coef=0.0).hparams()
    batch = Batch(jnp.zeros((n, 1)), actions, behaviour, jnp.zeros(n), adv, jnp.zeros(n),
                  Categorical(jnp.asarray(target_logits)), target_log_probs=target)
    policy_fn = lambda params, mb: (Categorical(params), jnp.zeros(n))  # noqa: E731
    beta = 0.7
    loss, info = ppo_loss(jnp.asarray(logits), policy_fn, batch, hp, jnp.float32(beta),
                          objective=objective, clip_value=False, normalize_advantages=False)
    expected = reference_appo_loss(pick(log_softmax(logits)).astype(np.float64), behaviour, target,
                                   adv, 0.3, 1.5)
    if objective == "appo+kl":
        expected += beta * reference_kl(target_logits, logits).mean()
    np.testing.assert_allclose(float(info.policy_loss), expected, rtol=1e-5, atol=1e-6)
    assert OBJECTIVES[objective].uses_target
    assert OBJECTIVES[objective].adapts_kl_coef == (objective == "appo+kl")
    assert not any(OBJECTIVES[name].uses_target for name in ("clip", "kl_penalty", "clip+kl_penalty"))


def test_appo_ratio_clips_the_behaviour_weight():
    """clip(μ/π_target, 0, c): a behaviour far more likely than the target is capped at c."""
    from purejaxppo.loss import appo_ratio
    r = appo_ratio(jnp.log(0.5), jnp.log(0.9), jnp.log(0.1), 2.0)
    np.testing.assert_allclose(float(r), 2.0 * 0.5 / 0.9, rtol=1e-6)
    r = appo_ratio(jnp.log(0.5), jnp.log(0.2), jnp.log(0.4), 2.0)
    np.testing.assert_allclose(float(r), 0.5 * 0.5 / 0.2, rtol=1e-6)
