"""Action distributions: what the policy head returns and what rollout, loss and evaluation use.

Each distribution is a pytree (a `NamedTuple` of arrays, batch axis first) with the same methods:

    sample(key)    -> actions as stored in the rollout and scored by `log_prob`
    log_prob(a)    -> (B,) log-density of stored actions
    entropy()      -> (B,)
    mode()         -> the deterministic action (for evaluation)
    kl(other)      -> (B,) KL(self || other), exact
    to_env(a)      -> what `env.step` receives for stored actions `a`

The action **as sampled** is what is stored and scored. Only `to_env` maps it into the
environment's bounds (clipping, or tanh squashing), so PPO's ratio is always computed on the
sample the old policy really drew. Hand-written on purpose (no distrax / TFP dependency).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2.0 * math.pi)


class Categorical(NamedTuple):
    """Categorical over `A` actions from unnormalised `logits (B, A)`; actions are `(B,)` int32."""

    logits: jax.Array

    def _log_probs(self):
        return jax.nn.log_softmax(self.logits)

    def sample(self, key):
        return jax.random.categorical(key, self.logits).astype(jnp.int32)

    def log_prob(self, actions):
        # Selected with a one-hot mask rather than a gather: same values, and its gradient is an
        # elementwise select instead of a scatter (slow on CPU, in the update's inner loop).
        chosen = actions[..., None].astype(jnp.int32) == jnp.arange(self.logits.shape[-1],
                                                                   dtype=jnp.int32)
        return jnp.where(chosen, self._log_probs(), 0.0).sum(-1)

    def entropy(self):
        log_probs = self._log_probs()
        return -(jnp.exp(log_probs) * log_probs).sum(-1)

    def mode(self):
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)

    def kl(self, other: "Categorical"):
        log_p, log_q = self._log_probs(), other._log_probs()
        return (jnp.exp(log_p) * (log_p - log_q)).sum(-1)

    def to_env(self, actions):
        return actions


class DiagGaussian(NamedTuple):
    """Diagonal Gaussian `N(mean (B, D), exp(log_std) (D,) or (B, D))`; actions are `(B, D)`.

    `low`/`high` (shape `(D,)`, may be infinite) are the environment's Box bounds: `to_env` clips
    to them; `sample` and `log_prob` do not (the unclipped sample is what is stored).
    """

    mean: jax.Array
    log_std: jax.Array
    low: jax.Array
    high: jax.Array

    def sample(self, key):
        noise = jax.random.normal(key, self.mean.shape, self.mean.dtype)
        return self.mean + jnp.exp(self.log_std) * noise

    def log_prob(self, actions):
        z = (actions - self.mean) * jnp.exp(-self.log_std)
        return (-0.5 * jnp.square(z) - self.log_std - 0.5 * _LOG_2PI).sum(-1)

    def entropy(self):
        per_dim = self.log_std + 0.5 * (1.0 + _LOG_2PI)
        return jnp.broadcast_to(per_dim, self.mean.shape).sum(-1)

    def mode(self):
        return self.mean

    def kl(self, other: "DiagGaussian"):
        var_ratio = jnp.exp(2.0 * (self.log_std - other.log_std))
        mean_term = jnp.square((self.mean - other.mean) * jnp.exp(-other.log_std))
        per_dim = 0.5 * (var_ratio + mean_term - 1.0) - (self.log_std - other.log_std)
        return jnp.broadcast_to(per_dim, self.mean.shape).sum(-1)

    def to_env(self, actions):
        return jnp.clip(actions, self.low, self.high)


class TanhGaussian(NamedTuple):
    """A diagonal Gaussian over pre-squash values `u`, squashed into finite bounds:
    `a = low + (tanh(u) + 1) / 2 · (high - low)`.

    Stored actions are the raw `u` (Brax's convention: tanh is not inverted, so no atanh(±1)).
    `log_prob(u)` is the density of the squashed action `a` in the environment's units:
    `log N(u) - Σ log |da/du|`, with `da/du = (1 - tanh(u)²) (high - low) / 2` (the
    log-det-Jacobian correction; it does not depend on the parameters, so PPO's ratio is the same
    either way, but the value is a proper log-density). `entropy` is the Gaussian's entropy (the
    squashed distribution has no closed form); `kl` is exact, as KL is invariant under the
    same bijection applied to both distributions. `mode` is the Gaussian's mean, squashed by
    `to_env`.
    """

    mean: jax.Array
    log_std: jax.Array
    low: jax.Array
    high: jax.Array

    def _gaussian(self) -> DiagGaussian:
        return DiagGaussian(self.mean, self.log_std, self.low, self.high)

    def sample(self, key):
        return self._gaussian().sample(key)

    def log_prob(self, actions):
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|.
        log_dtanh = 2.0 * (math.log(2.0) - actions - jax.nn.softplus(-2.0 * actions))
        log_det = log_dtanh + jnp.log(0.5 * (self.high - self.low))
        return self._gaussian().log_prob(actions) - log_det.sum(-1)

    def entropy(self):
        return self._gaussian().entropy()

    def mode(self):
        return self.mean

    def kl(self, other: "TanhGaussian"):
        return self._gaussian().kl(other._gaussian())

    def to_env(self, actions):
        return self.low + 0.5 * (jnp.tanh(actions) + 1.0) * (self.high - self.low)


Distribution = Categorical | DiagGaussian | TanhGaussian


def per_sample(dist: Distribution) -> Distribution:
    """`dist` with every leaf broadcast to the batch shape `(B, k)` of its first leaf (the logits
    or the mean), e.g. a Gaussian's shared `log_std (D,)` and bounds to `(B, D)`. The result can be
    stored per rollout step and flattened or indexed along `B` like any per-sample array, and
    then still behaves as the same distribution."""
    batch = dist[0].shape[:-1]
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (*batch, x.shape[-1])), dist)
