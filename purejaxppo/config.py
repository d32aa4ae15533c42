"""Configuration as one table: every field of `PPOConfig` is one row, written once.

A row gives the field's name, type and default (the dataclass field itself) and, through
`setting(...)`, whether it is traced, its valid values (`Check`), its help text and the RLlib
key(s) it is read from. Everything else is derived from the rows:

* `PPOConfig`, a frozen, hashable dataclass: the *static* fields decide array shapes or program
  structure (environment, sizes, epochs, minibatches, network) and are static under `jax.jit`;
  the *traced* fields are the defaults of the hyperparameters `train(key, hparams)` takes;
* `HParams`, a flax pytree of the traced fields (so a sweep over them is a `jax.vmap`), and
  `HPARAM_FIELDS`, their names;
* `FIELDS` (`Field` tuples: name, type, default, traced, check, help, rllib), which
  `validate_config` / `validate_hparams` check against, `parse_override` parses the CLI's
  `--set` with, `field_help()` prints (`purejaxppo train --help`), `check_hparam_name` gives the
  sweeps' "static field" hint from, and `purejaxppo.rllib` takes its field lists from.

Why the rows are the dataclass body (fields with metadata) rather than a list that generates
`PPOConfig`: the body stays an ordinary dataclass that IDEs, type checkers and readers know,
the rows are in one place in declaration order, and nothing is written twice. `HParams` *is*
generated (its fields are the rows marked `traced=True`, in order), so that adding a traced
hyperparameter is one row here. A dataclass field declared without `setting(...)` is an error at
import, so a field cannot be added without its check and help.

This module imports only the two registries whose names its rows check against, `estimators`
(`ESTIMATORS`) and `loss` (`OBJECTIVES`), leaf modules that import no other purejaxppo module;
`one_of` reads a registry when it checks, so entries registered at run time are valid. The rest
of the spine (envs, networks, update, ...) and the vocabularies (`presets`, `rllib`) import this
module, never the other way round.
"""

import dataclasses
import difflib
import math
import numbers
import types
from typing import Any, Callable, Collection, NamedTuple, Optional

import jax
import numpy as np
from flax import struct

from purejaxppo.estimators import ESTIMATORS
from purejaxppo.loss import OBJECTIVES


class ConfigError(ValueError):
    """A configuration value is invalid. The message names the offending field."""


# ----------------------------------------------------------------------------- valid values


class Check(NamedTuple):
    """A field's valid values: `ok(value) -> bool` and the words after "must be" in the error.

    Static fields: `ok` takes the Python value (its type included). Traced fields: `ok` takes a
    float64 array (a sweep's settings at once) and returns a bool array; the value is first
    required to be a finite number. `choices` (a collection; may be a live registry whose keys
    grow at run time) replaces `rule` with "one of (...)" as it stands when the error is raised.
    """

    ok: Callable[[Any], Any]
    rule: str
    choices: Optional[Collection[str]] = None

    def describe(self) -> str:
        """The valid values in words, e.g. "> 0" or "one of ('tanh', 'relu')"."""
        return f"one of {tuple(self.choices)}" if self.choices is not None else self.rule


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def one_of(choices: Collection[str]) -> Check:
    """A string among `choices` (a tuple, or a registry dict whose keys are the names)."""
    return Check(lambda v: isinstance(v, str) and v in choices, "", choices)


NON_EMPTY_STRING = Check(lambda v: isinstance(v, str) and bool(v), "a non-empty string")
POSITIVE_INT = Check(lambda v: _is_int(v) and v > 0, "a positive integer")
GRU_UNITS = Check(lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: no GRU)")
LAYER_SIZES = Check(lambda v: isinstance(v, tuple) and bool(v)
                    and all(_is_int(s) and s > 0 for s in v),
                    "a non-empty tuple of positive integers")
