"""The `purejaxppo train` command."""

import json
import subprocess
import sys

import pytest

from purejaxppo.cli import main
from purejaxppo.config import parse_override


def test_train_prints_summary_and_writes_json(tmp_path, capsys):
    out = tmp_path / "summary.json"
    code = main(["train", "--env", "CartPole-v1", "--num-seeds", "2", "--total-timesteps", "2048",
                 "--set", "num_steps=32", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "CartPole-v1: final return" in text and "over 2 seeds" in text
    assert "env steps/s" in text and "compile" in text
    summary = json.loads(out.read_text())
    assert summary["num_seeds"] == 2 and len(summary["final_return_per_seed"]) == 2
    assert summary["config"]["num_steps"] == 32
    assert summary["env_steps_per_seed"] == 2048 and summary["steps_per_second"] > 0


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "purejaxppo.cli", "train", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--num-seeds" in proc.stdout


@pytest.mark.parametrize("text, expected", [
    ("learning_rate=3e-4", ("learning_rate", 3e-4)),
    ("num-envs=8", ("num_envs", 8)),
    ("anneal_lr=false", ("anneal_lr", False)),
    ("hidden_sizes=128,128", ("hidden_sizes", (128, 128))),
    ("activation=relu", ("activation", "relu")),
])
def test_parse_override(text, expected):
    assert parse_override(text) == expected


def test_train_continuous_env_with_normalisation_and_squashing(tmp_path, capsys):
    out = tmp_path / "pendulum.json"
    code = main(["train", "--env", "Pendulum-v1", "--preset", "none", "--num-seeds", "2",
                 "--total-timesteps", "1600", "--set", "num_steps=200", "--set",
                 "normalize_obs=true", "--set", "normalize_reward=true", "--set",
                 "action_bounds=squash", "--no-progress", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(out.read_text())
    assert summary["config"]["action_bounds"] == "squash" and summary["config"]["normalize_obs"]
    assert all(-2000 < r < 0 for r in summary["final_return_per_seed"])  # raw Pendulum returns


def test_cli_network_choice_and_env_mismatch(capsys):
    assert main(["train", "--env", "Pendulum-v1", "--set", "network=cnn", "--no-progress"]) == 2
    assert "PPOConfig.network: 'cnn' needs image-like" in capsys.readouterr().err
    assert parse_override("conv_channels=16,32") == ("conv_channels", (16, 32))
    assert parse_override("obs_clip=inf") == ("obs_clip", float("inf"))


# ----------------------------------------------------------------------------- hostile input


def _config_of(*argv):
    from purejaxppo.cli import build_config, make_parser

    return build_config(make_parser().parse_args(["train", *argv]))


@pytest.fixture
def no_compile(monkeypatch):
    """Fail the test if the CLI gets as far as compiling."""
    import purejaxppo.sweeps

    def compile_sweep(*args, **kwargs):
        raise AssertionError("compiled before the error")

    monkeypatch.setattr(purejaxppo.sweeps, "compile_sweep", compile_sweep)


def test_env_and_total_timesteps_can_come_from_set():
    assert _config_of().env_name == "CartPole-v1"
    assert _config_of("--set", "env_name=Acrobot-v1").env_name == "Acrobot-v1"
    assert _config_of("--env", "Pendulum-v1").env_name == "Pendulum-v1"
    same = _config_of("--env", "Acrobot-v1", "--set", "env_name=Acrobot-v1")
    assert same.env_name == "Acrobot-v1"
    assert _config_of("--set", "total_timesteps=4096").total_timesteps == 4096
    assert _config_of("--total-timesteps", "4096", "--set",
                      "total_timesteps=4096").total_timesteps == 4096


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_env_or_total_timesteps_given_two_different_ways_is_an_error(command, capsys, no_compile):
    assert main([command, "--env", "CartPole-v1", "--set", "env_name=Acrobot-v1",
                 "--no-progress"]) == 2
    assert "--env 'CartPole-v1' and --set env_name='Acrobot-v1' disagree" in capsys.readouterr().err
    assert main([command, "--total-timesteps", "4096", "--set", "total_timesteps=8192",
                 "--no-progress"]) == 2
    assert ("--total-timesteps 4096 and --set total_timesteps=8192 disagree"
            in capsys.readouterr().err)


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize("window", ["0", "-3"])
def test_final_window_must_be_at_least_one(command, window, capsys, no_compile):
    assert main([command, "--final-window", window, "--no-progress"]) == 2
    assert "--final-window: must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_invalid_sizes_are_config_errors_not_crashes(command, capsys, no_compile):
    """num_envs=0 used to reach a division in the progress set-up (ZeroDivisionError)."""
    assert main([command, "--set", "num_envs=0", "--no-progress"]) == 2
    assert "PPOConfig.num_envs: must be a positive integer, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("command, option", [("train", "--json"), ("sweep", "--json"),
                                             ("sweep", "--npz")])
def test_output_paths_are_checked_before_training(command, option, tmp_path, capsys, no_compile):
    missing = tmp_path / "no_such_dir" / "out"
    assert main([command, option, str(missing), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{option} {missing}: the directory {missing.parent} does not exist" in err
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    assert main([command, option, str(a_file / "out"), "--no-progress"]) == 2
    assert f"the directory {a_file} is not a directory" in capsys.readouterr().err
    assert main([command, option, str(tmp_path), "--no-progress"]) == 2
    assert f"{option} {tmp_path}: is a directory" in capsys.readouterr().err


def _strict_json(path):
    def reject(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=reject)


NO_EPISODE_ENDS = ["--env", "MountainCar-v0", "--total-timesteps", "64", "--set", "num_envs=2",
                   "--set", "num_steps=32", "--set", "num_minibatches=2", "--set",
                   "hidden_sizes=8", "--no-progress"]  # MountainCar episodes last 200 steps


def test_train_json_has_null_not_nan_when_no_episode_finished(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert main(["train", *NO_EPISODE_ENDS, "--json", str(out)]) == 0, capsys.readouterr().err
    summary = _strict_json(out)
    assert summary["final_return_mean"] is None and summary["final_return_std"] is None
    assert summary["final_return_per_seed"] == [None]
    assert summary["env"] == "MountainCar-v0" and summary["num_updates"] == 1


def test_sweep_json_has_null_not_nan_when_no_episode_finished(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert main(["sweep", *NO_EPISODE_ENDS, "--num-seeds", "1", "--grid", "gamma=0.9,0.99",
                 "--json", str(out)]) == 0, capsys.readouterr().err
    rows = _strict_json(out)["rows"]
    assert [row["final_return_mean"] for row in rows] == [None, None]
    assert rows[0]["final_return_per_seed"] == [None]


def test_json_safe_replaces_every_non_finite_float():
    import numpy as np

    from purejaxppo.logs import json_safe

    value = {"a": float("nan"), "b": [np.float32(1.5), np.nan, (1, float("-inf"))],
             "c": np.array([2.0, np.inf]), "d": "nan", "e": True}
    assert json.dumps(json_safe(value), allow_nan=False) == (
        '{"a": null, "b": [1.5, null, [1, null]], "c": [2.0, null], "d": "nan", "e": true}')
