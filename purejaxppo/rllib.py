"""RLlib's PPO and APPO config vocabulary: `from_rllib(d) -> PPOConfig`, `to_rllib(config) -> dict`.

`from_rllib(d, *, algorithm=None, **overrides)` (also `purejaxppo.from_rllib`) reads a dict of
RLlib PPO or APPO config keys, as `PPOConfig().to_dict()` / `APPOConfig().to_dict()` or a tuned
example YAML writes them, and returns the validated `PPOConfig` that trains what RLlib would, as
far as the two agree. The rules:

* **PPO or APPO.** `algorithm="PPO"` or `"APPO"` says which; None (the default) reads the dict
  as APPO when it has an APPO key (`APPO_KEYS`: vtrace, vtrace_clip_rho_threshold,
  vtrace_clip_pg_rho_threshold, target_worker_clipping, tau, target_network_update_freq,
  circular_buffer_num_batches, circular_buffer_iterations_per_batch, or a deprecated APPO key),
  with a note saying so, else as PPO. Each algorithm accepts its own keys only (APPO has no
  `vf_clip_param` nor `use_critic`; PPO none of `APPO_KEYS`). The APPO keys and what they set
  are in the second table below; `DEPRECATED` APPO keys (target_update_frequency, use_critic,
  minibatch_buffer_size, replay_proportion, learner_queue_size) are errors saying what replaced
  them, except at the value APPOConfig holds when they are unset.

* **A missing key takes RLlib's default** (`RLLIB_PPO_DEFAULTS` / `RLLIB_APPO_DEFAULTS`,
  written out below), not purejaxppo's: `{"env": "CartPole-v1"}` means RLlib's λ = 1, lr 5e-5,
  30 epochs, KL loss, 2x256 tanh network; for APPO λ = 1, lr 5e-4, ε = 0.4, one epoch over the
  whole batch, V-trace, N = 4, K = 2, grad clip 40.
* **Sizes.** A size the user gave that does not divide (batch over environments, over learners,
  into minibatches) is an error naming the key. A size left to RLlib's default moves to the
  nearest one that divides, because RLlib runs its defaults (its minibatch iterator wraps around
  the batch end; we split each batch into equal minibatches): RLlib's train_batch_size 4000 and
  minibatch_size 128 become minibatches of 125, 32 per epoch. The default batch moves to the
  nearest multiple of num_envs x num_learners (x minibatch_size when given), or to
  rollout_fragment_length x num_envs when the fragment is given; the default minibatch to the
  divisor of the batch (per learner) nearest to it (ties: the larger); a default fragment length
  follows the batch ("auto"). Each move is a note.
* **Notes and provenance.** `from_rllib` prints each note to stderr ("note: from_rllib: ...");
  `read_rllib(d, **overrides)` returns them instead, with the config and `sources` (field -> the
  RLlib keys and values it came from, "(RLlib default)" for a missing key), as `RLlibMapping`.
* **Nothing is silently dropped**: every key must be in `TABLE` (translated, or a value check),
  in `IGNORED` (RLlib infrastructure with no effect on the learning math, listed below) or it is
  an error. One `ConfigError` names every unknown key, with the reason for the known RLlib keys
  that have no equivalent here (`UNSUPPORTED`), and lists the accepted keys.
* `overrides` are purejaxppo field names (e.g. `total_timesteps`, which RLlib keeps in its stop
  criteria, or `network`, `normalize_reward`); they win over what the keys say. Overriding
  `num_envs`, `num_steps` or `num_minibatches` replaces that step of the batch arithmetic below
  (so no divisibility error is raised for the replaced step).
* The result passes `validate_config`; an invalid value is reported with the RLlib key it came
  from.

`TABLE` (key -> converter); converters check types and name the key. Which field a key sets is
written once, in the `rllib` column of the config's field table (`purejaxppo.config.FIELDS`):
`FIELD_OF_KEY` and `MAPPED_FIELDS` are read from it.

| RLlib key | purejaxppo field | how |
|---|---|---|
| `env` | `env_name` | a gymnax name (`purejaxppo envs` lists them) |
| `gamma` | `gamma` | same |
| `lr` | `learning_rate` | same; constant (`anneal_lr=False`: RLlib's lr has no decay); a schedule (list) is an error |
| `lambda`, `lambda_` | `gae_lambda` | same |
| `use_gae` | `gae_lambda` | True: nothing; False -> λ = 1 (RLlib's bootstrapped Monte-Carlo returns minus V are GAE with λ = 1); an explicit `lambda` != 1 beside it is an error |
| `clip_param` | `clip_eps` | same |
| `vf_clip_param` | `vf_clip_eps`, `clip_value` | √vf_clip_param; None or inf -> `clip_value=False`. See below: not the same rule |
| `vf_loss_coeff` | `vf_coef` | PPO: ×2 (RLlib's PPO value loss is the squared error, ours half of it, 0.5·MSE, so 2·coeff gives the same gradient); APPO: same (its value loss is 0.5·MSE) |
| `entropy_coeff` | `ent_coef` | same; a schedule (list) is an error |
| `use_kl_loss` | `policy_objective`, `kl_adaptation` | True -> "clip+kl_penalty" with `kl_adaptation="rllib"` (β ×1.5 above 2·kl_target, ×0.5 below kl_target/2, as RLlib); False -> "clip" |
| `kl_coeff` | `kl_coef` | same (initial β); 0 switches the KL term off ("clip", as in RLlib where β = 0 stays 0) |
| `kl_target` | `kl_target` | same (not `target_kl`, our early stopping, which RLlib lacks: `target_kl=0`) |
| `grad_clip` | `max_grad_norm` | same; None (RLlib: no clipping) -> `NO_GRAD_CLIP` = 1e10, which `clip_by_global_norm` never reaches |
| `grad_clip_by` | - | "global_norm" only (what `max_grad_norm` does) |
| `num_epochs`, `num_sgd_iter` | `update_epochs` | same |
| `train_batch_size` | `num_steps` | `train_batch_size / num_envs`; error naming the key unless it divides |
| `train_batch_size_per_learner` | `num_steps` | when not None: `× max(1, num_learners)` is the batch |
| `num_envs_per_env_runner`, `num_envs_per_worker` | `num_envs` | `× max(1, num_env_runners)` (0 runners = sampling in the local runner) |
| `num_env_runners`, `num_workers` | `num_envs` | see above |
| `rollout_fragment_length` | `num_steps` | "auto", or it must equal `train_batch_size / num_envs` |
| `minibatch_size`, `sgd_minibatch_size` | `num_minibatches` | `(batch / max(1, num_learners)) / minibatch_size` (RLlib's minibatch is per learner); error naming the key unless it divides |
| `num_learners` | `num_minibatches` | see above |
| `model`, `model_config` | `hidden_sizes`, `activation`, `shared_trunk`, `gru_size` | `MODEL_TABLE`: `fcnet_hiddens` -> `hidden_sizes`, `fcnet_activation` ("tanh"/"relu") -> `activation`, `vf_share_layers` -> `shared_trunk`, `use_lstm` False only (-> `gru_size=0`; our recurrent core is a GRU), `free_log_std` True only (our log-std is a free parameter), `conv_activation` "relu" only. Missing sub-keys: RLlib's defaults (2x256, tanh; `vf_share_layers` False for the old-stack `model`, True for the new stack's `model_config`) |
| `vf_share_layers` | `shared_trunk` | the old top-level spelling |
| `observation_filter` | `normalize_obs` | "MeanStdFilter" -> True, "NoFilter" -> False |
| `use_critic` | - | True only (we always learn a critic) |
| `shuffle_batch_per_epoch`, `shuffle_sequences` | - | True only (we reshuffle every epoch) |
| `batch_mode` | - | "truncate_episodes" only (fixed-length rollouts) |
| `lr_schedule`, `entropy_coeff_schedule` | - | None only (schedules are not supported) |
| `env_config` | - | empty only (gymnax env params are not configurable here) |
| `clip_rewards` | - | None/False only (we never clip rewards; `normalize_reward` is different) |

APPO's keys (`algorithm="APPO"`; besides the shared ones above, without `vf_clip_param` and
`use_critic`):

| RLlib key | purejaxppo field | how |
|---|---|---|
| `vtrace` | `advantage_estimator` | True -> "vtrace", False -> "gae" |
| `vtrace_clip_rho_threshold` | `vtrace_clip_rho` | same (ρ̄) |
| `vtrace_clip_pg_rho_threshold` | `vtrace_clip_pg_rho` | same (ρ̄_pg) |
| `use_kl_loss` | `policy_objective`, `kl_adaptation` | True -> "appo+kl" with `kl_adaptation="rllib"`; False (or `kl_coeff` 0) -> "appo" |
| `target_worker_clipping` | `behaviour_ratio_clip` | same: clip(μ/π_target, 0, this)·π/μ |
| `tau` | `tau` | same (Polyak step) |
| `circular_buffer_num_batches` | `buffer_num_batches` | same (N) |
| `circular_buffer_iterations_per_batch` | `buffer_iterations_per_batch` | same (K) |
| `target_network_update_freq` | `target_update_every` | × N: RLlib refreshes every freq·N·K·batch trained env steps, one of our updates trains K batches; error unless a whole number >= 1 |
| `lambda`, `lambda_` | `gae_lambda` | same; with V-trace a note: RLlib's V-trace has no λ (it ignores it), ours uses it in c_s = λ·min(c̄, ρ_s) |

APPO also implies `clip_value=False` (its value loss is unclipped), `normalize_advantages=False`
(it does not standardise advantages) and `vtrace_clip_c=1` (RLlib fixes c̄). `policy_lag` is
not an RLlib key (RLlib's lag comes from its asynchronous actors): purejaxppo's default (0) or
an override.

Besides the keys, `from_rllib` sets what RLlib implies and has no key for: `anneal_lr=False`,
`target_kl=0`, `normalize_advantages=True`, `gru_size=0`, and `kl_adaptation="rllib"` with the
KL loss. Not touched (purejaxppo's defaults or `overrides`): `total_timesteps`, `adam_eps` (RLlib
uses torch's Adam ε, 1e-8; ours 1e-5), `network`, `conv_channels`, `action_bounds`,
`log_std_init`, `obs_clip`, `normalize_reward`, `reward_clip`, `fast_paths`, `rollout_unroll`,
`update_unroll`: these are `UNMAPPED_FIELDS`.

**Value clipping is not the same rule.** RLlib clips the *squared value error* at
`vf_clip_param` (per sample, `min((V − target)², vf_clip_param)`: a sample whose error exceeds
√vf_clip_param stops giving a value gradient). purejaxppo (like PPO2 / CleanRL) clips the *change*
of V against the rollout's V at ±`vf_clip_eps` and takes the pessimistic max. Both are absolute
thresholds on the value scale (so both depend on the reward scale); we carry RLlib's threshold
over in value units, `vf_clip_eps = √vf_clip_param` (RLlib's default 10 -> 3.16), and
`to_rllib` writes `vf_clip_eps²`.

Other known differences, not expressible as keys: RLlib standardises advantages over the whole
train batch, we per minibatch; RLlib's minibatch iterator wraps around the batch end, ours
partitions it; RLlib's default Gaussian takes its log-std from the network (`free_log_std=False`),
ours is a free parameter; Box actions: RLlib rescales from [-1, 1] (`normalize_actions`), we clip
or squash into the bounds (`action_bounds`).

`IGNORED` (accepted, no effect; they only place or schedule RLlib's workers, log or evaluate):
`framework`, `num_gpus`, `num_gpus_per_learner`, `num_cpus_per_learner`,
`num_cpus_per_env_runner`, `num_cpus_per_worker`, `num_gpus_per_env_runner`,
`num_gpus_per_worker`, `num_cpus_for_main_process`, `log_level`, `seed` (pass the PRNG key to
`train`, or `--seed`), `eager_tracing`, `enable_rl_module_and_learner`,
`enable_env_runner_and_connector_v2`, `_enable_new_api_stack`, `evaluation_interval`,
`evaluation_duration`, `evaluation_duration_unit`, `evaluation_num_env_runners`,
`evaluation_num_workers`, `metrics_num_episodes_for_smoothing`, `min_time_s_per_iteration`,
`min_sample_timesteps_per_iteration`, `min_train_timesteps_per_iteration`.

`to_rllib(config)` writes the keys above (new-stack spelling, `num_env_runners=0` with
`num_envs_per_env_runner=num_envs`; APPO's keys when `policy_objective` is "appo" or "appo+kl")
so that `from_rllib(to_rllib(c)) == c` on `MAPPED_FIELDS` (and on every field with the
`UNMAPPED_FIELDS` passed as overrides). It raises `ConfigError` naming each field whose value
the RLlib algorithm cannot express: `policy_objective="kl_penalty"` (RLlib always clips), a KL
objective with `kl_adaptation` other than "rllib", `anneal_lr=True`, `target_kl > 0`,
`gru_size > 0`, `normalize_advantages` other than RLlib's (PPO True, APPO False); for PPO any
APPO field (`APPO_FIELDS`) off its default, for APPO `clip_value=True` or `vtrace_clip_c != 1`.
"""

