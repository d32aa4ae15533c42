"""Configuration: static sizes (`PPOConfig`) and traced hyperparameters (`HParams`).

`PPOConfig` is a frozen, hashable dataclass. Everything that decides array shapes or program
structure (environment, num_envs, num_steps, epochs, minibatches, network) lives there and is
static under `jax.jit`. The numeric hyperparameters that only enter arithmetic form `HParams`, a
pytree that `train(key, hparams)` takes as an argument, so a sweep over them is a `jax.vmap`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import jax
import numpy as np
from flax import struct

from purejaxppo.estimators import ESTIMATORS
from purejaxppo.loss import OBJECTIVES


class ConfigError(ValueError):
    """A configuration value is invalid. The message names the offending field."""


@struct.dataclass
class HParams:
    """Numeric PPO hyperparameters, a pytree of scalars (or arrays when vmapped over a sweep)."""

    learning_rate: Any
    gamma: Any
    gae_lambda: Any
    clip_eps: Any
    vf_clip_eps: Any
    vf_coef: Any
    ent_coef: Any
    max_grad_norm: Any
    kl_coef: Any  # initial β of the KL penalty (policy_objective with "kl_penalty")
    kl_target: Any  # the KL the adaptive β aims at
    target_kl: Any  # early stopping: stop an update's epochs once approx-KL exceeds it; 0 = off


HPARAM_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(HParams))


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Everything that defines a PPO run.

    Sizes and switches are static (they shape the compiled program). The fields named in
    `HPARAM_FIELDS` are the *defaults* of the traced `HParams` that `train(key, hparams)` uses.
    Defaults are the common CartPole setup (CleanRL / PureJaxRL).
    """

    env_name: str = "CartPole-v1"
    total_timesteps: int = 500_000
    num_envs: int = 4
    num_steps: int = 128
    update_epochs: int = 4
    num_minibatches: int = 4
    # Traced hyperparameter defaults (see HParams).
    learning_rate: float = 2.5e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    vf_clip_eps: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    kl_coef: float = 1.0
    kl_target: float = 0.01
    target_kl: float = 0.0
    # The policy objective (loss.py): "clip" (PPO-Clip), "kl_penalty" (PPO-Penalty: r·A − β·KL) or
    # "clip+kl_penalty" (both terms); β adapts after each update by `kl_adaptation`: "paper"
    # (×2 / ÷2 outside [kl_target/1.5, 1.5·kl_target]), "rllib" (×1.5 / ×0.5 outside
    # [0.5, 2]·kl_target) or "fixed".
    policy_objective: str = "clip"
    kl_adaptation: str = "paper"
    # The advantage/target estimator (estimators.py): an entry of estimators.ESTIMATORS ("gae").
    advantage_estimator: str = "gae"
    # Static switches.
    anneal_lr: bool = True
    clip_value: bool = True
    normalize_advantages: bool = True
    adam_eps: float = 1e-5
    # Network (see networks.py): torso "auto" (CNN for (H, W, C) observations, else MLP), "mlp"
    # or "cnn"; dense layers of hidden_sizes (after the convolutions for the CNN).
    network: str = "auto"
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    shared_trunk: bool = False
    conv_channels: tuple[int, ...] = (16,)
    # Box actions: a Gaussian whose sample is stored as drawn; "clip" clips what env.step gets to
    # the bounds, "squash" maps it through tanh into them (TanhGaussian). log-std starts here.
    action_bounds: str = "clip"
    log_std_init: float = 0.0
    # Recurrent PPO: a GRU core of this many units between torso and heads (0: feed-forward).
    # Minibatches are then whole num_steps sequences of num_envs / num_minibatches environments.
    gru_size: int = 0
    # Normalisation (normalize.py), statistics carried in the train state, per run.
    normalize_obs: bool = False
    obs_clip: float = 10.0
    normalize_reward: bool = False
    reward_clip: float = 10.0
    # CPU fast paths (fast_paths.py): "auto" = on where jax.default_backend() is "cpu".
    fast_paths: str = "auto"
    # Loop unrolling: a pure performance knob, results are unchanged (up to float rounding).
    rollout_unroll: int = 1
    update_unroll: int = 1

    @property
    def batch_size(self) -> int:
        """Transitions collected per update: num_envs * num_steps."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        """Number of PPO updates; total_timesteps is rounded *down* to whole updates."""
        return self.total_timesteps // self.batch_size

    @property
    def env_steps_per_run(self) -> int:
        """Environment steps actually taken: num_updates * batch_size (<= total_timesteps)."""
        return self.num_updates * self.batch_size

    def hparams(self) -> HParams:
        """The default `HParams` taken from this config's fields."""
        return HParams(**{name: getattr(self, name) for name in HPARAM_FIELDS})

    def replace(self, **changes) -> "PPOConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_rllib(cls, d: dict, **overrides) -> "PPOConfig":
        """The validated config for an RLlib PPO config dict `d` (RLlib's key names; missing
        keys take RLlib's PPO defaults), `overrides` (PPOConfig fields, e.g. total_timesteps)
        winning. The mapping, what is ignored and what is rejected: `purejaxppo.rllib`;
        `purejaxppo.rllib.to_rllib` goes the other way."""
        from purejaxppo.rllib import from_rllib  # here: rllib imports this module

        return from_rllib(d, **overrides)

    def __post_init__(self):
        """Store numpy scalars as the Python scalars they stand for, so that a config built from
        `np.int64(500_000)` validates, compares and hashes like one built from `500_000`."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            plain = _plain_scalar(field.default, value)
            if plain is not value:
                object.__setattr__(self, field.name, plain)


_POSITIVE_INTS = ("total_timesteps", "num_envs", "num_steps", "update_epochs", "num_minibatches",
                  "rollout_unroll", "update_unroll")
_ACTIVATIONS = ("tanh", "relu")
KL_ADAPTATIONS = ("paper", "rllib", "fixed")
_CHOICES = {"activation": _ACTIVATIONS, "network": ("auto", "mlp", "cnn"),
            "action_bounds": ("clip", "squash"), "fast_paths": ("auto", "on", "off"),
            "kl_adaptation": KL_ADAPTATIONS}
_TABLES = {"policy_objective": OBJECTIVES, "advantage_estimator": ESTIMATORS}  # extensible
_BOOLS = ("anneal_lr", "clip_value", "normalize_advantages", "shared_trunk", "normalize_obs",
          "normalize_reward")
_POSITIVE_SIZE_TUPLES = ("hidden_sizes", "conv_channels")


def _plain_scalar(default, value):
    """`value` as the Python type of the field whose default is `default` when it is a numpy (or
    other `numbers`) scalar of that kind: integers (not bools) -> int for int fields, reals ->
    float for float fields, numpy bools -> bool for bool fields, element-wise for int tuples.
    Anything else is returned unchanged (and left to `validate_config` to judge)."""
    if isinstance(default, bool):
        return bool(value) if isinstance(value, np.bool_) else value
    if isinstance(default, int):
        integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return int(value) if integral and type(value) is not int else value
    if isinstance(default, float):
        real = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
                and type(value) not in (int, float))
        return float(value) if real else value
    if isinstance(default, tuple) and isinstance(value, tuple):
        plain = tuple(_plain_scalar(0, v) for v in value)
        return plain if any(p is not v for p, v in zip(plain, value)) else value
    return value


def _fail(field: str, message: str):
    raise ConfigError(f"PPOConfig.{field}: {message}")


def check_hparams_type(hp, where: str = "HParams") -> None:
    """Raise `ConfigError` unless `hp` is an `HParams` (a dict, tuple or `PPOConfig` is not)."""
    if not isinstance(hp, HParams):
        raise ConfigError(f"{where}: expected purejaxppo.HParams (e.g. config.hparams() or "
                          f"hparam_grid(...)), got {type(hp).__name__}")


def validate_hparams(hp: HParams, where: str = "PPOConfig", *, scalar: bool = False) -> None:
    """Check concrete hyperparameter values; traced values (inside jit/vmap) are skipped.

    `hp` must be an `HParams` (`check_hparams_type`). With `scalar=True` every concrete leaf must
    also be a scalar: what one un-vmapped `train(key, hparams)` call takes; arrays of settings
    go through `jax.vmap` or `purejaxppo.sweep`. Sweeps validate their `(n,)` leaves with the
    default `scalar=False`.
    """
    check_hparams_type(hp, where)

    def check(name, ok, rule):
        value = getattr(hp, name)
        if isinstance(value, jax.core.Tracer):
            return
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}.{name}: must be a number, got {value!r}") from None
        if scalar and arr.ndim:
            raise ConfigError(f"{where}.{name}: one train(key, hparams) call takes scalar "
                              f"hyperparameters, got an array of shape {arr.shape}; for arrays "
                              f"of settings use jax.vmap(train) or purejaxppo.sweep")
        if not np.all(np.isfinite(arr)) or not np.all(ok(arr)):
            raise ConfigError(f"{where}.{name}: must be {rule}, got {value!r}")

    check("learning_rate", lambda v: v > 0, "> 0")
    check("gamma", lambda v: (v >= 0) & (v <= 1), "in [0, 1]")
    check("gae_lambda", lambda v: (v >= 0) & (v <= 1), "in [0, 1]")
    check("clip_eps", lambda v: v > 0, "> 0")
    check("vf_clip_eps", lambda v: v > 0, "> 0")
    check("vf_coef", lambda v: v >= 0, ">= 0")
    check("ent_coef", lambda v: v >= 0, ">= 0")
    check("max_grad_norm", lambda v: v > 0, "> 0")
    check("kl_coef", lambda v: v > 0, "> 0")
    check("kl_target", lambda v: v > 0, "> 0")
    check("target_kl", lambda v: v >= 0, ">= 0 (0: no early stopping)")


def validate_config(config: PPOConfig) -> None:
    """Raise `ConfigError` naming the first invalid field. Environment checks live in `envs`."""
    if not isinstance(config, PPOConfig):
        raise ConfigError(f"expected a PPOConfig, got {type(config).__name__}")
    if not isinstance(config.env_name, str) or not config.env_name:
        _fail("env_name", f"must be a non-empty string, got {config.env_name!r}")
    for name in _POSITIVE_INTS:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            _fail(name, f"must be a positive integer, got {value!r}")
    gru_size = config.gru_size
    if isinstance(gru_size, bool) or not isinstance(gru_size, int) or gru_size < 0:
        _fail("gru_size", f"must be an integer >= 0 (0: no GRU), got {config.gru_size!r}")
    if config.gru_size and config.num_envs % config.num_minibatches:
        _fail("num_minibatches", f"a recurrent policy (gru_size > 0) trains on whole sequences: "
              f"num_envs = {config.num_envs} must divide into {config.num_minibatches} "
              f"minibatches of environments")
    if config.batch_size % config.num_minibatches:
        _fail("num_minibatches", f"num_envs * num_steps = {config.batch_size} does not divide into "
              f"{config.num_minibatches} minibatches")
    if config.total_timesteps < config.batch_size:
        _fail("total_timesteps", f"{config.total_timesteps} is smaller than one update "
              f"(num_envs * num_steps = {config.batch_size})")
    if not (isinstance(config.adam_eps, (int, float)) and config.adam_eps > 0
            and math.isfinite(config.adam_eps)):
        _fail("adam_eps", f"must be > 0, got {config.adam_eps!r}")
    for name in _POSITIVE_SIZE_TUPLES:
        sizes = getattr(config, name)
        if (not isinstance(sizes, tuple) or not sizes
                or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in sizes)):
            _fail(name, f"must be a non-empty tuple of positive integers, got {sizes!r}")
    for name, choices in _CHOICES.items():
        if getattr(config, name) not in choices:
            _fail(name, f"must be one of {choices}, got {getattr(config, name)!r}")
    for name, table in _TABLES.items():
        if not isinstance(getattr(config, name), str) or getattr(config, name) not in table:
            _fail(name, f"must be one of {tuple(table)} (registered), got {getattr(config, name)!r}")
    for name in _BOOLS:
        if not isinstance(getattr(config, name), bool):
            _fail(name, f"must be True or False, got {getattr(config, name)!r}")
    for name in ("obs_clip", "reward_clip"):  # inf switches clipping off
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            _fail(name, f"must be > 0 (inf: no clipping), got {value!r}")
    if (isinstance(config.log_std_init, bool) or not isinstance(config.log_std_init, (int, float))
            or not math.isfinite(config.log_std_init)):
        _fail("log_std_init", f"must be a finite number, got {config.log_std_init!r}")
    validate_hparams(config.hparams())


def parse_override(text: str) -> tuple[str, object]:
    """Parse `field=value` (the CLI's `--set`) into `(field, typed value)`, the type taken from the
    field's default; tuples are comma-separated integers. ConfigError names a bad field or value."""
    if "=" not in text:
        raise ConfigError(f"--set expects field=value, got {text!r}")
    name, raw = text.split("=", 1)
    name = name.strip().replace("-", "_")
    fields = [f.name for f in dataclasses.fields(PPOConfig)]
    if name not in fields:
        raise ConfigError(f"PPOConfig.{name}: no such field. Fields: {', '.join(fields)}")
    default = getattr(PPOConfig(), name)
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return name, raw.lower() in ("true", "1")
        if isinstance(default, int):
            return name, int(float(raw)) if float(raw).is_integer() else int(raw)
        if isinstance(default, float):
            return name, float(raw)
        if isinstance(default, tuple):
            return name, tuple(int(v) for v in raw.split(",") if v)
    except ValueError:
        raise ConfigError(f"PPOConfig.{name}: cannot parse {raw!r} as "
                          f"{type(default).__name__}") from None
    return name, raw
