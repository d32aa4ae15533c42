"""RLlib's PPO config vocabulary: `from_rllib` and `to_rllib` (purejaxppo/rllib.py)."""

import dataclasses
import math
import random

import subprocess
import sys

import pytest

import purejaxppo
from purejaxppo import ConfigError, PPOConfig
from purejaxppo.config import FIELDS
from purejaxppo.rllib import (ALIASES, APPO_KEYS, DEPRECATED, FIELD_OF_KEY, IMPLIED, IMPLIED_APPO,
                              MAPPED_FIELDS, MODEL_TABLE, NO_GRAD_CLIP, RLLIB_APPO_DEFAULTS,
                              RLLIB_PPO_DEFAULTS, TABLE, UNMAPPED_FIELDS, from_rllib,
                              nearest_divisor, nearest_multiple, read_rllib, to_rllib)

# RLlib's PPO defaults, written out here (ray.rllib.algorithms.ppo.PPOConfig; gamma and the
# env-runner settings from AlgorithmConfig, num_env_runners=2 from PPOConfig itself).
RLLIB_DEFAULTS = {
    "gamma": 0.99, "lr": 5e-5, "lr_schedule": None, "train_batch_size": 4000,
    "train_batch_size_per_learner": None, "num_learners": 0, "minibatch_size": 128,
    "num_epochs": 30, "shuffle_batch_per_epoch": True, "use_critic": True, "use_gae": True,
    "lambda": 1.0, "use_kl_loss": True, "kl_coeff": 0.2, "kl_target": 0.01,
    "vf_loss_coeff": 1.0, "entropy_coeff": 0.0, "entropy_coeff_schedule": None,
    "clip_param": 0.3, "vf_clip_param": 10.0, "grad_clip": None, "grad_clip_by": "global_norm",
    "num_env_runners": 2, "num_envs_per_env_runner": 1, "rollout_fragment_length": "auto",
    "batch_mode": "truncate_episodes", "observation_filter": "NoFilter",
    "model": {"fcnet_hiddens": [256, 256], "fcnet_activation": "tanh", "vf_share_layers": False},
}

# Sizes that divide: 4 envs x 128 steps, minibatches of 128.
BASE = {"train_batch_size": 512, "minibatch_size": 128, "num_env_runners": 0,
        "num_envs_per_env_runner": 4}


def convert(**keys):
    """from_rllib of BASE updated with `keys` (an old spelling given replaces BASE's new one)."""
    given = {ALIASES.get(k, k) for k in keys}
    return from_rllib({**{k: v for k, v in BASE.items() if k not in given}, **keys})


def test_rllib_defaults_are_written_out_and_missing_keys_take_them():
    assert RLLIB_PPO_DEFAULTS == RLLIB_DEFAULTS
    # RLlib's own defaults do not split into equal minibatches (4000 / 128 = 31.25): the error
    # names the key (and says when the value is RLlib's default rather than given).
    with pytest.raises(ConfigError, match=r"minibatch_size=128: the batch of 4000 "):
        from_rllib(RLLIB_DEFAULTS)
    # ... given explicitly; when both are RLlib's defaults they move (see the next test)
    with pytest.raises(ConfigError, match=r"minibatch_size=128: the batch of 4000 "):
        from_rllib({"train_batch_size": 4000, "minibatch_size": 128})
    fixed = {**RLLIB_DEFAULTS, "minibatch_size": 125}
    config = from_rllib(fixed)
    assert config == from_rllib({"minibatch_size": 125})  # missing keys: RLlib's defaults
    assert config == from_rllib({})  # RLlib's 128 moves to 125, the nearest divisor of 4000
    assert config == from_rllib(RLLIB_DEFAULTS, num_minibatches=32)  # an override replaces it
    purejaxppo.validate_config(config)
    assert (config.num_envs, config.num_steps, config.num_minibatches) == (2, 2000, 32)
    assert config.update_epochs == 30 and config.learning_rate == 5e-5 and config.gamma == 0.99
    assert config.gae_lambda == 1.0 and config.clip_eps == 0.3 and config.ent_coef == 0.0
    assert config.vf_coef == 2.0 and config.vf_clip_eps == math.sqrt(10.0) and config.clip_value
    assert config.policy_objective == "clip+kl_penalty" and config.kl_adaptation == "rllib"
    assert config.kl_coef == 0.2 and config.kl_target == 0.01
    assert config.max_grad_norm == NO_GRAD_CLIP
    assert config.hidden_sizes == (256, 256) and config.activation == "tanh"
    assert not config.shared_trunk and not config.normalize_obs
    # implied by RLlib, no key: constant lr, no KL early stopping, advantages standardised
    assert not config.anneal_lr and config.target_kl == 0 and config.normalize_advantages
    assert config.gru_size == 0
    # untouched: ours
    assert config.total_timesteps == PPOConfig().total_timesteps
    assert config.adam_eps == PPOConfig().adam_eps


# The material's own example (issue 21): no sizes given, so RLlib's defaults (4000, 128).
MATERIAL = {"clip_param": 0.2, "vf_loss_coeff": 0.5, "entropy_coeff": 0.01, "gamma": 0.99,
            "lambda_": 0.95, "num_sgd_iter": 4}


