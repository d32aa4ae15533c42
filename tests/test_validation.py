"""Every configuration error is raised before compilation, with a message naming the field."""

import dataclasses

import gymnax
import jax
import numpy as np
import pytest

from purejaxppo import ConfigError, HParams, PPOConfig, make_env, make_train, validate_config
from purejaxppo.config import validate_hparams
from purejaxppo.cli import main as cli_main

TINY = dict(num_envs=2, num_steps=8, total_timesteps=64)


@pytest.mark.parametrize("changes, field, words", [
    (dict(env_name="CartPol"), "env_name", "unknown environment 'CartPol'. Did you mean CartPole-v1"),
    (dict(env_name=""), "env_name", "non-empty string"),
    (dict(num_envs=3, num_steps=5, num_minibatches=4), "num_minibatches", "15 does not divide into 4"),
    (dict(total_timesteps=100, num_envs=4, num_steps=128), "total_timesteps", "smaller than one update"),
    (dict(num_envs=0), "num_envs", "positive integer"),
    (dict(num_steps=-1), "num_steps", "positive integer"),
    (dict(update_epochs=0), "update_epochs", "positive integer"),
    (dict(num_minibatches=0), "num_minibatches", "positive integer"),
    (dict(total_timesteps=0), "total_timesteps", "positive integer"),
    (dict(num_envs=2.0), "num_envs", "positive integer"),
    (dict(learning_rate=0.0), "learning_rate", "> 0"),
    (dict(learning_rate=float("nan")), "learning_rate", "> 0"),
    (dict(gamma=1.5), "gamma", "in [0, 1]"),
    (dict(gae_lambda=-0.1), "gae_lambda", "in [0, 1]"),
    (dict(clip_eps=0.0), "clip_eps", "> 0"),
    (dict(vf_clip_eps=-1.0), "vf_clip_eps", "> 0"),
    (dict(vf_coef=-0.5), "vf_coef", ">= 0"),
    (dict(ent_coef=-0.01), "ent_coef", ">= 0"),
    (dict(max_grad_norm=0.0), "max_grad_norm", "> 0"),
    (dict(adam_eps=0.0), "adam_eps", "> 0"),
    (dict(hidden_sizes=()), "hidden_sizes", "non-empty tuple"),
    (dict(hidden_sizes=(64, 0)), "hidden_sizes", "positive integers"),
    (dict(activation="gelu"), "activation", "must be one of"),
    (dict(anneal_lr="yes"), "anneal_lr", "True or False"),
    (dict(network="transformer"), "network", "must be one of ('auto', 'mlp', 'cnn')"),
    (dict(conv_channels=(16, -1)), "conv_channels", "positive integers"),
    (dict(action_bounds="tanh"), "action_bounds", "must be one of ('clip', 'squash')"),
    (dict(fast_paths="maybe"), "fast_paths", "must be one of ('auto', 'on', 'off')"),
    (dict(normalize_obs=1), "normalize_obs", "True or False"),
    (dict(obs_clip=0.0), "obs_clip", "> 0 (inf: no clipping)"),
    (dict(reward_clip=float("nan")), "reward_clip", "> 0"),
    (dict(log_std_init=float("inf")), "log_std_init", "finite number"),
])
def test_bad_config_names_the_field(changes, field, words):
    config = PPOConfig(**{**TINY, **changes})
    with pytest.raises(ConfigError, match=f"PPOConfig.{field}:") as err:
        make_train(config)
    assert words in str(err.value)


def test_errors_come_before_any_compilation(monkeypatch):
    """Validation happens in make_train, in Python: nothing is traced for a bad config."""
    traced = []
    monkeypatch.setattr(jax, "jit", lambda *a, **k: traced.append(1))
    with pytest.raises(ConfigError):
        make_train(PPOConfig(num_minibatches=3))
    assert traced == []


def test_bad_concrete_hparams_at_call_time():
    train = make_train(PPOConfig(**TINY))
    bad = PPOConfig(**TINY).hparams().replace(clip_eps=-0.2)
    with pytest.raises(ConfigError, match=r"HParams.clip_eps: must be > 0"):
        train(jax.random.key(0), bad)
    assert isinstance(bad, HParams)


def test_callback_every_must_be_positive():
    with pytest.raises(ValueError, match="callback_every"):
        make_train(PPOConfig(**TINY), callback=print, callback_every=0)


