"""Actor-critic network = torso (MLP or CNN) + named heads; the policy head returns a distribution.

`ActorCritic.apply(params, obs (B, *obs_shape)) -> (distribution, value (B,))` is the whole
policy interface: rollout samples from the distribution and scores the sample, the loss scores
stored actions and takes the entropy, evaluation takes its `mode()`; `distribution.to_env` maps a
stored action into the environment's bounds. Parameter names are fixed and explicit:

    separate towers (default)          shared torso
    actor_torso/..., critic_torso/...  torso/...
    policy_head/{kernel,bias}          policy_head/{kernel,bias}
    value_head/{kernel,bias}           value_head/{kernel,bias}
    log_std (Box actions only)         log_std (Box actions only)
    actor_core/..., critic_core/...    core/...            (gru_size > 0 only)

A recurrent network (`gru_size > 0`) puts a GRU core between torso and heads and is called on
sequences: `apply(params, obs (T, B, ...), carry (B, C), resets (T, B)) -> (distribution,
value (T·B,), carry (B, C))`, outputs flattened time-major. `policy_step` calls either kind for one
step of B environments, `batch_policy` on the update's samples. This module owns the recurrent
carry: its initial value (`initial_carry`), its reset at episode starts (`reset_carry`, used by
the rollout and inside the GRU) and where a stored sequence restarts it (`carry_resets`); the
rest of the package only passes it along (None for a feed-forward network).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.config import ACTIVATIONS, ConfigError, PPOConfig
from purejaxppo.distributions import Categorical, DiagGaussian, TanhGaussian
from purejaxppo.envs import ActionSpace, EnvSpec
from purejaxppo.fast_paths import fast_paths_enabled, matmul

_ACTIVATIONS = {name: getattr(nn, name) for name in ACTIVATIONS}  # config.ACTIVATIONS: flax names
INITIAL_HIDDEN = 0.0  # the recurrent state every episode starts from (each unit)


class Dense(nn.Module):
    """`nn.Dense` (same parameters, names and initialisation); with `fast`, 2-D inputs take the
    CPU-friendly backward pass of `fast_paths.matmul`."""

    features: int
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros
    fast: bool = False

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
        return matmul(x, kernel, self.fast) + bias


def _dense(features: int, scale: float, fast: bool, name: str | None = None) -> Dense:
    return Dense(features, kernel_init=nn.initializers.orthogonal(scale),
                 bias_init=nn.initializers.zeros, fast=fast, name=name)


class MLP(nn.Module):
    """Flattens `(B, ...)` to `(B, features)`, then dense layers of `hidden_sizes`."""

    hidden_sizes: Sequence[int]
    activation: str
    fast: bool = False

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        act = _ACTIVATIONS[self.activation]
        for size in self.hidden_sizes:
            x = act(_dense(size, np.sqrt(2), self.fast)(x))
        return x


class Conv3x3(nn.Module):
    """A 3x3, stride-1, VALID convolution `(B, H, W, C) -> (B, H-2, W-2, features)`.

    Same parameters (`kernel (3, 3, C, features)`, `bias`) and values as `nn.Conv(features,
    (3, 3), padding="VALID")`, computed as one matmul per output row: the three input rows it
    covers, flattened to `3·W·C`, times a banded matrix `(3·W·C, (W-2)·features)` holding the
    kernel at every horizontal offset. Why not `nn.Conv`: under `jax.vmap` over seeds the kernel
    is batched, and JAX turns that into a grouped convolution, which XLA:CPU runs very slowly
    (452 env steps/s on Breakout-MinAtar, 4 seeds); thin im2col matmuls (K = 9·C, N = features)
    were ~9.7k. The banded form has GEMM-friendly shapes (K = 120, N = 128 on MinAtar) for ~3x
    the multiply-adds of a direct convolution (11.3k steps/s in all; the CNN's wider dense layer
    costs the rest). It uses the plain matmul: the fast-path backward measured slower here
    (27.9 vs 24.3 ms per forward+backward of 4 x 1024 samples).
    """

    features: int

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        kernel = self.param("kernel", nn.initializers.orthogonal(np.sqrt(2)),
                            (3, 3, c, self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        shift = np.zeros((3, w, w - 2), np.float32)  # shift[j, col, out_col] = [col == out_col + j]
        for j in range(3):
            shift[j, np.arange(w - 2) + j, np.arange(w - 2)] = 1.0
        band = jnp.einsum("jvy,ijcf->ivcyf", shift, kernel).reshape(3 * w * c,
                                                                     (w - 2) * self.features)
        rows = jnp.stack([x[:, i:i + h - 2] for i in range(3)], axis=2)  # (B, H-2, 3, W, C)
        out = rows.reshape((b * (h - 2), 3 * w * c)) @ band
        return out.reshape((b, h - 2, w - 2, self.features)) + bias


class CNN(nn.Module):
    """`(B, H, W, C)` (or `(B, H, W)`) -> 3x3 convolutions (stride 1, VALID, ReLU) of
    `channels` -> flatten -> `MLP(hidden_sizes)`.

    The MinAtar paper's network (Young & Tian 2019: one 16-channel 3x3 conv, then a dense
    layer), with the dense part taken from `hidden_sizes` like the MLP torso.
    """

    channels: Sequence[int]
    hidden_sizes: Sequence[int]
    activation: str
    fast: bool = False

    @nn.compact
    def __call__(self, x):
        if x.ndim == 3:
            x = x[..., None]
        for c in self.channels:
            x = nn.relu(Conv3x3(c)(x))
        return MLP(self.hidden_sizes, self.activation, self.fast, name="MLP_0")(x)


def _stacked_orthogonal(key, shape, dtype=jnp.float32):
    """`(H, 3H)`: three independent orthogonal `(H, H)` blocks side by side, as flax's `GRUCell`
    initialises its three recurrent kernels `hr`, `hz`, `hn`."""
    size = shape[0]
    blocks = [nn.initializers.orthogonal()(k, (size, size), dtype)
              for k in jax.random.split(key, shape[1] // size)]
    return jnp.concatenate(blocks, axis=1)


def _stacked_lecun(key, shape, dtype=jnp.float32):
    """`(F, 3H)`: three `lecun_normal` `(F, H)` blocks (flax `GRUCell`'s `ir`, `iz`, `in`)."""
    size = shape[1] // 3
    return jnp.concatenate([nn.initializers.lecun_normal()(k, (shape[0], size), dtype)
                            for k in jax.random.split(key, 3)], axis=1)


class GRUCore(nn.Module):
    """flax's `GRUCell` scanned over time with resets: `(carry (B, H), x (T, B, F), resets (T, B))
    -> (carry (B, H), outputs (T, B, H))`.

    The equations and initialisation are `nn.GRUCell`'s, with the gates' kernels stacked:
    `input_kernel (F, 3H)` = [ir | iz | in], `input_bias` = their biases, `recurrent_kernel
    (H, 3H)` = [hr | hz | hn], `recurrent_bias` = hn's bias (tested equal to `nn.GRUCell`):

        r = σ(x W_ir + b_ir + h W_hr),  z = σ(x W_iz + b_iz + h W_hz)
        n = tanh(x W_in + b_in + r ⊙ (h W_hn + b_hn)),  h' = (1 − z) ⊙ n + z ⊙ h

    The input projection of all `T·B` steps is one matmul before the scan, so each step does a
    single `(B, H) @ (H, 3H)`: on CPU the update re-runs `num_steps`-long sequences of a few
    environments, where per-step overhead is what costs (this form measured 2.2x the speed of
    `nn.scan(nn.GRUCell)` on CartPole; unrolling the scan 8x was slower). The hidden state is
    reset to zeros before step t where `resets[t]` (an episode starts there), so a sequence
    with a reset equals two separate sequences.
    """

    size: int
    fast: bool = False

    @nn.compact
    def __call__(self, carry, x, resets):
        num_steps, batch, features = x.shape
        size = self.size
        w_i = self.param("input_kernel", _stacked_lecun, (features, 3 * size), jnp.float32)
        b_i = self.param("input_bias", nn.initializers.zeros, (3 * size,), jnp.float32)
        w_h = self.param("recurrent_kernel", _stacked_orthogonal, (size, 3 * size), jnp.float32)
        b_hn = self.param("recurrent_bias", nn.initializers.zeros, (size,), jnp.float32)
        projected = matmul(x.reshape((num_steps * batch, features)), w_i, self.fast) + b_i
        projected = projected.reshape((num_steps, batch, 3 * size))

        def step(h, inputs):
            x_proj, reset = inputs
            h = reset_carry(h, reset)
            h_proj = matmul(h, w_h, self.fast)
            r = jax.nn.sigmoid(x_proj[:, :size] + h_proj[:, :size])
            z = jax.nn.sigmoid(x_proj[:, size:2 * size] + h_proj[:, size:2 * size])
            n = jnp.tanh(x_proj[:, 2 * size:] + r * (h_proj[:, 2 * size:] + b_hn))
            h = (1.0 - z) * n + z * h
            return h, h

        return jax.lax.scan(step, carry, (projected, resets))


class ActorCritic(nn.Module):
    """Maps observations `(B, *obs_shape)` to `(distribution, value (B,))`.

    The distribution is `Categorical` for a Discrete action space, `DiagGaussian` (actions clipped
    to the bounds by `to_env`) or `TanhGaussian` (`squash=True`) for a Box; the Gaussian's log-std
    is a state-independent parameter `log_std (D,)` starting at `log_std_init`.
    `obs_categories > 0`: observations are integers, one-hot encoded first.
    """

    action_space: ActionSpace
    torso: str = "mlp"  # "mlp" | "cnn"
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    shared_trunk: bool = False  # PPOConfig.shared_trunk
    conv_channels: Sequence[int] = (16,)
    obs_categories: int = 0
    squash: bool = False
    log_std_init: float = 0.0
    fast: bool = False
    gru_size: int = 0

    def _torso(self, name: str) -> nn.Module:
        if self.torso == "cnn":
            return CNN(self.conv_channels, self.hidden_sizes, self.activation, self.fast, name=name)
        return MLP(self.hidden_sizes, self.activation, self.fast, name=name)

    @nn.compact
    def __call__(self, obs, carry=None, resets=None):
        if self.gru_size:
            num_steps, batch = obs.shape[:2]
            obs = obs.reshape((num_steps * batch, *obs.shape[2:]))
        if self.obs_categories:
            x = jax.nn.one_hot(obs, self.obs_categories, dtype=jnp.float32)
        else:
            x = obs.astype(jnp.float32)
        if self.shared_trunk:
            actor_features = critic_features = self._torso("torso")(x)
        else:
            actor_features = self._torso("actor_torso")(x)
            critic_features = self._torso("critic_torso")(x)
        if self.gru_size:
            def core(name, features, carry):
                carry, out = GRUCore(self.gru_size, fast=self.fast, name=name)(
                    carry, features.reshape((num_steps, batch, -1)), resets)
                return out.reshape((num_steps * batch, self.gru_size)), carry
            if self.shared_trunk:
                actor_features, carry = core("core", actor_features, carry)
                critic_features = actor_features
            else:
                actor_carry, critic_carry = jnp.split(carry, 2, axis=-1)
                actor_features, actor_carry = core("actor_core", actor_features, actor_carry)
                critic_features, critic_carry = core("critic_core", critic_features, critic_carry)
                carry = jnp.concatenate([actor_carry, critic_carry], axis=-1)
            return (*self._heads(actor_features, critic_features), carry)
        return self._heads(actor_features, critic_features)

    def _heads(self, actor_features, critic_features):
        value = _dense(1, 1.0, self.fast, name="value_head")(critic_features)[:, 0]
        space = self.action_space
        if space.discrete:
            logits = _dense(space.num_actions, 0.01, self.fast, name="policy_head")(actor_features)
            return Categorical(logits), value
        mean = _dense(space.dim, 0.01, self.fast, name="policy_head")(actor_features)
        log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (space.dim,),
                             jnp.float32)
        low = jnp.asarray(space.low, jnp.float32)
        high = jnp.asarray(space.high, jnp.float32)
        dist_type = TanhGaussian if self.squash else DiagGaussian
        return dist_type(mean, log_std, low, high), value