def test_the_materials_example_maps_with_rllibs_default_sizes_moved_and_said(capsys):
    config = PPOConfig.from_rllib(MATERIAL)
    # 4000 transitions over RLlib's 2 env runners; 4000 / 128 = 31.25, so minibatches of 125
    # (the divisor of 4000 nearest to 128): 32 per epoch, as many as RLlib's wrapped 128s
    assert (config.num_envs, config.num_steps, config.num_minibatches) == (2, 2000, 32)
    assert config.minibatch_size == 125
    assert (config.clip_eps, config.vf_coef, config.ent_coef, config.gamma, config.gae_lambda,
            config.update_epochs) == (0.2, 1.0, 0.01, 0.99, 0.95, 4)
    err = capsys.readouterr().err
    assert err.count("note: from_rllib: ") == 1
    assert "minibatch_size=128 (RLlib default)" in err and "minibatches of 125 (32 per" in err
    # the same, returned: the note and where each size came from
    mapping = read_rllib(MATERIAL)
    assert mapping.config == config and capsys.readouterr().err == ""
    assert len(mapping.notes) == 1 and "125" in mapping.notes[0]
    assert mapping.sources["num_minibatches"].startswith(
        "minibatch_size=128 (RLlib default): batch 4000 moved to 125")
    assert mapping.sources["num_steps"] == "train_batch_size=4000 (RLlib default) / num_envs"
    assert mapping.sources["clip_eps"] == "clip_param=0.2"
    assert mapping.sources["gae_lambda"] == "lambda_=0.95"
    assert mapping.sources["learning_rate"] == "lr=5e-05 (RLlib default)"
    # sizes that divide as they are: no note
    assert read_rllib(BASE).notes == ()


@pytest.mark.parametrize("keys, sizes, said", [
    # the default batch moves to the nearest multiple the given sizes need
    ({"minibatch_size": 96}, (2, 2016, 42), "using a batch of 4032 transitions instead, the "
                                            "nearest multiple of 96"),
    ({"num_envs_per_env_runner": 3}, (6, 667, 29), "4002 transitions"),  # then 138-minibatches
    ({"num_envs_per_env_runner": 3, "minibatch_size": 100}, (6, 650, 39), "3900 transitions"),
    ({"num_learners": 3, "minibatch_size": 50}, (2, 2025, 27), "4050 transitions"),
    # a given fragment length fixes num_steps, so the default batch is fragment x num_envs
    ({"rollout_fragment_length": 100}, (2, 100, 2), "rollout_fragment_length=100 x 2 "),
    # the default minibatch moves to the divisor of the given batch nearest to 128
    ({"train_batch_size": 1000}, (2, 500, 8), "minibatches of 125 (8 per epoch)"),
    ({"train_batch_size": 1002}, (2, 501, 6), "minibatches of 167 (6 per epoch)"),
    ({"train_batch_size_per_learner": 1000, "num_learners": 2}, (2, 1000, 8),
     "minibatches of 125"),
])
def test_default_sizes_move_to_the_nearest_that_divide(keys, sizes, said):
    mapping = read_rllib(keys)
    c = mapping.config
    assert (c.num_envs, c.num_steps, c.num_minibatches) == sizes
    assert any(said in note for note in mapping.notes), mapping.notes
    assert all("(RLlib default)" in note for note in mapping.notes)


def test_given_sizes_that_cannot_be_honoured_stay_errors():
    with pytest.raises(ConfigError, match=r"minibatch_size=96: the batch of 1000 .*\(train_"
                                          r"batch_size=1000\)"):
        from_rllib({"train_batch_size": 1000, "minibatch_size": 96, "num_env_runners": 0,
                    "num_envs_per_env_runner": 4})
    with pytest.raises(ConfigError, match=r"train_batch_size=1001: .* 2 environments"):
        from_rllib({"train_batch_size": 1001})
    with pytest.raises(ConfigError, match=r"rollout_fragment_length=100: .* give 'auto' or "
                                          r"500"):
        from_rllib({"train_batch_size": 1000, "rollout_fragment_length": 100})
    with pytest.raises(ConfigError, match=r"minibatch_size=64: the batch of 300"):
        from_rllib({"rollout_fragment_length": 150, "minibatch_size": 64})


def test_nearest_multiple_and_divisor():
    assert [nearest_multiple(v, 96) for v in (4000, 4031, 4032, 48, 1, 144)] == \
        [4032, 4032, 4032, 96, 96, 192]  # 144: a tie between 96 and 192 goes up
    assert [nearest_divisor(4000, t) for t in (128, 1, 4000, 9999, 90)] == \
        [125, 1, 4000, 4000, 100]  # 90: a tie between 80 and 100 goes up
    assert nearest_divisor(97, 50) == 97  # a prime: 1 or itself (47 vs 49 away)
    rng = random.Random(0)
    for _ in range(300):
        n, t = rng.randint(1, 5000), rng.randint(1, 300)
        brute = min((k for k in range(1, n + 1) if n % k == 0), key=lambda k: (abs(k - t), -k))
        assert nearest_divisor(n, t) == brute
        step = rng.randint(1, 300)
        brute = min(range(step, n + 2 * step, step), key=lambda m: (abs(m - n), -m))
        assert nearest_multiple(n, step) == brute