def test_cli_reports_config_errors_with_exit_code_2(capsys):
    assert cli_main(["train", "--env", "Nope-v0", "--no-progress"]) == 2
    assert "PPOConfig.env_name: unknown environment 'Nope-v0'" in capsys.readouterr().err
    assert cli_main(["train", "--set", "num_minibatches=3", "--no-progress"]) == 2
    assert "PPOConfig.num_minibatches" in capsys.readouterr().err
    assert cli_main(["train", "--set", "no_such_field=1", "--no-progress"]) == 2
    assert "PPOConfig.no_such_field: no such field" in capsys.readouterr().err
    assert cli_main(["train", "--set", "learning_rate=fast", "--no-progress"]) == 2
    assert "PPOConfig.learning_rate: cannot parse 'fast'" in capsys.readouterr().err


@pytest.mark.parametrize("hparams, kind", [
    (dataclasses.asdict(PPOConfig(**TINY).hparams()), "dict"),
    (dataclasses.astuple(PPOConfig(**TINY).hparams()), "tuple"),
    (PPOConfig(**TINY), "PPOConfig"),
])
def test_train_rejects_hparams_that_are_not_hparams(hparams, kind):
    train = make_train(PPOConfig(**TINY))
    expected = (r"HParams: expected purejaxppo.HParams \(e.g. config.hparams\(\) or "
                rf"hparam_grid\(...\)\), got {kind}$")
    with pytest.raises(ConfigError, match=expected):
        train(jax.random.key(0), hparams)


def test_scalar_hparams_check_is_opt_in_and_skips_traced_values():
    """`scalar=True` (one un-vmapped train call) rejects a concrete array of settings, naming
    the field; sweeps validate `(n,)` leaves without it; under vmap the leaves are traced."""
    lrs = np.array([1e-4, 3e-4], np.float32)
    grid = PPOConfig(**TINY).hparams().replace(learning_rate=lrs)
    validate_hparams(grid, where="HParams")  # what sweeps.place_runs does
    with pytest.raises(ConfigError, match=r"HParams.learning_rate: .*array of shape \(2,\).*"
                                          r"jax.vmap\(train\) or purejaxppo.sweep"):
        validate_hparams(grid, where="HParams", scalar=True)
    validate_hparams(PPOConfig(**TINY).hparams(), where="HParams", scalar=True)
    validate_hparams(grid.replace(learning_rate=np.float32(3e-4)), scalar=True)  # 0-d is fine

    def check(lr):
        validate_hparams(grid.replace(learning_rate=lr), where="HParams", scalar=True)
        return lr

    np.testing.assert_array_equal(jax.vmap(check)(lrs), lrs)


def test_five_value_step_api_is_rejected_before_tracing():
    from gymnax.wrappers.compat import LegacyStepAPIWrapper

    env = LegacyStepAPIWrapper(gymnax.make("CartPole-v1")[0])
    expected = (r"PPOConfig.env_name: old-cartpole's step returns 5 values .*purejaxppo needs the "
                r"gymnax 1.x six-value API \(obs, state, reward, terminated, truncated, info\)")
    with pytest.raises(ConfigError, match=expected):
        make_env("old-cartpole", env)
    with pytest.raises(ConfigError, match=expected):
        make_train(PPOConfig(env_name="old-cartpole", **TINY), env=env)


def test_numpy_integers_and_floats_are_accepted_and_stored_as_python_scalars():
    config = PPOConfig(total_timesteps=np.int64(500_000), num_envs=np.int32(4),
                       learning_rate=np.float32(0.5), gamma=np.float64(0.99),
                       hidden_sizes=(np.int64(64), np.int64(64)), anneal_lr=np.bool_(True))
    plain = PPOConfig(total_timesteps=500_000, num_envs=4, learning_rate=0.5, gamma=0.99,
                      hidden_sizes=(64, 64), anneal_lr=True)
    assert config == plain and hash(config) == hash(plain)
    assert type(config.total_timesteps) is int and type(config.num_envs) is int
    assert type(config.learning_rate) is float and type(config.gamma) is float
    assert all(type(s) is int for s in config.hidden_sizes) and config.anneal_lr is True
    validate_config(config)
    assert PPOConfig(**TINY).replace(num_steps=np.int16(8)) == PPOConfig(**TINY)
    with pytest.raises(ConfigError, match="PPOConfig.num_envs: must be a positive integer"):
        validate_config(PPOConfig(num_envs=np.float64(4.0)))  # a float is still not an integer
    with pytest.raises(ConfigError, match="PPOConfig.num_envs: must be a positive integer"):
        validate_config(PPOConfig(num_envs=np.bool_(True)))