def carry_size(network: ActorCritic) -> int:
    """Width of the recurrent state: one GRU per tower (`2·gru_size`, or `gru_size` with a
    shared torso); 0 for a feed-forward network."""
    return network.gru_size * (1 if network.shared_trunk else 2)


def initial_carry(network: ActorCritic, batch: int):
    """The hidden state an episode starts from, `(batch, carry_size)` of `INITIAL_HIDDEN`; None
    if feed-forward."""
    if not network.gru_size:
        return None
    return jnp.full((batch, carry_size(network)), INITIAL_HIDDEN, jnp.float32)


def reset_carry(carry, reset):
    """`carry (B, C)` with the rows where `reset (B,)` back at the initial state (None stays
    None): the next step starts a new episode there."""
    if carry is None:
        return None
    return jnp.where(reset[:, None], jnp.full_like(carry, INITIAL_HIDDEN), carry)


def carry_resets(done, carry):
    """Where a stored rollout's hidden state restarts, `(T, B)` bool: the step after every
    `done (T, B)` (terminated or truncated); step 0 continues from the rollout's start `carry`.
    None for a feed-forward network (`carry` None)."""
    if carry is None:
        return None
    return jnp.concatenate([jnp.zeros_like(done[:1]), done[:-1]])


def policy_step(network: ActorCritic, params, obs, carry):
    """One step of `B` environments: `obs (B, ...)` and `carry` (None if feed-forward) ->
    `(distribution, value (B,), carry)`. Resets are the caller's: pass the initial carry for
    environments whose episode starts at `obs`."""
    if not network.gru_size:
        return (*network.apply(params, obs), None)
    return network.apply(params, obs[None], carry, jnp.zeros((1, obs.shape[0]), bool))


