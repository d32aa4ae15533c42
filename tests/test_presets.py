"""Presets: every one validates for every environment it names and trains two updates."""

import jax
import numpy as np
import pytest

from purejaxppo import ConfigError, PPOConfig, make_train, presets
from purejaxppo.cli import main
from purejaxppo.envs import NEEDS_NETWORK
from purejaxppo.train import make_trainer

PAIRS = [(name, env) for name, preset in presets.PRESETS.items() for env in preset.envs
         if env not in NEEDS_NETWORK]


@pytest.mark.parametrize("name,env", PAIRS)
def test_preset_validates_for_each_environment_it_names(name, env):
    config = presets.get(name, env_name=env)
    assert isinstance(config, PPOConfig) and config.env_name == env
    make_trainer(config)  # validation, env checks, network: everything before compilation


@pytest.mark.parametrize("name", presets.names())
def test_preset_trains_two_updates(name):
    config = presets.get(name)
    config = config.replace(total_timesteps=2 * config.batch_size)
    result = jax.jit(make_train(config))(jax.random.key(0))
    assert result.metrics.policy_loss.shape == (2,)
    assert np.isfinite(np.asarray(result.metrics.policy_loss)).all()


def test_every_preset_documents_source_tuning_and_measurement():
    for name, preset in presets.PRESETS.items():
        assert preset.config.env_name in preset.envs, name
        assert preset.source and preset.tuning and preset.measured, name


def test_presets_for_lists_own_preset_first_then_families():
    assert presets.presets_for("Pendulum-v1") == ["pendulum", "classic-control-continuous"]
    assert presets.presets_for("Asterix-MinAtar") == ["minatar"]
    assert presets.presets_for("not-an-env") == []


def test_get_applies_changes_and_names_bad_input():
    config = presets.get("minatar", env_name="Asterix-MinAtar", total_timesteps=10**6)
    assert config.network == "cnn" and config.total_timesteps == 10**6
    with pytest.raises(ConfigError, match="no such preset.*cartpole"):
        presets.get("cartpol")
    with pytest.raises(ConfigError, match="preset 'pendulum' is for Pendulum-v1"):
        presets.get("pendulum", env_name="CartPole-v1")


def test_cli_preset_then_set_overrides(tmp_path, capsys):
    import json

    out = tmp_path / "s.json"
    code = main(["train", "--preset", "classic-control", "--env", "CartPole-v1",
                 "--total-timesteps", "1024", "--set", "learning_rate=1e-3", "--num-seeds", "1",
                 "--no-progress", "--json", str(out)])
    assert code == 0
    saved = json.loads(out.read_text())["config"]
    assert saved["num_envs"] == 16 and saved["num_steps"] == 32  # from the preset
    assert saved["learning_rate"] == 1e-3 and saved["env_name"] == "CartPole-v1"
    capsys.readouterr()
    assert main(["train", "--preset", "nope", "--no-progress"]) != 0
    assert "no such preset" in capsys.readouterr().err