@pytest.mark.parametrize("keys, expected", [
    ({"env": "Pendulum-v1"}, {"env_name": "Pendulum-v1"}),
    ({"gamma": 0.9}, {"gamma": 0.9}),
    ({"lr": 3e-4}, {"learning_rate": 3e-4, "anneal_lr": False}),
    ({"lambda": 0.9}, {"gae_lambda": 0.9}),
    ({"lambda_": 0.8}, {"gae_lambda": 0.8}),
    ({"use_gae": False}, {"gae_lambda": 1.0}),
    ({"use_gae": True, "lambda": 0.95}, {"gae_lambda": 0.95}),
    ({"clip_param": 0.1}, {"clip_eps": 0.1}),
    ({"vf_clip_param": 4.0}, {"vf_clip_eps": 2.0, "clip_value": True}),
    ({"vf_clip_param": None}, {"clip_value": False}),
    ({"vf_clip_param": float("inf")}, {"clip_value": False}),
    ({"vf_loss_coeff": 0.25}, {"vf_coef": 0.5}),
    ({"entropy_coeff": 0.01}, {"ent_coef": 0.01}),
    ({"use_kl_loss": True, "kl_coeff": 0.5}, {"policy_objective": "clip+kl_penalty",
                                              "kl_adaptation": "rllib", "kl_coef": 0.5}),
    ({"use_kl_loss": False, "kl_coeff": 0.5}, {"policy_objective": "clip", "kl_coef": 0.5,
                                               "kl_adaptation": "paper"}),
    ({"use_kl_loss": True, "kl_coeff": 0.0}, {"policy_objective": "clip"}),
    ({"kl_target": 0.02}, {"kl_target": 0.02}),
    ({"grad_clip": 0.5}, {"max_grad_norm": 0.5}),
    ({"grad_clip": None}, {"max_grad_norm": NO_GRAD_CLIP}),
    ({"num_epochs": 7}, {"update_epochs": 7}),
    ({"num_sgd_iter": 7}, {"update_epochs": 7}),
    ({"train_batch_size": 1024}, {"num_envs": 4, "num_steps": 256, "num_minibatches": 8}),
    ({"num_env_runners": 4, "num_envs_per_env_runner": 2}, {"num_envs": 8, "num_steps": 64}),
    ({"num_workers": 2, "num_envs_per_worker": 8}, {"num_envs": 16, "num_steps": 32}),
    ({"minibatch_size": 64}, {"num_minibatches": 8}),
    ({"sgd_minibatch_size": 256}, {"num_minibatches": 2}),
    ({"num_learners": 2, "minibatch_size": 64}, {"num_minibatches": 4}),
    ({"train_batch_size_per_learner": 256, "num_learners": 2, "minibatch_size": 64},
     {"num_steps": 128, "num_minibatches": 4}),
    ({"rollout_fragment_length": 128}, {"num_steps": 128}),
    ({"model": {"fcnet_hiddens": [32, 16], "fcnet_activation": "relu",
                "vf_share_layers": True}},
     {"hidden_sizes": (32, 16), "activation": "relu", "shared_trunk": True}),
    ({"model": {"fcnet_hiddens": [32]}}, {"hidden_sizes": (32,), "shared_trunk": False}),
    ({"model_config": {"fcnet_hiddens": [32]}},  # the new stack's model shares by default
     {"hidden_sizes": (32,), "shared_trunk": True}),
    ({"vf_share_layers": True}, {"shared_trunk": True}),
    ({"model": {"use_lstm": False, "free_log_std": True, "conv_activation": "relu"}},
     {"gru_size": 0}),
    ({"observation_filter": "MeanStdFilter"}, {"normalize_obs": True}),
    ({"observation_filter": "NoFilter"}, {"normalize_obs": False}),
])
def test_each_key_maps_to_its_field(keys, expected):
    config = convert(**keys)
    assert {k: getattr(config, k) for k in expected} == expected


def test_checked_and_ignored_keys_change_nothing():
    plain = convert()
    checked = {"use_critic": True, "shuffle_batch_per_epoch": True,
               "shuffle_sequences": True, "batch_mode": "truncate_episodes", "lr_schedule": None,
               "entropy_coeff_schedule": None, "env_config": {}, "clip_rewards": None,
               "grad_clip_by": "global_norm", "rollout_fragment_length": "auto"}
    ignored = {"framework": "torch", "num_gpus": 1, "seed": 123, "log_level": "WARN",
               "num_cpus_per_env_runner": 2, "evaluation_interval": 10}
    assert convert(**checked, **ignored) == plain


def test_overrides_use_our_names_and_win():
    config = from_rllib({**BASE, "lr": 1e-3}, total_timesteps=10_240, learning_rate=5e-4,
                        num_envs=8)
    assert config.total_timesteps == 10_240 and config.learning_rate == 5e-4
    assert (config.num_envs, config.num_steps) == (8, 64)  # 512 transitions over 8 envs
    assert from_rllib(BASE, num_steps=32).batch_size == 128
    assert PPOConfig.from_rllib(BASE, num_steps=32) == from_rllib(BASE, num_steps=32)  # delegates
    with pytest.raises(ConfigError, match="lr_rate"):
        from_rllib(BASE, lr_rate=1e-3)