def batch_policy(network: ActorCritic, num_steps: int):
    """`policy_fn(trained_params, samples) -> (distribution, values)` over a flat sample axis,
    as `loss.ppo_loss` calls it. A recurrent network re-runs each sequence from `samples.carry`,
    resetting its hidden state at `samples.resets` (samples are time-major, `num_steps` long)."""
    if not network.gru_size:
        return lambda params, samples: network.apply(params, samples.obs)

    def sequences(params, samples):
        obs = samples.obs.reshape((num_steps, -1, *samples.obs.shape[1:]))
        resets = samples.resets.reshape((num_steps, -1))
        dist, values, _ = network.apply(params, obs, samples.carry, resets)
        return dist, values

    return sequences


def network_kind(config: PPOConfig, spec: EnvSpec) -> str:
    """The torso `config.network` asks for: "auto" is the CNN for rank-3 observations (image-like,
    `(H, W, C)`) and the MLP otherwise. ConfigError for a CNN on observations it cannot take."""
    if config.network == "auto":
        return "cnn" if len(spec.obs_shape) == 3 and not spec.obs_categories else "mlp"
    if config.network == "cnn" and (spec.obs_categories or len(spec.obs_shape) not in (2, 3)):
        shape = "a Discrete observation" if spec.obs_categories else f"shape {spec.obs_shape}"
        raise ConfigError(f"PPOConfig.network: 'cnn' needs image-like observations (H, W, C) or "
                          f"(H, W); {config.env_name!r} has {shape}. Use 'mlp' or 'auto'")
    return config.network


