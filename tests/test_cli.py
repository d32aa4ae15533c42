"""The `purejaxppo train` command."""

import json
import subprocess
import sys

import pytest

from purejaxppo.cli import main, parse_override


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
    code = main(["train", "--env", "Pendulum-v1", "--num-seeds", "2", "--total-timesteps", "1600",
                 "--set", "num_steps=200", "--set", "normalize_obs=true", "--set",
                 "normalize_reward=true", "--set", "action_bounds=squash", "--no-progress",
                 "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(out.read_text())
    assert summary["config"]["action_bounds"] == "squash" and summary["config"]["normalize_obs"]
    assert all(-2000 < r < 0 for r in summary["final_return_per_seed"])  # raw Pendulum returns


def test_cli_network_choice_and_env_mismatch(capsys):
    assert main(["train", "--env", "Pendulum-v1", "--set", "network=cnn", "--no-progress"]) == 2
    assert "PPOConfig.network: 'cnn' needs image-like" in capsys.readouterr().err
    assert parse_override("conv_channels=16,32") == ("conv_channels", (16, 32))
    assert parse_override("obs_clip=inf") == ("obs_clip", float("inf"))