# ----------------------------------------------------------------------------- the field table


def test_the_field_table_drives_the_config_hparams_and_names():
    """One row per PPOConfig field, in order; HParams are exactly the traced rows, in order; a
    config's hparams() take the traced rows' defaults."""
    from purejaxppo.config import FIELD, FIELDS, HPARAM_FIELDS, STATIC_FIELDS

    assert [f.name for f in FIELDS] == [f.name for f in dataclasses.fields(PPOConfig)]
    assert [f.default for f in FIELDS] == list(dataclasses.astuple(PPOConfig()))
    assert HPARAM_FIELDS == tuple(f.name for f in dataclasses.fields(HParams))
    assert HPARAM_FIELDS == tuple(f.name for f in FIELDS if f.traced)
    assert set(STATIC_FIELDS) | set(HPARAM_FIELDS) == set(FIELD)
    assert not set(STATIC_FIELDS) & set(HPARAM_FIELDS)
    assert dataclasses.asdict(PPOConfig().hparams()) == {n: FIELD[n].default for n in HPARAM_FIELDS}
    for f in FIELDS:
        assert f.help and f.check.describe(), f.name
        validate_config(PPOConfig())  # every default is valid under its own check
        if not f.traced:
            assert f.check.ok(f.default), f.name


def test_each_rows_check_rejects_with_the_rows_words():
    """For each field, a value outside its row's check fails validation with the row's words."""
    from purejaxppo.config import FIELDS

    bad = {str: 7, int: -1, float: float("nan"), bool: "yes"}
    for f in FIELDS:
        value = () if isinstance(f.default, tuple) else bad[type(f.default)]
        with pytest.raises(ConfigError, match=f"PPOConfig.{f.name}: must be ") as err:
            validate_config(PPOConfig(**{**TINY, f.name: value}))
        assert f.check.describe() in str(err.value) or "must be a number" in str(err.value)


def test_a_field_declared_without_its_row_is_an_error():
    from purejaxppo.config import table_row

    @dataclasses.dataclass(frozen=True)
    class Bare:
        x: int = 3

    with pytest.raises(ConfigError, match=r"PPOConfig.x: declared without config.setting"):
        table_row(dataclasses.fields(Bare)[0])


def test_field_help_lists_every_field_and_the_cli_shows_it(capsys):
    from purejaxppo.config import FIELDS, field_help

    text = field_help()
    for f in FIELDS:
        assert f"\n  {f.name} (" in text, f.name
    assert "learning_rate (float, traced) = 0.00025; valid: > 0" in text
    assert "hidden_sizes (tuple[int, ...], static) = 64,64" in text
    assert "activation (str, static) = tanh; valid: one of ('tanh', 'relu')" in text
    assert "(RLlib: lr)" in text
    with pytest.raises(SystemExit):
        cli_main(["train", "--help"])
    assert "num_minibatches (int, static) = 4" in capsys.readouterr().out


def test_static_field_hint_and_parse_override_come_from_the_table():
    from purejaxppo.config import check_hparam_name, parse_override

    check_hparam_name("gamma", "here")
    with pytest.raises(ConfigError, match=r"here: unknown hyperparameter 'num_envs' \(num_envs "
                                          r"is a static PPOConfig field"):
        check_hparam_name("num_envs", "here")
    with pytest.raises(ConfigError, match=r"here: unknown hyperparameter 'lr'\. Valid names: "
                                          r"learning_rate, gamma"):
        check_hparam_name("lr", "here")
    assert parse_override("gru_size=16") == ("gru_size", 16)
    assert parse_override("shared_trunk=1") == ("shared_trunk", True)
    assert parse_override("env_name=Acrobot-v1") == ("env_name", "Acrobot-v1")
    with pytest.raises(ConfigError, match=r"PPOConfig.num_envs: cannot parse 'x' as int"):
        parse_override("num_envs=x")


def test_activation_names_are_the_networks_and_rllibs():
    """config.ACTIVATIONS is the one list: networks look the names up in flax, rllib accepts
    exactly them."""
    import flax.linen as nn

    from purejaxppo.config import ACTIVATIONS, FIELD
    from purejaxppo.rllib import from_rllib

    assert FIELD["activation"].check.choices is ACTIVATIONS
    for name in ACTIVATIONS:
        assert callable(getattr(nn, name))
        base = {"train_batch_size": 512, "minibatch_size": 128, "num_env_runners": 0,
                "num_envs_per_env_runner": 4}
        assert from_rllib({**base, "model": {"fcnet_activation": name}}).activation == name