from __future__ import annotations

import difflib
import math
import numbers
import sys
from typing import Any, Callable, NamedTuple, Optional

from purejaxppo.config import ACTIVATIONS, FIELD, FIELDS, ConfigError, PPOConfig, validate_config
from purejaxppo.envs import available_envs

NO_GRAD_CLIP = 1e10  # max_grad_norm standing for RLlib's grad_clip=None (no clipping)

# RLlib's PPO defaults (ray.rllib.algorithms.ppo.PPOConfig, new-stack key names; gamma and the
# env-runner settings are AlgorithmConfig's, num_env_runners=2 is PPO's own). Missing keys take
# these values.
RLLIB_PPO_DEFAULTS: dict[str, Any] = {
    "gamma": 0.99,
    "lr": 5e-5,
    "lr_schedule": None,
    "train_batch_size": 4000,
    "train_batch_size_per_learner": None,
    "num_learners": 0,
    "minibatch_size": 128,
    "num_epochs": 30,
    "shuffle_batch_per_epoch": True,
    "use_critic": True,
    "use_gae": True,
    "lambda": 1.0,
    "use_kl_loss": True,
    "kl_coeff": 0.2,
    "kl_target": 0.01,
    "vf_loss_coeff": 1.0,
    "entropy_coeff": 0.0,
    "entropy_coeff_schedule": None,
    "clip_param": 0.3,
    "vf_clip_param": 10.0,
    "grad_clip": None,
    "grad_clip_by": "global_norm",
    "num_env_runners": 2,
    "num_envs_per_env_runner": 1,
    "rollout_fragment_length": "auto",
    "batch_mode": "truncate_episodes",
    "observation_filter": "NoFilter",
    "model": {"fcnet_hiddens": [256, 256], "fcnet_activation": "tanh",
              "vf_share_layers": False},
}
# RLlib's APPO defaults (ray.rllib.algorithms.appo.APPOConfig, new API stack; the V-trace
# thresholds, num_learners=1 and the 500-transition batch of 50-step fragments are IMPALAConfig's,
# num_epochs=1, minibatch_size=None (the whole batch) and gamma AlgorithmConfig's). No
# vf_clip_param (APPO's value loss is an unclipped 0.5·MSE) and no use_critic.
RLLIB_APPO_DEFAULTS: dict[str, Any] = {
    "gamma": 0.99,
    "lr": 5e-4,
    "lr_schedule": None,
    "train_batch_size": 500,
    "train_batch_size_per_learner": None,
    "num_learners": 1,
    "minibatch_size": None,
    "num_epochs": 1,
    "use_gae": True,
    "lambda": 1.0,
    "vtrace": True,
    "vtrace_clip_rho_threshold": 1.0,
    "vtrace_clip_pg_rho_threshold": 1.0,
    "clip_param": 0.4,
    "use_kl_loss": False,
    "kl_coeff": 1.0,
    "kl_target": 0.01,
    "target_worker_clipping": 2.0,
    "circular_buffer_num_batches": 4,
    "circular_buffer_iterations_per_batch": 2,
    "target_network_update_freq": 2,
    "tau": 1.0,
    "vf_loss_coeff": 0.5,
    "entropy_coeff": 0.01,
    "entropy_coeff_schedule": None,
    "grad_clip": 40.0,
    "grad_clip_by": "global_norm",
    "num_env_runners": 2,
    "num_envs_per_env_runner": 1,
    "rollout_fragment_length": 50,
    "batch_mode": "truncate_episodes",
    "observation_filter": "NoFilter",
    "model": {"fcnet_hiddens": [256, 256], "fcnet_activation": "tanh",
              "vf_share_layers": False},
}
ALGORITHMS = ("PPO", "APPO")
RLLIB_DEFAULTS = {"PPO": RLLIB_PPO_DEFAULTS, "APPO": RLLIB_APPO_DEFAULTS}