def test_package_exports_and_config_does_not_import_rllib():
    assert purejaxppo.from_rllib is from_rllib and purejaxppo.to_rllib is to_rllib
    # config is below the vocabularies: loading it loads no rllib (PPOConfig.from_rllib imports
    # it when called)
    code = "import sys, purejaxppo.config; assert 'purejaxppo.rllib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


ROUND_TRIP = [
    PPOConfig(anneal_lr=False),
    PPOConfig(anneal_lr=False, env_name="Pendulum-v1", num_envs=8, num_steps=64,
              update_epochs=10, num_minibatches=16, learning_rate=3e-4, gamma=0.95,
              gae_lambda=0.9, clip_eps=0.1, vf_clip_eps=0.3, vf_coef=1.5, ent_coef=0.003,
              max_grad_norm=NO_GRAD_CLIP, policy_objective="clip+kl_penalty",
              kl_adaptation="rllib", kl_coef=0.3, kl_target=0.02, hidden_sizes=(128, 32),
              activation="relu", shared_trunk=True, normalize_obs=True),
    PPOConfig(anneal_lr=False, clip_value=False, max_grad_norm=1.0),
]


@pytest.mark.parametrize("config", ROUND_TRIP)
def test_round_trip(config):
    back = from_rllib(to_rllib(config))
    assert {f: getattr(back, f) for f in MAPPED_FIELDS} == \
        {f: getattr(config, f) for f in MAPPED_FIELDS}
    carried = {f: getattr(config, f) for f in UNMAPPED_FIELDS}
    assert from_rllib(to_rllib(config), **carried) == config
    assert to_rllib(back) == to_rllib(config)


def test_round_trip_is_exact_for_the_rescaled_values():
    """vf_clip_eps goes out squared and back as a square root, vf_coef halved and doubled."""
    rng = random.Random(0)
    for _ in range(200):
        config = PPOConfig(anneal_lr=False, vf_clip_eps=rng.uniform(1e-3, 100.0),
                           vf_coef=rng.uniform(0.0, 10.0))
        back = from_rllib(to_rllib(config))
        assert (back.vf_clip_eps, back.vf_coef) == (config.vf_clip_eps, config.vf_coef)


def test_mapped_and_unmapped_fields_cover_the_config():
    fields = [f.name for f in dataclasses.fields(PPOConfig)]
    assert sorted(MAPPED_FIELDS + UNMAPPED_FIELDS) == sorted(fields)


def test_the_field_tables_rllib_column_names_keys_from_rllib_reads():
    """Each RLlib key in the config's field table is one from_rllib accepts under its current
    name (a top-level key of TABLE, or "model.x" for a key of MODEL_TABLE); the mapped fields are
    exactly the fields with a key or an implied value."""
    for field in FIELDS:
        for key in field.rllib:
            top, _, sub = key.partition(".")
            assert (sub in MODEL_TABLE and top == "model") if sub else key in TABLE, key
            assert key not in ALIASES, key
    assert set(MAPPED_FIELDS) == {f.name for f in FIELDS if f.rllib} | set(IMPLIED) | set(
        IMPLIED_APPO)
    assert FIELD_OF_KEY["lr"] == "learning_rate" and FIELD_OF_KEY["use_kl_loss"] == \
        "policy_objective" and FIELD_OF_KEY["model.fcnet_hiddens"] == "hidden_sizes"


@pytest.mark.parametrize("changes, field", [
    ({}, "anneal_lr"),  # our default anneals; RLlib's lr is constant
    ({"anneal_lr": False, "policy_objective": "kl_penalty"}, "policy_objective"),
    ({"anneal_lr": False, "policy_objective": "clip+kl_penalty"}, "kl_adaptation"),
    ({"anneal_lr": False, "target_kl": 0.02}, "target_kl"),
    ({"anneal_lr": False, "normalize_advantages": False}, "normalize_advantages"),
    ({"anneal_lr": False, "gru_size": 8}, "gru_size"),
])
def test_to_rllib_refuses_what_rllib_cannot_express(changes, field):
    with pytest.raises(ConfigError, match=f"PPOConfig.{field}"):
        to_rllib(PPOConfig(**changes))


def test_unknown_keys_are_all_named_with_the_accepted_ones():
    with pytest.raises(ConfigError) as err:
        convert(foo=1, sgd_stepsize=2, broadcast_interval=2, normalize_actions=True)
    text = str(err.value)
    assert "no meaning in purejaxppo's PPO" in text
    for key in ("'foo'", "'sgd_stepsize'", "'broadcast_interval'", "'normalize_actions'"):
        assert key in text
    assert "policy_lag" in text and "action_bounds" in text  # why, for known RLlib keys
    assert "Accepted: env, gamma, lr" in text and "minibatch_size" in text
    assert "ignored (infrastructure): framework" in text
    with pytest.raises(ConfigError, match=r"model: .*'conv_filters'.*'post_fcnet_hiddens'"):
        convert(model={"conv_filters": [[16, 3, 1]], "post_fcnet_hiddens": [8]})


