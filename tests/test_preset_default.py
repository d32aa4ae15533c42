"""Issue 25: `train`/`sweep` on a named environment start from its preset unless told otherwise.

Without `--preset`, the config is the environment's own preset (else its family's) with the
command line's changes; `--preset none` gives PPOConfig's defaults; the choice is printed before
compiling and saved in the JSON summary and the run directory (`run.json`, checkpoints'
`meta.json`); `--resume` keeps the saved config and preset.
"""

import json

import pytest

from purejaxppo import ConfigError, PPOConfig, presets
from purejaxppo.cli import build_config, main, make_parser


def _config_of(command, *argv):
    return build_config(make_parser().parse_args([command, *argv]))


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_no_preset_on_pendulum_is_exactly_the_pendulum_preset_plus_overrides(command):
    assert _config_of(command, "--env", "Pendulum-v1") == presets.get("pendulum")
    config = _config_of(command, "--env", "Pendulum-v1", "--total-timesteps", "65536",
                        "--set", "learning_rate=3e-3", "--set", "num_envs=8")
    assert config == presets.get("pendulum", total_timesteps=65536, learning_rate=3e-3,
                                 num_envs=8)
    assert config.normalize_obs and config.update_epochs == 10  # the preset's, not the defaults
    assert _config_of(command, "--set", "env_name=Pendulum-v1") == presets.get("pendulum")


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_preset_none_gives_the_plain_defaults(command):
    assert _config_of(command, "--env", "Pendulum-v1", "--preset", "none") == \
        PPOConfig(env_name="Pendulum-v1")
    assert _config_of(command, "--preset", "none", "--set", "gamma=0.9") == PPOConfig(gamma=0.9)
    assert PPOConfig().update_epochs == 4 and not PPOConfig().normalize_obs  # unchanged


def test_an_environment_without_its_own_preset_gets_its_familys():
    assert presets.resolve(None, "Asterix-MinAtar") == "minatar"
    assert _config_of("train", "--env", "Asterix-MinAtar") == presets.get(
        "minatar", env_name="Asterix-MinAtar")
    assert presets.resolve(None, "Catch-bsuite") == "bsuite"
    assert presets.resolve(None, "MemoryChain-bsuite") == "memorychain"  # its own comes first
    # No preset at all (not a gymnax name): PPOConfig's defaults, left to env validation.
    assert presets.resolve(None, "Nope-v0") is None
    assert presets.for_env("Nope-v0") == PPOConfig(env_name="Nope-v0")


def test_no_environment_means_cartpole_whose_preset_is_the_defaults():
    assert presets.resolve(None) == "cartpole"
    assert _config_of("train") == PPOConfig() == presets.get("cartpole")


def test_resolve_and_for_env():
    assert presets.resolve("classic-control", "CartPole-v1") == "classic-control"
    assert presets.resolve("auto", "Pendulum-v1") == presets.resolve(None, "Pendulum-v1")
    assert presets.resolve("none", "Pendulum-v1") is None
    assert presets.for_env("Pendulum-v1") == presets.get("pendulum")
    assert presets.for_env("Pong-misc", total_timesteps=10**5) == presets.get(
        "pong", total_timesteps=10**5)
    with pytest.raises(ConfigError, match="PPOConfig.num_envs"):
        presets.for_env("Pendulum-v1", num_envs=0)
    with pytest.raises(ConfigError, match="no such preset"):
        presets.build_config("nope")


def test_the_choice_is_described_in_one_line():
    assert presets.describe_choice(None, "Pendulum-v1") == (
        "using preset 'pendulum' (made for Pendulum-v1); --preset none for PPOConfig's defaults")
    assert "'minatar' (the family preset for Asterix-MinAtar)" in presets.describe_choice(
        None, "Asterix-MinAtar")
    assert presets.describe_choice("none", "Pendulum-v1") == (
        "using PPOConfig's defaults (--preset none)")
    assert "no preset for Nope-v0" in presets.describe_choice(None, "Nope-v0")
    assert "\n" not in presets.describe_choice("classic-control", "CartPole-v1")


SMALL = ["--total-timesteps", "1024", "--set", "num_envs=4", "--set", "num_steps=128",
         "--set", "num_minibatches=4", "--set", "update_epochs=1", "--set", "hidden_sizes=8",
         "--num-seeds", "1", "--no-progress"]


def test_the_chosen_preset_is_printed_before_compiling_and_saved(tmp_path, capsys):
    run_dir, out = tmp_path / "run", tmp_path / "summary.json"
    assert main(["train", "--env", "Pendulum-v1", *SMALL, "--checkpoint-dir", str(run_dir),
                 "--json", str(out)]) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    line = "using preset 'pendulum' (made for Pendulum-v1); --preset none for PPOConfig's defaults"
    assert text.splitlines()[0] == line  # before compilation and training
    summary = json.loads(out.read_text())
    assert summary["preset"] == "pendulum"
    expected = presets.get("pendulum", total_timesteps=1024, num_envs=4, num_steps=128,
                           num_minibatches=4, update_epochs=1, hidden_sizes=(8,))
    assert summary["config"]["normalize_reward"]  # the preset's, not PPOConfig's defaults
    assert summary["config"]["learning_rate"] == presets.get("pendulum").learning_rate != \
        PPOConfig().learning_rate
    assert PPOConfig(**{k: tuple(v) if isinstance(v, list) else v
                        for k, v in summary["config"].items()}) == expected
    assert json.loads((run_dir / "run.json").read_text())["preset"] == "pendulum"
    # --resume keeps the saved config and preset (the run is complete: nothing is trained).
    again = tmp_path / "again.json"
    assert main(["train", "--resume", str(run_dir), "--no-progress", "--json", str(again)]) == 0
    assert json.loads(again.read_text())["preset"] == "pendulum"
    assert json.loads(again.read_text())["config"] == summary["config"]


def test_preset_none_is_saved_as_null(tmp_path, capsys):
    out = tmp_path / "summary.json"
    assert main(["train", "--env", "CartPole-v1", "--preset", "none", *SMALL,
                 "--json", str(out)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.splitlines()[0] == "using PPOConfig's defaults (--preset none)"
    assert json.loads(out.read_text())["preset"] is None


def test_sweep_says_which_preset_before_anything_else(capsys):
    """The line comes before the grid is checked (so before any compilation)."""
    assert main(["sweep", "--env", "Asterix-MinAtar", "--grid", "learning_rate=-1",
                 "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("using preset 'minatar' (the family preset for Asterix-MinAtar)")
    assert "learning_rate" in captured.err