# Sub-key defaults of `model` (old stack, with PPO's vf_share_layers=False) and of the new
# stack's `model_config` (DefaultModelConfig, vf_share_layers=True; APPO sets it False).
RLLIB_MODEL_DEFAULTS = {"model": RLLIB_PPO_DEFAULTS["model"],
                        "model_config": {"fcnet_hiddens": [256, 256], "fcnet_activation": "tanh",
                                         "vf_share_layers": True}}
APPO_MODEL_DEFAULTS = {key: {**value, "vf_share_layers": False}
                       for key, value in RLLIB_MODEL_DEFAULTS.items()}

# Keys only one of the two algorithms has. A dict with an APPO key (or a deprecated one) is read
# as APPO unless algorithm="PPO" is given.
APPO_KEYS = ("vtrace", "vtrace_clip_rho_threshold", "vtrace_clip_pg_rho_threshold",
             "target_worker_clipping", "tau", "target_network_update_freq",
             "circular_buffer_num_batches", "circular_buffer_iterations_per_batch")
PPO_KEYS: dict[str, str] = {
    "vf_clip_param": "PPO's value clipping: RLlib's APPO has none (its value loss is an "
                     "unclipped 0.5·MSE)",
    "use_critic": "removed from RLlib's APPO, which always learns a critic: drop it",
}
# APPO keys RLlib has replaced: key -> (the value APPOConfig holds when the key is not set, which
# is accepted and ignored; what replaced it). Any other value is an error saying so.
_CIRCULAR = ("the circular buffer: circular_buffer_num_batches (batches kept) and "
             "circular_buffer_iterations_per_batch (times each is trained on)")
DEPRECATED: dict[str, tuple[Any, str]] = {
    "target_update_frequency": (-1, "deprecated, replaced by target_network_update_freq "
                                    "(target refreshes every freq x N x K x train batch "
                                    "trained env steps)"),
    "use_critic": (-1, PPO_KEYS["use_critic"]),
    "minibatch_buffer_size": (1, "old API stack, replaced by " + _CIRCULAR),
    "replay_proportion": (0.0, "old API stack, replaced by " + _CIRCULAR),
    "learner_queue_size": (16, "old API stack, replaced by " + _CIRCULAR + ", which is the "
                               "learner's queue now"),
}

# Old spellings -> the key RLlib uses now (both are accepted; giving both with different values
# is an error).
ALIASES = {"lambda_": "lambda", "num_sgd_iter": "num_epochs", "sgd_minibatch_size":
           "minibatch_size", "num_workers": "num_env_runners", "num_envs_per_worker":
           "num_envs_per_env_runner", "model_config": "model"}

IGNORED: dict[str, str] = dict.fromkeys((
    "framework", "num_gpus", "num_gpus_per_learner", "num_cpus_per_learner",
    "num_cpus_per_env_runner", "num_cpus_per_worker", "num_gpus_per_env_runner",
    "num_gpus_per_worker", "num_cpus_for_main_process", "log_level", "eager_tracing",
    "enable_rl_module_and_learner", "enable_env_runner_and_connector_v2",
    "_enable_new_api_stack", "evaluation_interval", "evaluation_duration",
    "evaluation_duration_unit", "evaluation_num_env_runners", "evaluation_num_workers",
    "metrics_num_episodes_for_smoothing", "min_time_s_per_iteration",
    "min_sample_timesteps_per_iteration", "min_train_timesteps_per_iteration",
    "num_gpu_loader_threads", "num_aggregator_actors_per_learner", "learner_queue_timeout",
    "max_requests_in_flight_per_env_runner", "timeout_s_sampler_manager",
    "timeout_s_aggregator_manager"),
    "RLlib infrastructure (workers, devices, logging, evaluation): no effect on training")
IGNORED["seed"] = "seeds come from the PRNG key given to train() (the CLI's --seed)"