@pytest.mark.parametrize("keys, pattern", [
    ({"train_batch_size": 1000, "num_envs_per_env_runner": 3},
     r"train_batch_size=1000: .* 3 environments \(num_envs_per_env_runner=3 x max\(1, "
     r"num_env_runners=0\)\)"),
    ({"train_batch_size_per_learner": 250, "num_envs_per_env_runner": 3},
     r"train_batch_size_per_learner=250: .* 3 environments"),
    ({"minibatch_size": 100}, r"minibatch_size=100: the batch of 512 transitions"),
    ({"sgd_minibatch_size": 100}, r"sgd_minibatch_size=100"),
    ({"num_learners": 3}, r"num_learners=3: .*512 transitions .* 3 learners"),
    ({"rollout_fragment_length": 100}, r"rollout_fragment_length=100: .* give 'auto' or 128"),
])
def test_sizes_that_do_not_divide_name_the_key(keys, pattern):
    with pytest.raises(ConfigError, match=pattern):
        convert(**keys)


@pytest.mark.parametrize("keys, pattern", [
    ({"lr_schedule": [[0, 1e-3], [1000, 1e-4]]}, r"lr_schedule=.*only None"),
    ({"lr": [[0, 1e-3], [1000, 1e-4]]}, r"lr=.*schedules"),
    ({"entropy_coeff_schedule": [[0, 0.01]]}, r"entropy_coeff_schedule=.*only None"),
    ({"entropy_coeff": "0.01"}, r"entropy_coeff='0.01': expected a number"),
    ({"use_critic": False}, r"use_critic=False: .*always learns a critic"),
    ({"batch_mode": "complete_episodes"}, r"batch_mode="),
    ({"grad_clip_by": "value"}, r"grad_clip_by="),
    ({"env_config": {"max_steps": 10}}, r"env_config="),
    ({"clip_rewards": True}, r"clip_rewards=True"),
    ({"env": "CartPol-v1"}, r"env='CartPol-v1': .*did you mean CartPole-v1"),
    ({"model": {"fcnet_activation": "linear"}}, r"model.fcnet_activation='linear'"),
    ({"model": {"use_lstm": True}}, r"model.use_lstm=True: .*GRU"),
    ({"model": {"free_log_std": False}}, r"model.free_log_std=False"),
    ({"model_config": {"fcnet_hiddens": [0]}}, r"model_config.fcnet_hiddens=\[0\]"),
    ({"num_epochs": 2.5}, r"num_epochs=2.5: expected an integer"),
    ({"num_epochs": 3, "num_sgd_iter": 4}, r"num_epochs=3 and num_sgd_iter=4"),
    ({"vf_share_layers": True, "model": {"vf_share_layers": False}}, r"vf_share_layers"),
    ({"use_gae": False, "lambda": 0.95}, r"use_gae=False makes RLlib ignore lambda=0.95"),
    ({"vf_clip_param": -1.0}, r"vf_clip_param=-1.0: expected a number > 0"),
    ({"observation_filter": "ConcurrentMeanStdFilter"}, r"observation_filter="),
    # out of range after translation: validate_config's message, and the key it came from
    ({"clip_param": -0.2}, r"PPOConfig.clip_eps: must be > 0.*from RLlib clip_param=-0.2"),
    ({"gamma": 1.5}, r"PPOConfig.gamma: .*from RLlib gamma=1.5"),
])
def test_values_with_no_equivalent_are_errors_naming_the_key(keys, pattern):
    with pytest.raises(ConfigError, match=pattern):
        convert(**keys)


def test_not_a_dict():
    with pytest.raises(ConfigError, match="expected a dict"):
        from_rllib([("lr", 1e-3)])


# ----------------------------------------------------------------------------- APPO

