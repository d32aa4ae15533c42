"""Environment lookup and checks: gymnax environments by name, or any gymnax-style object."""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from purejaxppo.config import ConfigError, PPOConfig

# Environments that cannot be made here: MNISTBandit downloads its data set at make() time.
NEEDS_NETWORK = ("MNISTBandit-bsuite",)


class ActionSpace(NamedTuple):
    """What the policy head must produce.

    Discrete: `num_actions > 0`, `shape == ()`. Box: `num_actions == 0`, `shape` the action shape,
    `low`/`high` the bounds per flattened dimension (floats, possibly infinite).
    """

    num_actions: int
    shape: tuple[int, ...] = ()
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    @property
    def discrete(self) -> bool:
        return self.num_actions > 0

    @property
    def dim(self) -> int:
        """Flat action dimension of a Box space (1 for Discrete)."""
        return int(np.prod(self.shape, dtype=int)) if self.shape else 1

    def describe(self) -> str:
        if self.discrete:
            return f"Discrete({self.num_actions})"
        low, high = np.asarray(self.low), np.asarray(self.high)
        bounds = (f"[{low[0]:g}, {high[0]:g}]" if np.all(low == low[0]) and np.all(high == high[0])
                  else f"low={self.low}, high={self.high}")
        return f"Box{self.shape} in {bounds}"


class EnvSpec(NamedTuple):
    """A ready environment: the gymnax env object, its params, and what the network needs.

    `obs_categories > 0` marks a Discrete observation space (integer observations of shape `()`,
    one-hot encoded by the network); 0 for Box observations.
    """

    env: Any
    env_params: Any
    action_space: ActionSpace
    obs_shape: tuple[int, ...]
    obs_categories: int = 0


def available_envs() -> tuple[str, ...]:
    """Names accepted as `PPOConfig.env_name`."""
    return tuple(gymnax.registered_envs)


def _action_space(env_name: str, space) -> ActionSpace:
    if isinstance(space, spaces.Discrete):
        return ActionSpace(int(space.n))
    if isinstance(space, spaces.Box):
        shape = tuple(int(d) for d in space.shape)
        if len(shape) != 1 or shape[0] == 0:
            raise ConfigError(f"PPOConfig.env_name: {env_name!r} has a Box action space of shape "
                              f"{shape}; purejaxppo handles Box actions of shape (D,), D >= 1")
        low = np.broadcast_to(np.asarray(space.low, np.float64), shape).reshape(-1)
        high = np.broadcast_to(np.asarray(space.high, np.float64), shape).reshape(-1)
        if np.any(np.isnan(low)) or np.any(np.isnan(high)) or np.any(low >= high):
            raise ConfigError(f"PPOConfig.env_name: {env_name!r} has invalid action bounds "
                              f"low={low.tolist()}, high={high.tolist()} (need low < high)")
        return ActionSpace(0, shape, tuple(low.tolist()), tuple(high.tolist()))
    raise ConfigError(f"PPOConfig.env_name: {env_name!r} has a {type(space).__name__} action "
                      f"space; purejaxppo handles Discrete and Box action spaces")


def _check_step_api(env_name: str, env, env_params, action_space: ActionSpace) -> None:
    """ConfigError unless `env.step` returns gymnax 1.x's six values. Abstract evaluation only
    (`jax.eval_shape` of reset and one step with a dummy key and an action of the space's shape
    and dtype): nothing is compiled or run, so a pre-1.0 five-value env fails here, early."""
    dtype = getattr(env.action_space(env_params), "dtype", None)
    if dtype is None:
        dtype = jnp.int32 if action_space.discrete else jnp.float32
    key = jax.random.key(0)
    _, state = jax.eval_shape(lambda k: env.reset(k, env_params), key)
    out = jax.eval_shape(lambda k, s, a: env.step(k, s, a, env_params), key, state,
                         jax.ShapeDtypeStruct(action_space.shape, jnp.dtype(dtype)))
    if isinstance(out, (tuple, list)) and len(out) == 6:
        return
    got = f"{len(out)} values" if isinstance(out, (tuple, list)) else type(out).__name__
    hint = (" (the pre-1.0 API, e.g. gymnax.wrappers.LegacyStepAPIWrapper: unwrap it)"
            if isinstance(out, (tuple, list)) and len(out) == 5 else "")
    raise ConfigError(f"PPOConfig.env_name: {env_name}'s step returns {got}{hint}; "
                      f"purejaxppo needs the gymnax 1.x six-value API (obs, state, reward, "
                      f"terminated, truncated, info), with time limits reported as truncated "
                      f"and info['final_observation'] on auto-reset")