# Known RLlib keys with no equivalent here, and why (reported with the unknown keys).
UNSUPPORTED: dict[str, str] = {
    "replay_buffer_num_slots": "IMPALA's old-stack replay: APPO's replay is " + _CIRCULAR,
    "broadcast_interval": "RLlib's asynchronous weight broadcast: the actors' lag is policy_lag "
                          "here (an override)",
    "vtrace_drop_last_ts": "old-stack IMPALA: V-trace runs over every step here",
    "opt_type": "the optimiser is always Adam (adam_eps as an override)",
    "normalize_actions": "Box actions are clipped or tanh-squashed into the bounds: choose "
                         "action_bounds as an override",
    "clip_actions": "Box actions are clipped or tanh-squashed into the bounds: choose "
                    "action_bounds as an override",
    "conv_filters": "the CNN is 3x3 stride-1 convolutions of conv_channels: give that as an "
                    "override",
}


# ----------------------------------------------------------------------------- converters


OFF = object()  # converter result: the key switches its feature off (vf_clip_param None / inf)
SKIP = object()  # converter result: the key leaves its field as it is


def _fail(key: str, value, message: str):
    raise ConfigError(f"from_rllib: {key}={value!r}: {message}")


def _number(key, value):
    if isinstance(value, (list, tuple)):
        _fail(key, value, "expected a number; schedules (lists of [timestep, value]) are not "
              "supported")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(key, value, "expected a number")
    return float(value)


def _count(key, value, minimum: int = 1):
    integral = isinstance(value, numbers.Integral) or (isinstance(value, float)
                                                        and value.is_integer())
    if isinstance(value, bool) or not integral or value < minimum:
        _fail(key, value, f"expected an integer >= {minimum}")
    return int(value)


def _count0(key, value):
    return _count(key, value, minimum=0)


def _count_or_none(key, value):
    return None if value is None else _count(key, value)


def _bool(key, value):
    if not isinstance(value, bool):
        _fail(key, value, "expected True or False")
    return value


def _only(*allowed, why: str = ""):
    """A value check: the key is accepted with one of `allowed` and has no field."""

    def check(key, value):
        if not any(value is a or (type(value) is type(a) and value == a) for a in allowed):
            shown = " or ".join(repr(a) for a in allowed)
            _fail(key, value, f"only {shown} is supported" + (f" ({why})" if why else ""))
        return SKIP

    return check


def _env_name(key, value):
    names = available_envs()
    if not isinstance(value, str) or value not in names:
        close = difflib.get_close_matches(str(value), names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        _fail(key, value, f"not a gymnax environment{hint} (purejaxppo envs lists them)")
    return value


def _use_gae(key, value):
    return SKIP if _bool(key, value) else 1.0


def _vf_clip(key, value):
    if value is None or (isinstance(value, numbers.Real) and value == math.inf):
        return OFF
    number = _number(key, value)
    if not number > 0:
        _fail(key, value, "expected a number > 0, or None / inf for no value clipping")
    return math.sqrt(number)


def _vtrace(key, value):
    return "vtrace" if _bool(key, value) else "gae"


def _positive(key, value):
    number = _number(key, value)
    if not number > 0:
        _fail(key, value, "expected a number > 0")
    return number


def _grad_clip(key, value):
    return NO_GRAD_CLIP if value is None else _number(key, value)


def _fragment(key, value):
    return value if value == "auto" else _count(key, value)


def _obs_filter(key, value):
    filters = {"MeanStdFilter": True, "NoFilter": False}
    if not isinstance(value, str) or value not in filters:
        _fail(key, value, "expected 'MeanStdFilter' or 'NoFilter'")
    return filters[value]


def _env_config(key, value):
    if value not in (None, {}):
        _fail(key, value, "gymnax environment parameters are not configurable through "
              "from_rllib (only an empty env_config)")
    return SKIP


def _hiddens(key, value):
    if (not isinstance(value, (list, tuple)) or not value
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0
                   for v in value)):
        _fail(key, value, "expected a non-empty list of positive layer sizes")
    return tuple(int(v) for v in value)


def _activation(key, value):
    if value not in ACTIVATIONS:
        _fail(key, value, f"purejaxppo's MLP activations are {', '.join(map(repr, ACTIVATIONS))}")
    return value


def _use_lstm(key, value):
    if _bool(key, value):
        _fail(key, value, "no LSTM here; purejaxppo's recurrent core is a GRU: give gru_size "
              "as an override and leave use_lstm False")
    return 0


Converter = Callable[[str, Any], Any]

# RLlib key -> converter(key, value) -> the value of the field the key sets (`FIELD_OF_KEY`), or
# None for the model dicts (read by `_model` through MODEL_TABLE). A key that sets no field is a
# value check only. The size keys (-> num_envs, num_steps, num_minibatches) are combined by
# `_sizes`, and use_gae / lambda, vf_clip_param, use_kl_loss / kl_coeff / kl_target in
# `from_rllib`. Old spellings (ALIASES) are accepted and read as the key they stand for.
TABLE: dict[str, Optional[Converter]] = {
    "env": _env_name,
    "gamma": _number,
    "lr": _number,
    "lambda": _number,
    "lambda_": _number,
    "use_gae": _use_gae,
    "clip_param": _number,
    "vf_clip_param": _vf_clip,
    "vf_loss_coeff": _number,
    "entropy_coeff": _number,
    "use_kl_loss": _bool,
    "kl_coeff": _number,
    "kl_target": _number,
    "grad_clip": _grad_clip,
    "grad_clip_by": _only("global_norm", why="max_grad_norm clips the global norm"),
    "num_epochs": _count,
    "num_sgd_iter": _count,
    "train_batch_size": _count,
    "train_batch_size_per_learner": _count_or_none,
    "rollout_fragment_length": _fragment,
    "num_envs_per_env_runner": _count,
    "num_envs_per_worker": _count,
    "num_env_runners": _count0,
    "num_workers": _count0,
    "minibatch_size": _count_or_none,
    "sgd_minibatch_size": _count_or_none,
    "num_learners": _count0,
    "model": None,  # MODEL_TABLE
    "model_config": None,  # MODEL_TABLE
    "vf_share_layers": _bool,
    "observation_filter": _obs_filter,
    "use_critic": _only(True, why="purejaxppo always learns a critic"),
    # APPO (APPO_KEYS)
    "vtrace": _vtrace,
    "vtrace_clip_rho_threshold": _number,
    "vtrace_clip_pg_rho_threshold": _number,
    "target_worker_clipping": _number,
    "tau": _number,
    "target_network_update_freq": _positive,
    "circular_buffer_num_batches": _count,
    "circular_buffer_iterations_per_batch": _count,
    "shuffle_batch_per_epoch": _only(True, why="minibatches are reshuffled every epoch"),
    "shuffle_sequences": _only(True, why="minibatches are reshuffled every epoch"),
    "batch_mode": _only("truncate_episodes", why="rollouts have a fixed length"),
    "lr_schedule": _only(None, why="the lr is constant (or linearly annealed to 0 with the "
                                   "anneal_lr override)"),
    "entropy_coeff_schedule": _only(None, why="ent_coef is constant"),
    "env_config": _env_config,
    "clip_rewards": _only(None, False, why="rewards are never clipped"),
}