BOOL = Check(lambda v: isinstance(v, bool), "True or False")
POSITIVE_FINITE = Check(lambda v: _is_real(v) and 0 < v < math.inf, "> 0")
CLIP_BOUND = Check(lambda v: _is_real(v) and v > 0, "> 0 (inf: no clipping)")
FINITE = Check(lambda v: _is_real(v) and math.isfinite(v), "a finite number")
# Traced fields: element-wise on float64 arrays.
POSITIVE = Check(lambda v: v > 0, "> 0")
NON_NEGATIVE = Check(lambda v: v >= 0, ">= 0")
UNIT_INTERVAL = Check(lambda v: (v >= 0) & (v <= 1), "in [0, 1]")
EARLY_STOP_KL = Check(lambda v: v >= 0, ">= 0 (0: no early stopping)")
HALF_OPEN_UNIT = Check(lambda v: (v > 0) & (v <= 1), "in (0, 1]")
NON_NEGATIVE_INT = Check(lambda v: _is_int(v) and v >= 0, "an integer >= 0")

ACTIVATIONS = ("tanh", "relu")  # names of flax.linen functions (networks.py looks them up)
NETWORKS = ("auto", "mlp", "cnn")
ACTION_BOUNDS = ("clip", "squash")
FAST_PATHS = ("auto", "on", "off")
KL_ADAPTATIONS = ("paper", "rllib", "fixed")

_META = "purejaxppo"  # the dataclass metadata key of a row


def setting(default, check: Check, help: str, *, traced: bool = False,
            rllib: tuple[str, ...] = ()) -> Any:
    """One row of the table: a dataclass field with `default` whose metadata holds `check` (the
    valid values), `help` (one line), `traced` (an `HParams` field) and `rllib` (the RLlib config
    keys it is read from, "model.x" for a key of RLlib's model dict; () = none)."""
    return dataclasses.field(default=default, metadata={
        _META: {"check": check, "help": help, "traced": traced, "rllib": tuple(rllib)}})