# RLlib's APPO defaults, written out here (ray.rllib.algorithms.appo.APPOConfig, new API stack;
# the V-trace thresholds, num_learners=1, train_batch_size 500 and rollout_fragment_length 50
# from IMPALAConfig; num_epochs 1, minibatch_size None (whole batch), gamma from AlgorithmConfig).
APPO_DEFAULTS = {
    "gamma": 0.99, "lr": 5e-4, "lr_schedule": None, "train_batch_size": 500,
    "train_batch_size_per_learner": None, "num_learners": 1, "minibatch_size": None,
    "num_epochs": 1, "use_gae": True, "lambda": 1.0, "vtrace": True,
    "vtrace_clip_rho_threshold": 1.0, "vtrace_clip_pg_rho_threshold": 1.0, "clip_param": 0.4,
    "use_kl_loss": False, "kl_coeff": 1.0, "kl_target": 0.01, "target_worker_clipping": 2.0,
    "circular_buffer_num_batches": 4, "circular_buffer_iterations_per_batch": 2,
    "target_network_update_freq": 2, "tau": 1.0, "vf_loss_coeff": 0.5, "entropy_coeff": 0.01,
    "entropy_coeff_schedule": None, "grad_clip": 40.0, "grad_clip_by": "global_norm",
    "num_env_runners": 2, "num_envs_per_env_runner": 1, "rollout_fragment_length": 50,
    "batch_mode": "truncate_episodes", "observation_filter": "NoFilter",
    "model": {"fcnet_hiddens": [256, 256], "fcnet_activation": "tanh", "vf_share_layers": False},
}
# What RLlib's APPO defaults are here (RLlib's names in the comments).
APPO_EXPECTED = {
    "learning_rate": 5e-4, "gamma": 0.99, "gae_lambda": 1.0, "clip_eps": 0.4,
    "vf_coef": 0.5,  # vf_loss_coeff x 1: APPO's value loss is 0.5·MSE, like ours
    "ent_coef": 0.01, "max_grad_norm": 40.0, "update_epochs": 1,
    "advantage_estimator": "vtrace", "vtrace_clip_rho": 1.0, "vtrace_clip_pg_rho": 1.0,
    "vtrace_clip_c": 1.0, "policy_objective": "appo", "behaviour_ratio_clip": 2.0, "tau": 1.0,
    "buffer_num_batches": 4, "buffer_iterations_per_batch": 2,
    "target_update_every": 8,  # target_network_update_freq 2 x circular_buffer_num_batches 4
    "normalize_advantages": False, "clip_value": False, "anneal_lr": False, "target_kl": 0.0,
    # 500 transitions over 2 env runners, the whole batch as one minibatch (minibatch_size None)
    "num_envs": 2, "num_steps": 250, "num_minibatches": 1,
    "hidden_sizes": (256, 256), "activation": "tanh", "shared_trunk": False,
    "policy_lag": 0,  # not an RLlib key (RLlib's lag is asynchronous): ours, or an override
}
APPO_BASE = {"train_batch_size": 512, "num_env_runners": 0, "num_envs_per_env_runner": 4,
             "rollout_fragment_length": 128}


def appo(**keys):
    """from_rllib(algorithm="APPO") of APPO_BASE updated with `keys`."""
    given = {ALIASES.get(k, k) for k in keys}
    return from_rllib({**{k: v for k, v in APPO_BASE.items() if k not in given}, **keys},
                      algorithm="APPO")


def test_appo_defaults_are_written_out_and_missing_keys_take_them(capsys):
    assert RLLIB_APPO_DEFAULTS == APPO_DEFAULTS
    mapping = read_rllib({}, algorithm="APPO")
    assert {k: getattr(mapping.config, k) for k in APPO_EXPECTED} == APPO_EXPECTED
    # the same given explicitly: the fragment is the user's and cannot be honoured
    with pytest.raises(ConfigError, match=r"rollout_fragment_length=50: a batch of 500 .* give "
                                          r"'auto' or 250"):
        from_rllib(APPO_DEFAULTS, algorithm="APPO")
    explicit = {**APPO_DEFAULTS, "rollout_fragment_length": "auto"}
    assert from_rllib(explicit, algorithm="APPO") == mapping.config
    # RLlib's default fragment of 50 steps is not the 250 of its batch over 2 env runners: it
    # follows the batch, as "auto", and says so
    assert mapping.notes == ("rollout_fragment_length=50 (RLlib default) is not the 250 steps "
                             "per environment of a batch of 500 over 2 environments; using "
                             "250 (as 'auto')",)
    assert mapping.sources["target_update_every"] == (
        "target_network_update_freq=2 (RLlib default) x circular_buffer_num_batches=4 (RLlib "
        "default)")
    assert mapping.sources["advantage_estimator"] == "vtrace=True (RLlib default)"
    assert mapping.sources["normalize_advantages"] == "implied by RLlib's APPO (no key)"
    capsys.readouterr()


def test_appo_is_told_by_its_keys_or_by_algorithm(capsys):
    told = read_rllib({"tau": 1.0}, algorithm="APPO")
    detected = read_rllib({"tau": 1.0, "vtrace": True})
    assert detected.config == told.config
    assert detected.notes[0].startswith("reading the dict as RLlib's APPO (APPOConfig), "
                                        "because of its APPO keys tau, vtrace")
    assert detected.notes[1:] == told.notes
    assert read_rllib({}, algorithm="appo").config == told.config  # any case
    assert from_rllib({}).policy_objective == "clip+kl_penalty"  # no APPO key: PPO
    assert PPOConfig.from_rllib({}, algorithm="APPO") == told.config
    # every APPO key tells (and a deprecated one other than use_critic, which PPO has)
    for key in APPO_KEYS:
        value = APPO_DEFAULTS[key]
        assert read_rllib({key: value}).config == told.config, key
    with pytest.raises(ConfigError, match="target_update_frequency=3 .*replaced by "
                                          "target_network_update_freq"):
        from_rllib({"target_update_frequency": 3})
    from_rllib({"clip_param": 0.2, "use_critic": True})  # PPO's key: still PPO
    err = capsys.readouterr().err
    assert "note: from_rllib: reading the dict as RLlib's APPO" not in err.split("\n")[0]
    with pytest.raises(ConfigError, match=r"algorithm='IMPALA': expected one of 'PPO', 'APPO'"):
        from_rllib({}, algorithm="IMPALA")