# Keys of RLlib's `model` / `model_config` dict -> converter (the field: FIELD_OF_KEY["model.x"]).
MODEL_TABLE: dict[str, Converter] = {
    "fcnet_hiddens": _hiddens,
    "fcnet_activation": _activation,
    "vf_share_layers": _bool,
    "use_lstm": _use_lstm,
    "free_log_std": _only(True, why="the Gaussian's log-std is a free parameter, not a network "
                                    "output"),
    "conv_activation": _only("relu", why="the CNN's activation is ReLU"),
}

# The field each RLlib key sets, from the config table's `rllib` column (the first field that
# names the key: use_kl_loss -> policy_objective, vf_clip_param -> vf_clip_eps).
FIELD_OF_KEY: dict[str, str] = {key: f.name for f in reversed(FIELDS) for key in f.rllib}

# What from_rllib implies without a key (RLlib has no such switch, or has it fixed), per
# algorithm: RLlib's APPO does not standardise its advantages, clips no value, and fixes V-trace's
# c̄ at 1.
IMPLIED = {"anneal_lr": False, "target_kl": 0.0, "normalize_advantages": True, "gru_size": 0}
IMPLIED_APPO = {**IMPLIED, "normalize_advantages": False, "clip_value": False,
                "vtrace_clip_c": 1.0}
IMPLIED_BY = {"PPO": IMPLIED, "APPO": IMPLIED_APPO}

# Fields from_rllib sets (from a key, or implied) and those it leaves to purejaxppo's defaults
# or the overrides; to_rllib(c) -> from_rllib gives back every MAPPED_FIELDS value.
MAPPED_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS
                                       if f.rllib or f.name in IMPLIED or f.name in IMPLIED_APPO)
UNMAPPED_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.name not in MAPPED_FIELDS)
# The fields only APPO sets; a PPO config (to_rllib) must leave them at PPOConfig's defaults.
APPO_FIELDS: tuple[str, ...] = tuple(dict.fromkeys(
    [FIELD_OF_KEY[k] for k in APPO_KEYS] + ["buffer_num_batches", "vtrace_clip_c"]))


def keys_of(algorithm: str) -> tuple[str, ...]:
    """The keys of `TABLE` that `algorithm` ("PPO" or "APPO") has."""
    other = APPO_KEYS if algorithm == "PPO" else tuple(PPO_KEYS)
    return tuple(k for k in TABLE if k not in other)


def accepted_keys(algorithm: str = "PPO") -> tuple[str, ...]:
    """Every top-level key `from_rllib` accepts for `algorithm` (translated or checked, then
    ignored ones)."""
    return keys_of(algorithm) + tuple(IGNORED)


# ----------------------------------------------------------------------------- from_rllib

_SIZE_KEYS = ("train_batch_size", "train_batch_size_per_learner", "rollout_fragment_length",
              "num_envs_per_env_runner", "num_env_runners", "minibatch_size", "num_learners")
_COMBINED = ("lambda", "use_gae", "vf_clip_param", "vf_loss_coeff", "use_kl_loss", "kl_coeff",
             "kl_target", "target_network_update_freq", "circular_buffer_num_batches")
# The policy objectives of the KL switch (off, on), per algorithm.
_OBJECTIVES = {"PPO": ("clip", "clip+kl_penalty"), "APPO": ("appo", "appo+kl")}


def _algorithm(d: dict, algorithm: Optional[str]) -> tuple[str, list]:
    """The algorithm `d` is read as and the notes saying why: `algorithm` when given ("PPO" or
    "APPO", any case), else APPO when `d` has an APPO key (`APPO_KEYS`, or a deprecated one
    other than use_critic, which PPO has too), else PPO."""
    if algorithm is not None:
        if not isinstance(algorithm, str) or algorithm.upper() not in ALGORITHMS:
            raise ConfigError(f"from_rllib: algorithm={algorithm!r}: expected one of "
                              f"{', '.join(map(repr, ALGORITHMS))} (or None: detected)")
        return algorithm.upper(), []
    found = [k for k in d if k in APPO_KEYS or (k in DEPRECATED and k not in PPO_KEYS)]
    if not found:
        return "PPO", []
    return "APPO", [f"reading the dict as RLlib's APPO (APPOConfig), because of its APPO keys "
                    f"{', '.join(found)}: missing keys take APPO's defaults "
                    f"(RLLIB_APPO_DEFAULTS); pass algorithm='APPO' or 'PPO' to say which"]


def _unknown(d: dict, algorithm: str) -> None:
    """ConfigError naming every key of `d` that `algorithm` does not accept, with the reason for
    the known ones (the other algorithm's, deprecated, `UNSUPPORTED`) and the accepted keys.
    A deprecated APPO key at the value RLlib holds when it is unset passes (ignored)."""
    accepted = keys_of(algorithm)
    explained = []
    for key, value in d.items():
        if key in accepted or key in IGNORED:
            continue
        if algorithm == "APPO" and key in DEPRECATED:
            unset, why = DEPRECATED[key]
            if type(value) is type(unset) and value == unset:
                continue
            explained.append(f"{key}={value!r} ({why})")
        elif algorithm == "APPO" and key in PPO_KEYS:
            explained.append(f"{key!r} ({PPO_KEYS[key]})")
        elif algorithm == "PPO" and (key in APPO_KEYS or key in DEPRECATED):
            explained.append(f"{key!r} (an APPO key, and algorithm='PPO' was given)")
        else:
            explained.append(f"{key!r} ({UNSUPPORTED[key]})" if key in UNSUPPORTED
                             else repr(key))
    if explained:
        raise ConfigError(f"from_rllib: keys with no meaning in purejaxppo's {algorithm}: "
                          + ", ".join(explained) + ". Accepted: " + ", ".join(accepted)
                          + "; accepted and ignored (infrastructure): " + ", ".join(IGNORED))


def _canonical(d: dict, algorithm: str) -> tuple[dict, dict]:
    """`d` without the `IGNORED` and `DEPRECATED` keys (`_unknown` let through only unset ones),
    old spellings under RLlib's current key (top-level `vf_share_layers` left out: `_model` takes
    it), and {current key: key as given}. ConfigError when two spellings of one key disagree."""
    out, given = {}, {}
    for key, value in d.items():
        if key == "vf_share_layers" or key in IGNORED or (key in DEPRECATED
                                                          and key not in keys_of(algorithm)):
            continue
        name = ALIASES.get(key, key)
        if name in out and out[name] != value:
            raise ConfigError(f"from_rllib: {given[name]}={out[name]!r} and {key}={value!r} "
                              f"are the same setting with different values: give one")
        out[name], given[name] = value, key
    return out, given


