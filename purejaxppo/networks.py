"""Actor-critic network: MLP towers over flattened observations, categorical policy head."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu}


@jax.custom_vjp
def _matmul(x, kernel):
    """`x (B, in) @ kernel (in, out)`, with a backward pass laid out for XLA's fast CPU GEMM."""
    return x @ kernel


def _matmul_fwd(x, kernel):
    return x @ kernel, (x, kernel)


def _matmul_bwd(residuals, grad):
    # The kernel gradient x^T @ grad contracts the batch axis, the *first* axis of x. XLA:CPU
    # hands a dot with a transposed left operand to a slower generic kernel (1.1-2x slower at
    # these sizes, and its result then needs a transposing copy). Materialising x^T first (the
    # barrier keeps XLA from folding the transpose back into the dot) puts it on the fast GEMM.
    # Same value. (A custom_jvp cannot do this: JAX transposes every dot into the slow form.
    # The price of custom_vjp is that forward-mode autodiff through the network is unsupported.)
    x, kernel = residuals
    return grad @ kernel.T, jax.lax.optimization_barrier(x.T) @ grad


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


class Dense(nn.Module):
    """`nn.Dense` (same parameters, names and initialisation) over `(B, in)` inputs."""

    features: int
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
        return _matmul(x, kernel) + bias


def _dense(features: int, scale: float) -> Dense:
    return Dense(features, kernel_init=nn.initializers.orthogonal(scale),
                 bias_init=nn.initializers.zeros)


class MLP(nn.Module):
    hidden_sizes: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, x):
        act = _ACTIVATIONS[self.activation]
        for size in self.hidden_sizes:
            x = act(_dense(size, np.sqrt(2))(x))
        return x


class ActorCritic(nn.Module):
    """Maps observations `(B, *obs_shape)` to `(logits (B, num_actions), value (B,))`.

    Observations of any shape are flattened after the leading batch axis and cast to float32.
    By default actor and critic are separate towers; `shared_trunk=True` gives them one.
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    shared_trunk: bool = False

    @nn.compact
    def __call__(self, obs):
        x = obs.reshape((obs.shape[0], -1)).astype(jnp.float32)
        if self.shared_trunk:
            actor_features = critic_features = MLP(self.hidden_sizes, self.activation)(x)
        else:
            actor_features = MLP(self.hidden_sizes, self.activation, name="actor")(x)
            critic_features = MLP(self.hidden_sizes, self.activation, name="critic")(x)
        logits = _dense(self.num_actions, 0.01)(actor_features)
        value = _dense(1, 1.0)(critic_features)
        return logits, value[:, 0]


def init_params(network: nn.Module, key: jax.Array, obs_shape: tuple[int, ...]):
    """Initialise `network` parameters for observations of `obs_shape`.

    The orthogonal initialiser runs a QR decomposition. Under `jax.vmap` over seeds that becomes a
    batched LAPACK call, which deadlocks jaxlib 0.10.x on CPU (see README, "jax version").
    `sequential_vmap` makes a vmapped init loop over seeds instead: same parameters, no race.
    """

    @jax.custom_batching.sequential_vmap
    def init(k):
        return network.init(k, jnp.zeros((1, *obs_shape), jnp.float32))

    return init(key)
