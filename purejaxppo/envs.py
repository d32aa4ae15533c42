"""Environment lookup and checks: gymnax environments by name, or any gymnax-style object."""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

import gymnax
from gymnax.environments import spaces

from purejaxppo.config import ConfigError

# Environments that cannot be made here: MNISTBandit downloads its data set at make() time.
_NEEDS_NETWORK = {"MNISTBandit-bsuite"}


class EnvSpec(NamedTuple):
    """A ready environment: the gymnax env object, its params, and what the network needs."""

    env: Any
    env_params: Any
    num_actions: int
    obs_shape: tuple[int, ...]


def available_envs() -> tuple[str, ...]:
    """Names accepted as `PPOConfig.env_name`."""
    return tuple(gymnax.registered_envs)


def make_env(env_name: str, env=None, env_params=None) -> EnvSpec:
    """Build and check an environment.

    With `env=None` the gymnax environment `env_name` is made; otherwise `env` (any object with the
    gymnax 1.x `reset`/`step`/`action_space`/`observation_space` interface) is used as given and
    `env_name` only labels it. Raises `ConfigError` naming the field for an unknown name or an
    action space that PPO's categorical head cannot handle.
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
            extra = " (it downloads a data set when made)" if env_name in _NEEDS_NETWORK else ""
            raise ConfigError(f"PPOConfig.env_name: could not make {env_name!r}{extra}: "
                              f"{type(err).__name__}: {err}") from err
    else:
        default_params = getattr(env, "default_params", None)
    if env_params is None:
        env_params = default_params

    action_space = env.action_space(env_params)
    if not isinstance(action_space, spaces.Discrete):
        raise ConfigError(
            f"PPOConfig.env_name: {env_name!r} has a {type(action_space).__name__} (continuous) "
            f"action space, but purejaxppo only has a discrete (categorical) policy head so far. "
            f"Choose an environment with a Discrete action space.")
    obs_space = env.observation_space(env_params)
    obs_shape = tuple(int(d) for d in obs_space.shape)
    return EnvSpec(env, env_params, int(action_space.n), obs_shape)