def make_network(config: PPOConfig, spec: EnvSpec) -> ActorCritic:
    """The `ActorCritic` for `config` on `spec` (torso chosen by `network_kind`, CPU fast paths
    per `config.fast_paths`)."""
    return ActorCritic(spec.action_space, network_kind(config, spec), config.hidden_sizes,
                       config.activation, config.shared_trunk, config.conv_channels,
                       spec.obs_categories, config.action_bounds == "squash",
                       config.log_std_init, fast_paths_enabled(config.fast_paths),
                       config.gru_size)


def init_params(network: ActorCritic, key: jax.Array, obs_shape: tuple[int, ...]):
    """Initialise `network` parameters for observations of `obs_shape`.

    The orthogonal initialiser runs a QR decomposition. Under `jax.vmap` over seeds that becomes a
    batched LAPACK call, which deadlocks jaxlib 0.10.x on CPU (see README, "jax version").
    `sequential_vmap` makes a vmapped init loop over seeds instead: same parameters, no race.
    """
    dtype = jnp.int32 if network.obs_categories else jnp.float32

    @jax.custom_batching.sequential_vmap
    def init(k):
        if network.gru_size:
            return network.init(k, jnp.zeros((1, 1, *obs_shape), dtype), initial_carry(network, 1),
                                jnp.zeros((1, 1), bool))
        return network.init(k, jnp.zeros((1, *obs_shape), dtype))

    return init(key)