@pytest.mark.parametrize("keys, expected", [
    ({"vtrace": False}, {"advantage_estimator": "gae"}),
    ({"vtrace_clip_rho_threshold": 2.0}, {"vtrace_clip_rho": 2.0}),
    ({"vtrace_clip_pg_rho_threshold": 0.5}, {"vtrace_clip_pg_rho": 0.5}),
    ({"clip_param": 0.2}, {"clip_eps": 0.2}),
    ({"use_kl_loss": True}, {"policy_objective": "appo+kl", "kl_adaptation": "rllib",
                             "kl_coef": 1.0, "kl_target": 0.01}),
    ({"use_kl_loss": True, "kl_coeff": 0.3, "kl_target": 0.02},
     {"policy_objective": "appo+kl", "kl_coef": 0.3, "kl_target": 0.02}),
    ({"use_kl_loss": True, "kl_coeff": 0.0}, {"policy_objective": "appo"}),
    ({"tau": 0.25}, {"tau": 0.25}),
    ({"target_worker_clipping": 3.0}, {"behaviour_ratio_clip": 3.0}),
    ({"circular_buffer_num_batches": 1, "circular_buffer_iterations_per_batch": 1},
     {"buffer_num_batches": 1, "buffer_iterations_per_batch": 1, "target_update_every": 2}),
    ({"circular_buffer_num_batches": 16, "circular_buffer_iterations_per_batch": 20},
     {"buffer_num_batches": 16, "buffer_iterations_per_batch": 20, "target_update_every": 32}),
    ({"target_network_update_freq": 1}, {"target_update_every": 4}),
    ({"target_network_update_freq": 0.25}, {"target_update_every": 1}),
    ({"lambda_": 0.95, "vtrace": False}, {"gae_lambda": 0.95, "advantage_estimator": "gae"}),
    ({"use_gae": False}, {"gae_lambda": 1.0}),
    ({"vf_loss_coeff": 1.0}, {"vf_coef": 1.0}),
    ({"entropy_coeff": 0.0}, {"ent_coef": 0.0}),
    ({"grad_clip": None}, {"max_grad_norm": NO_GRAD_CLIP}),
    ({"lr": 1e-3}, {"learning_rate": 1e-3}),
    ({"num_epochs": 2, "minibatch_size": 128}, {"update_epochs": 2, "num_minibatches": 4}),
    ({"model_config": {"fcnet_hiddens": [64]}},  # APPO: separate towers in either dict
     {"hidden_sizes": (64,), "shared_trunk": False}),
    ({"observation_filter": "MeanStdFilter"}, {"normalize_obs": True}),
])
def test_each_appo_key_maps_to_its_field(keys, expected):
    config = appo(**keys)
    assert {k: getattr(config, k) for k in expected} == expected


def test_appo_lambda_with_vtrace_is_kept_and_said():
    mapping = read_rllib({**APPO_BASE, "lambda_": 0.9}, algorithm="APPO")
    assert mapping.config.gae_lambda == 0.9
    assert mapping.notes == ("lambda_=0.9: RLlib's V-trace has no λ (its traces are min(1, ρ)) "
                             "and ignores it; here it is V-trace's λ (c_s = λ·min(c̄, ρ_s)), as "
                             "gae_lambda",)


def test_appo_deprecated_keys_say_what_replaced_them():
    with pytest.raises(ConfigError) as err:
        appo(target_update_frequency=4, use_critic=False, minibatch_buffer_size=2,
             replay_proportion=0.5, learner_queue_size=4)
    text = str(err.value)
    assert "target_update_frequency=4 (deprecated, replaced by target_network_update_freq" in text
    assert "use_critic=False (removed from RLlib's APPO, which always learns a critic" in text
    for key in ("minibatch_buffer_size=2", "replay_proportion=0.5", "learner_queue_size=4"):
        assert f"{key} (old API stack, replaced by the circular buffer: " \
               "circular_buffer_num_batches" in text
    # at the value APPOConfig holds when they are unset (what to_dict() writes): accepted
    unset = {key: value for key, (value, _) in DEPRECATED.items()}
    assert appo(**unset) == appo()


@pytest.mark.parametrize("keys, pattern", [
    ({"vf_clip_param": 10.0}, r"'vf_clip_param' \(PPO's value clipping: RLlib's APPO has none"),
    ({"vtrace": "yes"}, r"vtrace='yes': expected True or False"),
    ({"tau": 1.5}, r"PPOConfig.tau: .*from RLlib tau=1.5"),
    ({"tau": "1"}, r"tau='1': expected a number"),
    ({"target_worker_clipping": -1.0}, r"PPOConfig.behaviour_ratio_clip: .*from RLlib "
                                       r"target_worker_clipping=-1.0"),
    ({"vtrace_clip_rho_threshold": 0.0}, r"PPOConfig.vtrace_clip_rho: .*"
                                         r"vtrace_clip_rho_threshold=0.0"),
    ({"circular_buffer_num_batches": 0}, r"circular_buffer_num_batches=0: expected an integer "
                                         r">= 1"),
    ({"circular_buffer_iterations_per_batch": 1.5}, r"circular_buffer_iterations_per_batch=1.5"),
    ({"target_network_update_freq": 0.3}, r"target_network_update_freq=0.3: .* every freq x "
                                          r"circular_buffer_num_batches=4 \(RLlib default\) = "
                                          r"1.2 updates"),
    ({"target_network_update_freq": 0}, r"target_network_update_freq=0: expected a number > 0"),
    ({"vtrace_drop_last_ts": False}, r"'vtrace_drop_last_ts' \(old-stack IMPALA"),
    ({"use_gae": False, "lambda": 0.9}, r"use_gae=False makes RLlib ignore lambda=0.9"),
])
def test_appo_values_with_no_equivalent_are_errors_naming_the_key(keys, pattern):
    with pytest.raises(ConfigError, match=pattern):
        appo(**keys)