# ----------------------------------------------------------------------------- the table


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Everything that defines a PPO run; one row per field (see the module docstring).

    Sizes and switches are static (they shape the compiled program). The `traced=True` fields
    (`HPARAM_FIELDS`) are the *defaults* of the `HParams` that `train(key, hparams)` uses.
    Defaults are the common CartPole setup (CleanRL / PureJaxRL).
    """

    env_name: str = setting(
        "CartPole-v1", NON_EMPTY_STRING,
        "gymnax environment (`purejaxppo envs` lists them)", rllib=("env",))
    total_timesteps: int = setting(
        500_000, POSITIVE_INT,
        "environment steps per run, rounded down to whole updates of num_envs * num_steps")
    num_envs: int = setting(
        4, POSITIVE_INT, "environments stepped in parallel",
        rllib=("num_envs_per_env_runner", "num_env_runners"))
    num_steps: int = setting(
        128, POSITIVE_INT, "steps per environment in each update's rollout",
        rllib=("train_batch_size", "train_batch_size_per_learner", "rollout_fragment_length"))
    update_epochs: int = setting(
        4, POSITIVE_INT, "passes over each rollout per update", rllib=("num_epochs",))
    num_minibatches: int = setting(
        4, POSITIVE_INT, "minibatches per epoch (num_envs * num_steps must divide into them)",
        rllib=("minibatch_size", "num_learners"))
    # Traced hyperparameters (HParams).
    learning_rate: float = setting(
        2.5e-4, POSITIVE, "Adam step size (linearly annealed to 0 with anneal_lr)",
        traced=True, rllib=("lr",))
    gamma: float = setting(0.99, UNIT_INTERVAL, "discount factor γ", traced=True,
                           rllib=("gamma",))
    gae_lambda: float = setting(0.95, UNIT_INTERVAL, "GAE λ (also V-trace's λ: c_s = λ·min(c̄, "
                                "π/μ))", traced=True, rllib=("lambda", "use_gae"))
    clip_eps: float = setting(0.2, POSITIVE, "PPO's probability-ratio clip ε", traced=True,
                              rllib=("clip_param",))
    vf_clip_eps: float = setting(
        0.2, POSITIVE, "value clipping: V may move at most ±this from the rollout's V "
        "(with clip_value)", traced=True, rllib=("vf_clip_param",))
    vf_coef: float = setting(0.5, NON_NEGATIVE, "weight of the value loss (0.5 · MSE)",
                             traced=True, rllib=("vf_loss_coeff",))
    ent_coef: float = setting(0.01, NON_NEGATIVE, "weight of the entropy bonus", traced=True,
                              rllib=("entropy_coeff",))
    max_grad_norm: float = setting(0.5, POSITIVE, "gradients are clipped to this global norm",
                                   traced=True, rllib=("grad_clip",))
    kl_coef: float = setting(
        1.0, POSITIVE, "initial β of the KL penalty (policy_objective with kl_penalty)",
        traced=True, rllib=("kl_coeff",))
    kl_target: float = setting(0.01, POSITIVE, "the KL the adaptive β aims at", traced=True,
                               rllib=("kl_target",))
    target_kl: float = setting(
        0.0, EARLY_STOP_KL, "early stopping: an update's epochs stop once approx-KL exceeds "
        "it (0: off)", traced=True)
    # Off-policy corrections (APPO: estimators "vtrace", objective "appo").
    vtrace_clip_rho: float = setting(
        1.0, POSITIVE, "V-trace ρ̄: importance weights of the value targets' TD errors are "
        "min(ρ̄, π/μ)", traced=True, rllib=("vtrace_clip_rho_threshold",))
    vtrace_clip_pg_rho: float = setting(
        1.0, POSITIVE, "V-trace ρ̄ of the policy-gradient advantages: min(ρ̄_pg, π/μ)",
        traced=True, rllib=("vtrace_clip_pg_rho_threshold",))
    vtrace_clip_c: float = setting(
        1.0, POSITIVE, "V-trace c̄: trace coefficients c_s = λ·min(c̄, π/μ) (rlax and RLlib fix "
        "it at 1)", traced=True)
    behaviour_ratio_clip: float = setting(
        2.0, POSITIVE, "APPO's ratio clip(μ/π_target, 0, this)·π/μ before PPO's ε-clip",
        traced=True, rllib=("target_worker_clipping",))
    tau: float = setting(
        1.0, HALF_OPEN_UNIT, "Polyak step of the target network: target ← τ·θ + (1−τ)·target "
        "(1: a copy)", traced=True, rllib=("tau",))
    # The PPO variant.
    policy_objective: str = setting(
        "clip", one_of(OBJECTIVES), "an entry of loss.OBJECTIVES: clip (PPO-Clip), kl_penalty "
        "(PPO-Penalty: ρ·A − β·KL), clip+kl_penalty (both terms), appo (APPO's target-network "
        "ratio, docs/appo.md) or appo+kl (with β·KL(π_target ‖ π)); register_objective adds "
        "more", rllib=("use_kl_loss",))
    kl_adaptation: str = setting(
        "paper", one_of(KL_ADAPTATIONS), "how β adapts after each update: paper (×2 / ÷2 "
        "outside [kl_target/1.5, 1.5·kl_target]), rllib (×1.5 / ×0.5 outside "
        "[0.5, 2]·kl_target) or fixed", rllib=("use_kl_loss",))
    advantage_estimator: str = setting(
        "gae", one_of(ESTIMATORS), "an entry of estimators.ESTIMATORS: gae (GAE(λ), "
        "truncation-aware), vtrace (V-trace; docs/vtrace.md); register_estimator adds more",
        rllib=("vtrace",))
    # APPO's learner (purejaxppo/appo.py): all off by default, which is PPO.
    policy_lag: int = setting(
        0, NON_NEGATIVE_INT, "the actors act with the parameters of this many updates ago (a "
        "ring of policy_lag + 1 parameter sets in the train state; 0: on-policy)")
    target_update_every: int = setting(
        1, POSITIVE_INT, "updates between target-network refreshes (objectives that use a "
        "target network); RLlib's target_network_update_freq × circular_buffer_num_batches",
        rllib=("target_network_update_freq", "circular_buffer_num_batches"))
    buffer_num_batches: int = setting(
        1, POSITIVE_INT, "rollouts kept in the circular buffer (1: only the newest)",
        rllib=("circular_buffer_num_batches",))
    buffer_iterations_per_batch: int = setting(
        1, POSITIVE_INT, "the most times any one rollout is trained on, and the most draws "
        "per update (each of a different buffered batch; docs/appo.md)",
        rllib=("circular_buffer_iterations_per_batch",))
    # Static switches.
    anneal_lr: bool = setting(True, BOOL, "anneal the learning rate linearly to 0 over the run")
    clip_value: bool = setting(True, BOOL, "clip the value update at ±vf_clip_eps (PPO2)",
                               rllib=("vf_clip_param",))
    normalize_advantages: bool = setting(True, BOOL, "standardise advantages per minibatch")
    adam_eps: float = setting(1e-5, POSITIVE_FINITE, "Adam's ε")
    # Network (networks.py).
    network: str = setting(
        "auto", one_of(NETWORKS), "the torso: auto (CNN for (H, W, C) observations, else "
        "MLP), mlp or cnn")
    hidden_sizes: tuple[int, ...] = setting(
        (64, 64), LAYER_SIZES, "dense layer widths (after the convolutions for the CNN)",
        rllib=("model.fcnet_hiddens",))
    activation: str = setting("tanh", one_of(ACTIVATIONS), "activation of the dense layers",
                              rllib=("model.fcnet_activation",))
    shared_trunk: bool = setting(
        False, BOOL, "one torso for actor and critic (else two separate towers)",
        rllib=("model.vf_share_layers", "vf_share_layers"))
    conv_channels: tuple[int, ...] = setting(
        (16,), LAYER_SIZES, "channels of the CNN's 3x3 stride-1 convolutions")
    # Box actions: a Gaussian whose sample is stored as drawn.
    action_bounds: str = setting(
        "clip", one_of(ACTION_BOUNDS), "Box actions: clip what env.step gets to the bounds, "
        "or squash it through tanh into them (TanhGaussian)")
    log_std_init: float = setting(0.0, FINITE, "initial log-std of the Gaussian policy")
    gru_size: int = setting(
        0, GRU_UNITS, "units of a GRU core between torso and heads (0: feed-forward); "
        "minibatches are then whole sequences of num_envs / num_minibatches environments",
        rllib=("model.use_lstm",))
    # Normalisation (normalize.py), statistics carried in the train state, per run.
    normalize_obs: bool = setting(False, BOOL, "normalise observations by running mean/variance",
                                  rllib=("observation_filter",))
    obs_clip: float = setting(10.0, CLIP_BOUND, "normalised observations are clipped to ±this")
    normalize_reward: bool = setting(
        False, BOOL, "divide rewards by the running std of the discounted return")
    reward_clip: float = setting(10.0, CLIP_BOUND, "normalised rewards are clipped to ±this")
    fast_paths: str = setting(
        "auto", one_of(FAST_PATHS), "CPU fast paths (fast_paths.py): auto = on where JAX's "
        "default backend is the CPU")
    # Loop unrolling: pure performance knobs, results are unchanged (up to float rounding).
    rollout_unroll: int = setting(1, POSITIVE_INT, "unroll of the rollout's scan over steps")
    update_unroll: int = setting(1, POSITIVE_INT, "unroll of the scan over minibatches")

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

    def hparams(self) -> "HParams":
        """The default `HParams` taken from this config's fields."""
        return HParams(**{name: getattr(self, name) for name in HPARAM_FIELDS})

    def replace(self, **changes) -> "PPOConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_rllib(cls, d: dict, **overrides) -> "PPOConfig":
        """`purejaxppo.rllib.from_rllib(d, **overrides)`: the validated config for an RLlib PPO
        config dict. Kept as a method for existing callers; the import happens at call time, so
        this module still imports no vocabulary module when it loads."""
        from purejaxppo.rllib import from_rllib

        return from_rllib(d, **overrides)

    def __post_init__(self):
        """Store numpy scalars as the Python scalars they stand for, so that a config built from
        `np.int64(500_000)` validates, compares and hashes like one built from `500_000`."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            plain = _plain_scalar(field.default, value)
            if plain is not value:
                object.__setattr__(self, field.name, plain)


class Field(NamedTuple):
    """One row of the table, as data."""

    name: str
    type: Any  # the annotation: str, int, float, bool or tuple[int, ...]
    default: Any
    traced: bool  # an HParams field (an argument of train), else static (shapes the program)
    check: Check
    help: str
    rllib: tuple[str, ...]  # the RLlib keys it is read from ("model.x": RLlib's model dict)


def table_row(field: dataclasses.Field) -> Field:
    """The `Field` of a `PPOConfig` dataclass field; ConfigError if it lacks `setting(...)`."""
    meta = field.metadata.get(_META)
    if meta is None:
        raise ConfigError(f"PPOConfig.{field.name}: declared without config.setting(...): give "
                          f"its check and help text")
    return Field(field.name, field.type, field.default, meta["traced"], meta["check"],
                 meta["help"], meta["rllib"])


FIELDS: tuple[Field, ...] = tuple(table_row(f) for f in dataclasses.fields(PPOConfig))
FIELD: dict[str, Field] = {f.name: f for f in FIELDS}
HPARAM_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.traced)
STATIC_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if not f.traced)


def _hparams_class() -> type:
    """`HParams`: a flax struct dataclass with one field per traced row, in table order."""
    body = {"__annotations__": {name: Any for name in HPARAM_FIELDS}, "__module__": __name__,
            "__qualname__": "HParams",
            "__doc__": "Numeric PPO hyperparameters, a pytree of scalars (or arrays when vmapped "
                       "over a sweep): the traced fields of PPOConfig.\n\n"
                       + "\n".join(f"{name}: {FIELD[name].help}" for name in HPARAM_FIELDS)}
    return struct.dataclass(type("HParams", (), body))


HParams = _hparams_class()


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


# ----------------------------------------------------------------------------- validation


def _fail(field: str, message: str):
    raise ConfigError(f"PPOConfig.{field}: {message}")


def check_hparams_type(hp, where: str = "HParams") -> None:
    """Raise `ConfigError` unless `hp` is an `HParams` (a dict, tuple or `PPOConfig` is not)."""
    if not isinstance(hp, HParams):
        raise ConfigError(f"{where}: expected purejaxppo.HParams (e.g. config.hparams() or "
                          f"hparam_grid(...)), got {type(hp).__name__}")


def check_hparam_name(name: str, where: str) -> None:
    """ConfigError unless `name` is an `HParams` field, saying why when it is a static field
    (one compiled program per value), and listing the valid names."""
    if name in HPARAM_FIELDS:
        return
    hint = (f" ({name} is a static PPOConfig field, it shapes the compiled program: make one "
            f"config per value instead)" if name in STATIC_FIELDS else "")
    raise ConfigError(f"{where}: unknown hyperparameter {name!r}{hint}. "
                      f"Valid names: {', '.join(HPARAM_FIELDS)}")


def validate_hparams(hp: HParams, where: str = "PPOConfig", *, scalar: bool = False) -> None:
    """Check concrete hyperparameter values against their rows; traced values (inside
    jit/vmap) are skipped.

    `hp` must be an `HParams` (`check_hparams_type`). With `scalar=True` every concrete leaf must
    also be a scalar: what one un-vmapped `train(key, hparams)` call takes; arrays of settings
    go through `jax.vmap` or `purejaxppo.sweep`. Sweeps validate their `(n,)` leaves with the
    default `scalar=False`.
    """
    check_hparams_type(hp, where)
    for name in HPARAM_FIELDS:
        value = getattr(hp, name)
        if isinstance(value, jax.core.Tracer):
            continue
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}.{name}: must be a number, got {value!r}") from None
        if scalar and arr.ndim:
            raise ConfigError(f"{where}.{name}: one train(key, hparams) call takes scalar "
                              f"hyperparameters, got an array of shape {arr.shape}; for arrays "
                              f"of settings use jax.vmap(train) or purejaxppo.sweep")
        check = FIELD[name].check
        if not np.all(np.isfinite(arr)) or not np.all(check.ok(arr)):
            raise ConfigError(f"{where}.{name}: must be {check.describe()}, got {value!r}")


def validate_config(config: PPOConfig) -> None:
    """Raise `ConfigError` naming the first invalid field: each static field against its row, in
    table order, then the sizes against each other, then the traced fields
    (`validate_hparams`). Environment checks live in `envs`."""
    if not isinstance(config, PPOConfig):
        raise ConfigError(f"expected a PPOConfig, got {type(config).__name__}")
    for name in STATIC_FIELDS:
        value, check = getattr(config, name), FIELD[name].check
        if not check.ok(value):
            _fail(name, f"must be {check.describe()}, got {value!r}")
    if config.gru_size and config.num_envs % config.num_minibatches:
        _fail("num_minibatches", f"a recurrent policy (gru_size > 0) trains on whole sequences: "
              f"num_envs = {config.num_envs} must divide into {config.num_minibatches} "
              f"minibatches of environments")
    if config.batch_size % config.num_minibatches:
        _fail("num_minibatches", f"num_envs * num_steps = {config.batch_size} does not divide into "
              f"{config.num_minibatches} minibatches")
    if config.target_update_every != 1 and not OBJECTIVES[config.policy_objective].uses_target:
        _fail("target_update_every", f"{config.target_update_every} would be ignored: the policy "
              f"objective {config.policy_objective!r} keeps no target network (the objectives "
              f"with one: {', '.join(n for n, o in OBJECTIVES.items() if o.uses_target)})")
    if config.total_timesteps < config.batch_size:
        _fail("total_timesteps", f"{config.total_timesteps} is smaller than one update "
              f"(num_envs * num_steps = {config.batch_size})")
    validate_hparams(config.hparams())


# ----------------------------------------------------------------------------- text


def type_name(field: Field) -> str:
    """The field's type as written in the table, e.g. "float" or "tuple[int, ...]"."""
    return str(field.type) if isinstance(field.type, types.GenericAlias) else field.type.__name__