def _model(model, key: str, top_share, defaults: dict) -> tuple[dict, dict]:
    """The fields of the `model` / `model_config` dict `model` (missing sub-keys: `defaults`,
    RLlib's for `key`) and their sources; `top_share` is a top-level `vf_share_layers` (old
    spelling) or None."""
    model = {} if model is None else model
    if not isinstance(model, dict):
        _fail(key, model, "expected a dict of model settings")
    unknown = [k for k in model if k not in MODEL_TABLE]
    if unknown:
        explained = [f"{k!r} ({UNSUPPORTED[k]})" if k in UNSUPPORTED else repr(k)
                     for k in unknown]
        raise ConfigError(f"from_rllib: {key}: keys with no meaning in purejaxppo: "
                          f"{', '.join(explained)}. Accepted: {', '.join(MODEL_TABLE)}")
    merged = {**defaults, **model}
    names = {sub: f"{key}.{sub}" for sub in merged}
    if top_share is not None:
        if "vf_share_layers" in model and model["vf_share_layers"] != top_share:
            raise ConfigError(f"from_rllib: vf_share_layers={top_share!r} and "
                              f"{key}.vf_share_layers={model['vf_share_layers']!r} disagree: "
                              f"give one")
        merged["vf_share_layers"], names["vf_share_layers"] = top_share, "vf_share_layers"
    changes, sources = {}, {}
    for sub, value in merged.items():
        field = FIELD_OF_KEY.get(f"model.{sub}")
        result = MODEL_TABLE[sub](names[sub], value)
        if field is not None and result is not SKIP:
            changes[field], sources[field] = result, f"{names[sub]}={value!r}"
    return changes, sources