def test_appo_keys_with_algorithm_ppo_are_errors():
    with pytest.raises(ConfigError, match=r"purejaxppo's PPO: 'tau' \(an APPO key, and "
                                          r"algorithm='PPO' was given\)"):
        from_rllib({**BASE, "tau": 0.5}, algorithm="PPO")


APPO_ROUND_TRIP = [
    PPOConfig(anneal_lr=False, policy_objective="appo", advantage_estimator="vtrace",
              normalize_advantages=False, clip_value=False, buffer_num_batches=4,
              buffer_iterations_per_batch=2, target_update_every=8),
    PPOConfig(anneal_lr=False, policy_objective="appo+kl", kl_adaptation="rllib", kl_coef=0.5,
              advantage_estimator="gae", normalize_advantages=False, clip_value=False,
              vtrace_clip_rho=2.0, vtrace_clip_pg_rho=0.5, behaviour_ratio_clip=3.0, tau=0.1,
              buffer_num_batches=3, target_update_every=1, gae_lambda=0.9, vf_coef=0.7,
              num_envs=8, num_steps=32, num_minibatches=2, update_epochs=3),
]


@pytest.mark.parametrize("config", APPO_ROUND_TRIP)
def test_appo_round_trip(config):
    keys = to_rllib(config)
    assert keys["vtrace"] == (config.advantage_estimator == "vtrace") and "vf_clip_param" not in keys
    back = from_rllib(keys)  # told by its APPO keys
    assert {f: getattr(back, f) for f in MAPPED_FIELDS} == \
        {f: getattr(config, f) for f in MAPPED_FIELDS}
    carried = {f: getattr(config, f) for f in UNMAPPED_FIELDS}
    assert from_rllib(keys, **carried) == config


@pytest.mark.parametrize("changes, field", [
    ({"tau": 0.5}, "tau"),
    ({"advantage_estimator": "vtrace"}, "advantage_estimator"),
    ({"buffer_num_batches": 2}, "buffer_num_batches"),
    ({"policy_lag": 2}, "policy_lag"),
    ({"vtrace_clip_c": 2.0}, "vtrace_clip_c"),
])
def test_to_rllib_ppo_refuses_appo_fields(changes, field):
    with pytest.raises(ConfigError, match=f"RLlib's PPO cannot express PPOConfig.*{field}"):
        to_rllib(PPOConfig(anneal_lr=False, **changes))


@pytest.mark.parametrize("changes, field", [
    ({"clip_value": True}, "clip_value"),
    ({"normalize_advantages": True}, "normalize_advantages"),
    ({"vtrace_clip_c": 2.0}, "vtrace_clip_c"),
    ({"policy_objective": "appo+kl"}, "kl_adaptation"),
])
def test_to_rllib_appo_refuses_what_rllibs_appo_cannot_express(changes, field):
    base = {"anneal_lr": False, "policy_objective": "appo", "normalize_advantages": False,
            "clip_value": False}
    with pytest.raises(ConfigError, match=f"RLlib's APPO cannot express PPOConfig.*{field}"):
        to_rllib(PPOConfig(**{**base, **changes}))


def test_the_appo_preset_holds_rllibs_appo_learner_defaults():
    """presets 'appo': the buffer, target and V-trace settings are what from_rllib reads from
    RLlib's APPO defaults; the rest is the cartpole preset; `--preset appo` resolves to it."""
    from purejaxppo import presets

    preset = presets.get("appo")
    rllib = read_rllib({}, algorithm="APPO").config
    learner = ("advantage_estimator", "policy_objective", "vtrace_clip_rho",
               "vtrace_clip_pg_rho", "vtrace_clip_c", "behaviour_ratio_clip", "tau",
               "buffer_num_batches", "buffer_iterations_per_batch", "target_update_every")
    assert {f: getattr(preset, f) for f in learner} == {f: getattr(rllib, f) for f in learner}
    assert preset.policy_lag == 1 and preset.env_name == "CartPole-v1"
    assert preset.replace(**{f: getattr(PPOConfig(), f) for f in learner + ("policy_lag",)}) \
        == presets.get("cartpole")
    assert presets.resolve("appo", "CartPole-v1") == "appo"
    assert presets.build_config("appo", total_timesteps=1024) == preset.replace(
        total_timesteps=1024)
    assert presets.resolve(None, "CartPole-v1") == "cartpole"  # still the default
