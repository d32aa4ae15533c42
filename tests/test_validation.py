"""Every configuration error is raised before compilation, with a message naming the field."""

import jax
import pytest

from purejaxppo import ConfigError, HParams, PPOConfig, make_train
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
