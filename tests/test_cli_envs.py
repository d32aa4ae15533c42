"""The `purejaxppo envs` command and the `--compile-cache` option of train / sweep."""

import json
import os
import subprocess
import sys
import types

import gymnax
import pytest

from purejaxppo import cli, envtable
from purejaxppo import fit as fit_module
from purejaxppo.cli import main


def test_envs_lists_every_gymnax_env(tmp_path, capsys):
    out = tmp_path / "envs.json"
    assert main(["envs", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    rows = json.loads(out.read_text())
    assert [r["env"] for r in rows] == list(gymnax.registered_envs)
    assert all(name in text for name in gymnax.registered_envs)
    by_name = {r["env"]: r for r in rows}
    assert by_name["CartPole-v1"] | {"preset": "-"} == {
        "env": "CartPole-v1", "action_space": "Discrete(2)", "num_actions": 2, "action_shape": [],
        "action_low": None, "action_high": None, "obs_shape": [4], "obs_categories": None,
        "observation": "(4,)", "network": "mlp", "preset": "-", "error": None}
    pendulum = by_name["Pendulum-v1"]
    assert pendulum["action_space"] == "Box((1,), -2, 2)" and pendulum["num_actions"] is None
    assert (pendulum["action_low"], pendulum["action_high"]) == ([-2.0], [2.0])
    assert by_name["Breakout-MinAtar"]["network"] == "cnn"
    assert by_name["Breakout-MinAtar"]["obs_shape"] == [10, 10, 4]
    assert by_name["FrozenLake-misc"]["observation"] == "Discrete(16)"
    assert by_name["FrozenLake-misc"]["obs_categories"] == 16
    mnist = by_name["MNISTBandit-bsuite"]  # not made (it downloads data): listed with the reason
    assert mnist["action_space"] is None and "downloads a data set" in mnist["error"]
    assert "downloads a data set" in text
    assert all(r["error"] is None for r in rows if r["env"] != "MNISTBandit-bsuite")
    assert all(r["preset"] == envtable.env_presets(r["env"]) for r in rows)
    for header in ("environment", "action space", "observation", "network (auto)", "preset"):
        assert header in text.splitlines()[0]


def test_env_presets_hook(monkeypatch):
    monkeypatch.setattr(envtable, "PRESETS_MODULE", "purejaxppo._no_presets_here")
    assert envtable.env_presets("CartPole-v1") == "-"
    fake = types.ModuleType("purejaxppo._fake_presets")
    fake.PRESETS = {"cartpole-fast": {"env_name": "CartPole-v1"},
                    "cartpole-rllib": {"env": "CartPole-v1"},
                    "pendulum": types.SimpleNamespace(env_name="Pendulum-v1"),
                    "Acrobot-v1": object()}  # keyed by the environment itself
    monkeypatch.setitem(sys.modules, "purejaxppo._fake_presets", fake)
    monkeypatch.setattr(envtable, "PRESETS_MODULE", "purejaxppo._fake_presets")
    assert envtable.env_presets("CartPole-v1") == "cartpole-fast, cartpole-rllib"
    assert envtable.env_presets("Pendulum-v1") == "pendulum"
    assert envtable.env_presets("Acrobot-v1") == "Acrobot-v1"
    assert envtable.env_presets("MountainCar-v0") == "-"
    fake.presets_for = lambda env: ["b", "a"] if env == "MountainCar-v0" else []
    assert envtable.env_presets("MountainCar-v0") == "b, a"  # presets_for order: own first
    assert envtable.env_presets("CartPole-v1") == "-"


def test_envs_json_path_is_checked(tmp_path, capsys):
    assert main(["envs", "--json", str(tmp_path / "missing" / "envs.json")]) == 2
    assert "--json" in capsys.readouterr().err


# ----------------------------------------------------------------------------- --compile-cache

TINY = ["--env", "CartPole-v1", "--num-seeds", "2", "--total-timesteps", "1024",
        "--set", "num_envs=4", "--set", "num_steps=16", "--set", "hidden_sizes=8,8",
        "--set", "update_epochs=1", "--set", "num_minibatches=1", "--no-progress"]


def test_compile_cache_second_run_reads_what_the_first_wrote(tmp_path):
    """Two processes with one --compile-cache DIR: the first writes the compiled programs, the
    second finds every one of them (it writes nothing new) and trains to the same results."""
    cache = tmp_path / "cache"  # created by the option

    def run(i):
        out = tmp_path / f"summary{i}.json"
        proc = subprocess.run([sys.executable, "-m", "purejaxppo.cli", "train", *TINY,
                               "--compile-cache", str(cache), "--json", str(out)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(out.read_text()), set(os.listdir(cache))

    first, written = run(1)
    assert written, "the first run wrote no cache entries"
    second, after = run(2)
    assert after == written  # every program the second run compiled came from the cache
    assert second["final_return_per_seed"] == first["final_return_per_seed"]
    assert second["config"] == first["config"]


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_compile_cache_directory_must_be_creatable(command, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main([command, *TINY, "--compile-cache", str(blocker / "cache")]) == 2
    err = capsys.readouterr().err
    assert f"--compile-cache {blocker / 'cache'}: cannot create the directory" in err


def test_compile_cache_notes_that_the_progress_bar_is_not_cached(tmp_path, monkeypatch, capsys):
    updates = []
    monkeypatch.setattr(fit_module.jax.config, "update", lambda *a: updates.append(a))
    fit_module.enable_compile_cache(str(tmp_path), "--compile-cache", progress=True)
    assert ("jax_compilation_cache_dir", str(tmp_path)) in updates
    assert "add --no-progress" in capsys.readouterr().err
    fit_module.enable_compile_cache(str(tmp_path), "--compile-cache", progress=False)
    assert capsys.readouterr().err == ""