def make_env(env_name: str, env=None, env_params=None) -> EnvSpec:
    """Build and check an environment.

    With `env=None` the gymnax environment `env_name` is made; otherwise `env` (any object with the
    gymnax 1.x `reset`/`step`/`action_space`/`observation_space` interface) is used as given and
    `env_name` only labels it. Raises `ConfigError` naming the field for an unknown name or a
    space purejaxppo cannot handle.
    """
    if env is None:
        if env_name not in gymnax.registered_envs:
            close = difflib.get_close_matches(env_name, gymnax.registered_envs, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"PPOConfig.env_name: unknown environment {env_name!r}.{hint} "
                              f"Known: {', '.join(sorted(gymnax.registered_envs))}")
        try:
            env, default_params = gymnax.make(env_name)
        except Exception as err:  # e.g. MNISTBandit-bsuite downloading data offline
            extra = " (it downloads a data set when made)" if env_name in NEEDS_NETWORK else ""
            raise ConfigError(f"PPOConfig.env_name: could not make {env_name!r}{extra}: "
                              f"{type(err).__name__}: {err}") from err
    else:
        default_params = getattr(env, "default_params", None)
    if env_params is None:
        env_params = default_params

    action_space = _action_space(env_name, env.action_space(env_params))

    _check_step_api(env_name, env, env_params, action_space)
    obs_space = env.observation_space(env_params)
    if isinstance(obs_space, spaces.Discrete):
        return EnvSpec(env, env_params, action_space, (), int(obs_space.n))
    if not isinstance(obs_space, spaces.Box):
        raise ConfigError(f"PPOConfig.env_name: {env_name!r} has a {type(obs_space).__name__} "
                          f"observation space; purejaxppo handles Box and Discrete observations")
    return EnvSpec(env, env_params, action_space, tuple(int(d) for d in obs_space.shape))


def check_config_for_env(config: PPOConfig, spec: EnvSpec) -> None:
    """The checks that need both: ConfigError naming the field when `config` does not fit `spec`
    (the torso is checked by `networks.network_kind`, the conv stack by `check_conv_stack`)."""
    check_conv_stack(config, spec)
    space = spec.action_space
    if config.action_bounds == "squash":
        if space.discrete:
            raise ConfigError(f"PPOConfig.action_bounds: 'squash' maps Gaussian samples into Box "
                              f"bounds, but {config.env_name!r} has a {space.describe()} action "
                              f"space. Use 'clip' (the default; it does nothing to discrete "
                              f"actions)")
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise ConfigError(f"PPOConfig.action_bounds: 'squash' needs finite bounds, but "
                              f"{config.env_name!r} has low={space.low}, high={space.high}. "
                              f"Use 'clip'")
    if config.normalize_obs and spec.obs_categories:
        raise ConfigError(f"PPOConfig.normalize_obs: {config.env_name!r} has Discrete "
                          f"observations ({spec.obs_categories} categories, one-hot encoded); "
                          f"running mean/variance normalisation does not apply. Set it False")


def check_conv_stack(config: PPOConfig, spec: EnvSpec) -> None:
    """ConfigError naming `conv_channels` when the CNN torso (if `config` gets one on `spec`)
    shrinks the observation to nothing: each layer's output shape is what the network's own conv
    layer (`networks.Conv3x3`) gives, by abstract evaluation (nothing is computed)."""
    from purejaxppo.networks import Conv3x3, network_kind  # networks imports this module

    if network_kind(config, spec) != "cnn":
        return
    shape = (1, *spec.obs_shape, *(() if len(spec.obs_shape) == 3 else (1,)))
    for i, channels in enumerate(config.conv_channels):
        x = jax.ShapeDtypeStruct(shape, jnp.float32)
        try:
            out = jax.eval_shape(Conv3x3(channels).init_with_output, jax.random.key(0), x)[0]
        except (ValueError, TypeError):
            out = None
        if out is None or min(out.shape[1:3]) < 1:
            raise ConfigError(
                f"PPOConfig.conv_channels: {config.conv_channels} is {len(config.conv_channels)} "
                f"conv layers, too many for {config.env_name}'s observations of shape "
                f"{spec.obs_shape}: layer {i + 1} gets a {shape[1]}x{shape[2]} map, which its "
                f"3x3 kernel (stride 1, no padding: networks.Conv3x3) cannot take. Use at most "
                f"{i} layers")
        shape = out.shape