def nearest_multiple(value: int, step: int) -> int:
    """The positive multiple of `step` nearest to `value` (ties: the larger)."""
    low = max(step, value // step * step)
    return min((low, low + step), key=lambda m: (abs(m - value), -m))


def nearest_divisor(n: int, target: int) -> int:
    """The divisor of `n` nearest to `target` (ties: the larger)."""
    small = [k for k in range(1, math.isqrt(n) + 1) if n % k == 0]
    return min(small + [n // k for k in small], key=lambda k: (abs(k - target), -k))


class Sizes(NamedTuple):
    """What `_sizes` decided: the three size fields, where each came from (field -> text) and
    the notes for sizes moved away from RLlib's defaults."""

    fields: dict
    sources: dict
    notes: list


def _sizes(values: dict, given: dict, overrides: dict) -> Sizes:
    """num_envs, num_steps and num_minibatches from RLlib's batch arithmetic (`values`: the
    converted size keys; `given`: the keys the user gave): train_batch_size = num_envs *
    num_steps, num_envs = num_envs_per_env_runner * max(1, num_env_runners), minibatch_size =
    batch / max(1, num_learners) / num_minibatches. Overrides of the three replace their step.

    A size the user gave that does not divide is an error naming it. A size that is RLlib's
    default moves to the nearest one that divides (RLlib runs its defaults: it wraps minibatches
    around the batch end), with a note: the batch to the nearest multiple of num_envs x
    num_learners (x minibatch_size when that was given), or to rollout_fragment_length x
    num_envs when the fragment was given; an unset fragment follows the batch ("auto"); the
    minibatch to the nearest divisor of the batch per learner."""
    def shown(key):
        default = "" if key in given else " (RLlib default)"
        return f"{given.get(key, key)}={values[key]!r}{default}"

    notes, sources = [], {}
    runners, per_runner = values["num_env_runners"], values["num_envs_per_env_runner"]
    learners = max(1, values["num_learners"])
    per_learner = values["train_batch_size_per_learner"]
    batch = per_learner * learners if per_learner is not None else values["train_batch_size"]
    batch_key = ("train_batch_size_per_learner" if per_learner is not None
                 else "train_batch_size")
    batch_default = batch_key not in given
    minibatch, minibatch_default = values["minibatch_size"], "minibatch_size" not in given
    fragment = values["rollout_fragment_length"]
    num_envs = overrides.get("num_envs", per_runner * max(1, runners))
    out = {"num_envs": num_envs}
    sources["num_envs"] = ("num_envs (override)" if "num_envs" in overrides else
                           f"{shown('num_envs_per_env_runner')} x max(1, "
                           f"{shown('num_env_runners')})")
    if "num_steps" in overrides:
        out["num_steps"] = overrides["num_steps"]
        batch = num_envs * out["num_steps"]
        sources["num_steps"] = "num_steps (override)"
    else:
        sources["num_steps"] = f"{shown(batch_key)} / num_envs"
        if batch_default and fragment != "auto" and "rollout_fragment_length" in given:
            moved = fragment * num_envs
            reason = (f"{shown('rollout_fragment_length')} x {num_envs} environments, the batch "
                      f"that fragment length means here (num_steps = the fragment)")
        elif batch_default:
            step = math.lcm(num_envs, learners * (1 if minibatch_default or minibatch is None
                                                  else minibatch))
            moved = nearest_multiple(batch, step)
            reason = (f"the nearest multiple of {step} (num_envs {num_envs}"
                      + (f", num_learners {learners}" if learners > 1 else "")
                      + ("" if minibatch_default or minibatch is None else
                         f", {shown('minibatch_size')}") + ")")
        if batch_default and moved != batch:
            notes.append(f"{shown(batch_key)}: using a batch of {moved} transitions instead, "
                         f"{reason}. Give {batch_key} to choose")
            sources["num_steps"] = f"{shown(batch_key)} moved to {moved}: {reason}; / num_envs"
            batch = moved
        if batch % num_envs:
            envs = ("num_envs, an override" if "num_envs" in overrides else
                    f"{shown('num_envs_per_env_runner')} x max(1, {shown('num_env_runners')})")
            raise ConfigError(f"from_rllib: {shown(batch_key)}: a batch of {batch} transitions "
                              f"does not divide among {num_envs} environments ({envs}); "
                              f"train_batch_size = num_envs * num_steps")
        out["num_steps"] = batch // num_envs
        if fragment != "auto" and fragment != out["num_steps"]:
            if "rollout_fragment_length" in given:
                raise ConfigError(f"from_rllib: {shown('rollout_fragment_length')}: a batch of "
                                  f"{batch} transitions ({shown(batch_key)}) over {num_envs} "
                                  f"environments is {out['num_steps']} steps per environment "
                                  f"and update; give 'auto' or {out['num_steps']}")
            notes.append(f"{shown('rollout_fragment_length')} is not the {out['num_steps']} "
                         f"steps per environment of a batch of {batch} over {num_envs} "
                         f"environments; using {out['num_steps']} (as 'auto')")
    if "num_minibatches" in overrides:
        out["num_minibatches"] = overrides["num_minibatches"]
        sources["num_minibatches"] = "num_minibatches (override)"
        return Sizes(out, sources, notes)
    if batch % learners:
        raise ConfigError(f"from_rllib: {shown('num_learners')}: a batch of {batch} transitions "
                          f"does not divide among {learners} learners")
    per = batch // learners
    sources["num_minibatches"] = (f"{shown('minibatch_size')}: batch {per}"
                                  + (f" per learner ({learners})" if learners > 1 else ""))
    if minibatch is None:  # RLlib: no minibatching, the whole batch per learner
        minibatch = per
    elif per % minibatch:
        per_text = f" per learner ({learners})" if learners > 1 else ""
        if not minibatch_default:
            raise ConfigError(f"from_rllib: {shown('minibatch_size')}: the batch of {per} "
                              f"transitions{per_text} ({shown(batch_key)}) is not a multiple "
                              f"of it; purejaxppo splits each batch into equal minibatches "
                              f"(RLlib wraps around the batch end)")
        moved = nearest_divisor(per, minibatch)
        reason = (f"the batch of {per} transitions{per_text} is not a multiple of it (RLlib "
                  f"wraps its minibatches around the batch end; purejaxppo splits each batch "
                  f"into equal ones): using minibatches of {moved} ({per // moved} per epoch), "
                  f"the nearest size that divides it")
        notes.append(f"{shown('minibatch_size')}: {reason}. Give minibatch_size to choose")
        sources["num_minibatches"] += f" moved to {moved}: {reason}"
        minibatch = moved
    out["num_minibatches"] = per // minibatch
    return Sizes(out, sources, notes)


class RLlibMapping(NamedTuple):
    """What `read_rllib` read: the config, where each field it set came from, and the notes."""

    config: PPOConfig
    sources: dict  # field -> the RLlib key(s) and value(s) it came from ("(RLlib default)")
    notes: tuple  # what was chosen for the user (sizes moved from RLlib's defaults, ...)


def from_rllib(d: dict, *, algorithm: Optional[str] = None, **overrides) -> PPOConfig:
    """The validated `PPOConfig` for RLlib config dict `d` (PPO's or APPO's keys: `algorithm`
    "PPO" / "APPO", or None to tell from the keys), `overrides` (purejaxppo fields) winning.
    Missing keys take `RLLIB_PPO_DEFAULTS` / `RLLIB_APPO_DEFAULTS`; see the module docstring for
    the mapping, the keys accepted and ignored, and what is rejected. ConfigError names the
    offending key. Prints each of `read_rllib`'s notes to stderr ("note: from_rllib: ...")."""
    mapping = read_rllib(d, algorithm=algorithm, **overrides)
    for text in mapping.notes:
        print(f"note: from_rllib: {text}", file=sys.stderr)
    return mapping.config


def _objective(converted: dict, source, algorithm: str) -> tuple[dict, dict]:
    """policy_objective, kl_adaptation, kl_coef and kl_target from use_kl_loss / kl_coeff /
    kl_target: the KL loss with RLlib's β adaptation, switched off by kl_coeff = 0 as well."""
    kl_on = converted["use_kl_loss"] and converted["kl_coeff"] != 0.0
    changes = {"policy_objective": _OBJECTIVES[algorithm][kl_on]}
    sources = {"policy_objective": f"{source('use_kl_loss')}, {source('kl_coeff')}"
                                   + (" (APPO)" if algorithm == "APPO" else "")}
    if kl_on:
        changes["kl_adaptation"], sources["kl_adaptation"] = "rllib", source("use_kl_loss")
    for key in ("kl_coeff", "kl_target"):
        if kl_on or converted[key] > 0:  # unused and <= 0: leave our (valid) default
            field = FIELD_OF_KEY[key]
            changes[field], sources[field] = converted[key], source(key)
    return changes, sources


def _appo_terms(converted: dict, source, given: dict, user: dict) -> tuple[dict, dict, list]:
    """APPO's combined keys: the value loss (RLlib's APPO weighs 0.5·MSE, as we do), the
    circular buffer's N, and the target refresh in updates = target_network_update_freq x N
    (RLlib counts freq x N x K x batch trained env steps; one of our updates trains K batches).
    Also the notes on λ."""
    changes = {"vf_coef": converted["vf_loss_coeff"],
               "buffer_num_batches": converted["circular_buffer_num_batches"]}
    sources = {"vf_coef": source("vf_loss_coeff") + " (APPO's value loss is 0.5·MSE, as ours)",
               "buffer_num_batches": source("circular_buffer_num_batches")}
    freq, n = converted["target_network_update_freq"], converted["circular_buffer_num_batches"]
    every = freq * n
    if abs(every - round(every)) > 1e-9 or round(every) < 1:
        raise ConfigError(f"from_rllib: {source('target_network_update_freq')}: the target "
                          f"network is refreshed between updates here, every freq x "
                          f"{source('circular_buffer_num_batches')} = {every:g} updates; "
                          f"give a freq that makes it a whole number >= 1")
    changes["target_update_every"] = int(round(every))
    sources["target_update_every"] = (f"{source('target_network_update_freq')} x "
                                      f"{source('circular_buffer_num_batches')}")
    notes = []
    if converted["vtrace"] == "vtrace" and "lambda" in user and converted["lambda"] != 1.0:
        notes.append(f"{given['lambda']}={user['lambda']!r}: RLlib's V-trace has no λ (its "
                     f"traces are min(1, ρ)) and ignores it; here it is V-trace's λ "
                     f"(c_s = λ·min(c̄, ρ_s)), as gae_lambda")
    return changes, sources, notes


def read_rllib(d: dict, *, algorithm: Optional[str] = None, **overrides) -> RLlibMapping:
    """`from_rllib` without printing: the config, with its provenance (`RLlibMapping`)."""
    if not isinstance(d, dict):
        raise ConfigError(f"from_rllib: expected a dict of RLlib config keys, got "
                          f"{type(d).__name__}")
    bad = [k for k in overrides if k not in FIELD]
    if bad:
        raise ConfigError(f"from_rllib: overrides {', '.join(bad)} are not PPOConfig fields "
                          f"(overrides use purejaxppo names; RLlib keys go in the dict)")
    algorithm, notes = _algorithm(d, algorithm)
    _unknown(d, algorithm)
    user, given = _canonical(d, algorithm)
    merged = {**RLLIB_DEFAULTS[algorithm], **user}
    converted = {key: TABLE[key](given.get(key, key), value)
                 for key, value in merged.items() if TABLE[key] is not None}

    def source(key):
        default = "" if key in user else " (RLlib default)"
        return f"{given.get(key, key)}={merged[key]!r}{default}"

    model_defaults = (RLLIB_MODEL_DEFAULTS if algorithm == "PPO" else APPO_MODEL_DEFAULTS)
    model_key = given.get("model", "model")
    changes, sources = _model(user.get("model"), model_key, d.get("vf_share_layers"),
                              model_defaults[model_key])
    for key, result in converted.items():
        field = FIELD_OF_KEY.get(key)
        if field is None or result is SKIP or key in _SIZE_KEYS or key in _COMBINED:
            continue
        changes[field], sources[field] = result, source(key)
    if algorithm == "APPO":
        more, more_sources, lambda_notes = _appo_terms(converted, source, given, user)
        changes.update(more)
        sources.update(more_sources)
        notes.extend(lambda_notes)
    else:
        # RLlib PPO's value loss is the squared error, ours 0.5·MSE: twice the weight
        changes["vf_coef"], sources["vf_coef"] = 2.0 * converted["vf_loss_coeff"], \
            source("vf_loss_coeff") + " x 2 (RLlib PPO's value loss is the squared error)"
        # vf_clip_param: √ (value units), or None / inf: no value clipping
        if converted["vf_clip_param"] is OFF:
            changes["clip_value"] = False
            sources["clip_value"] = source("vf_clip_param")
        else:
            changes["clip_value"], changes["vf_clip_eps"] = True, converted["vf_clip_param"]
            sources["vf_clip_eps"] = sources["clip_value"] = source("vf_clip_param")
    # use_gae=False: bootstrapped Monte-Carlo returns, i.e. λ = 1
    if converted["use_gae"] is SKIP:
        changes["gae_lambda"], sources["gae_lambda"] = converted["lambda"], source("lambda")
    else:
        if "lambda" in user and converted["lambda"] != 1.0:
            raise ConfigError(f"from_rllib: {given['use_gae']}=False makes RLlib ignore "
                              f"{source('lambda')} (it uses bootstrapped Monte-Carlo returns: "
                              f"GAE with λ = 1); drop one of them")
        changes["gae_lambda"], sources["gae_lambda"] = 1.0, source("use_gae")
    more, more_sources = _objective(converted, source, algorithm)
    changes.update(more)
    sources.update(more_sources)
    implied = IMPLIED_BY[algorithm]
    changes.update(implied)
    sources.update(dict.fromkeys(implied, f"implied by RLlib's {algorithm} (no key)"))
    sizes = _sizes({k: converted[k] for k in _SIZE_KEYS}, given, overrides)
    changes.update(sizes.fields)
    sources.update(sizes.sources)
    notes.extend(sizes.notes)
    changes.update(overrides)
    sources.update(dict.fromkeys(overrides, "override"))
    config = PPOConfig(**changes)
    try:
        validate_config(config)
    except ConfigError as err:
        field = next((f for f in sources if f"PPOConfig.{f}:" in str(err)), None)
        if field is None or field in overrides:
            raise
        raise ConfigError(f"{err} (from RLlib {sources[field]})") from None
    return RLlibMapping(config, sources, tuple(notes))


# ----------------------------------------------------------------------------- to_rllib


def to_rllib(config: PPOConfig) -> dict:
    """RLlib config keys for `config`: APPO's (`APPOConfig`) when its objective is "appo" or
    "appo+kl", else PPO's (see the module docstring). `from_rllib` of the result gives back every
    field in `MAPPED_FIELDS`. ConfigError naming every field whose value that RLlib algorithm
    cannot express."""
    validate_config(config)
    appo = config.policy_objective in _OBJECTIVES["APPO"]
    kl = config.policy_objective in ("clip+kl_penalty", "appo+kl")
    problems = []
    if config.policy_objective not in _OBJECTIVES["PPO"] + _OBJECTIVES["APPO"]:
        problems.append(f"policy_objective: {config.policy_objective!r} has no RLlib key; "
                        f"RLlib's PPO clips ('clip', 'clip+kl_penalty'), its APPO clips the "
                        f"target-corrected ratio ('appo', 'appo+kl')")
    elif kl and config.kl_adaptation != "rllib":
        problems.append(f"kl_adaptation: {config.kl_adaptation!r}; RLlib adapts β by its own "
                        f"rule ('rllib')")
    if config.anneal_lr:
        problems.append("anneal_lr: True; RLlib's lr is constant without an lr_schedule, which "
                        "is not translated (set anneal_lr=False)")
    if config.target_kl > 0:
        problems.append(f"target_kl: {config.target_kl}; RLlib has no KL early stopping")
    if config.gru_size:
        problems.append(f"gru_size: {config.gru_size}; RLlib's recurrent core is an LSTM")
    if config.policy_lag:
        problems.append(f"policy_lag: {config.policy_lag}; RLlib has no setting for it (its lag "
                        f"comes from its asynchronous actors)")
    implied = IMPLIED_BY["APPO" if appo else "PPO"]
    for field in ("normalize_advantages", "vtrace_clip_c") + (("clip_value",) if appo else ()):
        if field in implied and getattr(config, field) != implied[field]:
            problems.append(f"{field}: {getattr(config, field)!r}; RLlib's "
                            f"{'APPO' if appo else 'PPO'} has {implied[field]!r}")
    if not appo:
        default = PPOConfig()
        problems.extend(f"{field}: {getattr(config, field)!r}; RLlib's PPO has no V-trace, "
                        f"target network or circular buffer (APPO's objectives 'appo' / "
                        f"'appo+kl' write APPO keys)"
                        for field in APPO_FIELDS
                        if getattr(config, field) != getattr(default, field))
    if problems:
        raise ConfigError(f"to_rllib: RLlib's {'APPO' if appo else 'PPO'} cannot express "
                          f"PPOConfig." + "; PPOConfig.".join(problems))
    keys = {
        "env": config.env_name,
        "gamma": config.gamma,
        "lr": config.learning_rate,
        "lr_schedule": None,
        "use_gae": True,
        "lambda": config.gae_lambda,
        "clip_param": config.clip_eps,
        "entropy_coeff": config.ent_coef,
        "use_kl_loss": kl,
        "kl_coeff": config.kl_coef,
        "kl_target": config.kl_target,
        "grad_clip": None if config.max_grad_norm == NO_GRAD_CLIP else config.max_grad_norm,
        "grad_clip_by": "global_norm",
        "num_epochs": config.update_epochs,
        "train_batch_size": config.batch_size,
        "minibatch_size": config.minibatch_size,
        "num_learners": 0,
        "num_env_runners": 0,
        "num_envs_per_env_runner": config.num_envs,
        "rollout_fragment_length": config.num_steps,
        "observation_filter": "MeanStdFilter" if config.normalize_obs else "NoFilter",
        "model": {"fcnet_hiddens": list(config.hidden_sizes),
                  "fcnet_activation": config.activation,
                  "vf_share_layers": config.shared_trunk, "use_lstm": False},
    }
    if not appo:
        return {**keys, "use_critic": True,
                "vf_clip_param": config.vf_clip_eps ** 2 if config.clip_value else math.inf,
                "vf_loss_coeff": config.vf_coef / 2}
    return {**keys, "vf_loss_coeff": config.vf_coef,
            "vtrace": config.advantage_estimator == "vtrace",
            "vtrace_clip_rho_threshold": config.vtrace_clip_rho,
            "vtrace_clip_pg_rho_threshold": config.vtrace_clip_pg_rho,
            "target_worker_clipping": config.behaviour_ratio_clip,
            "tau": config.tau,
            "circular_buffer_num_batches": config.buffer_num_batches,
            "circular_buffer_iterations_per_batch": config.buffer_iterations_per_batch,
            "target_network_update_freq": config.target_update_every / config.buffer_num_batches}