def check_field_name(name: str, where: str) -> None:
    """ConfigError unless `name` is a `PPOConfig` field, saying where it came from (`where`),
    with close matches and every field's name."""
    if name in FIELD:
        return
    close = difflib.get_close_matches(name, list(FIELD), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"PPOConfig.{name}: no such field ({where}).{hint} Fields: "
                      f"{', '.join(FIELD)} (`purejaxppo train --help` describes them)")


def parse_override(text: str) -> tuple[str, object]:
    """Parse `field=value` (the CLI's `--set`) into `(field, typed value)`, the type taken from the
    field's row; tuples are comma-separated integers. ConfigError names a bad field or value."""
    if "=" not in text:
        raise ConfigError(f"--set expects field=value, got {text!r}")
    name, raw = text.split("=", 1)
    name = name.strip().replace("-", "_")
    check_field_name(name, "--set")
    default = FIELD[name].default
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


def field_help(width: int = 100) -> str:
    """Every field, one entry each: `name (type, static|traced) = default; valid: ...`, then its
    help text and RLlib keys, indented. What `purejaxppo train --help` lists for `--set`."""
    import textwrap

    lines = ["PPOConfig fields (--set FIELD=VALUE; tuples as 64,64; traced fields can be "
             "swept with --grid):"]
    for f in FIELDS:
        default = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        rllib = f" (RLlib: {', '.join(f.rllib)})" if f.rllib else ""
        lines.append(f"  {f.name} ({type_name(f)}, {'traced' if f.traced else 'static'}) = "
                     f"{default}; valid: {f.check.describe()}")
        lines.extend(textwrap.wrap(f.help + rllib, width, initial_indent=" " * 6,
                                   subsequent_indent=" " * 6))
    return "\n".join(lines)
