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


# One name per distinct config (a family preset may equal a per-env one: same program).
DISTINCT = sorted({presets.PRESETS[n].config: n for n in reversed(presets.names())}.values())


def test_distinct_presets_cover_every_config():
    assert {presets.PRESETS[n].config for n in DISTINCT} == {
        p.config for p in presets.PRESETS.values()}


@pytest.mark.parametrize("name", DISTINCT)
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


def _returns_script():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "returns.py"
    spec = importlib.util.spec_from_file_location("experiments_returns", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_returns_table_trains_each_env_with_a_preset_meant_for_it():
    """experiments/returns.py: every row names a preset for its env; every gymnax env that can be
    made offline has a row; the table renders a missing evaluation as 'not measured'."""
    from purejaxppo.envs import available_envs

    returns = _returns_script()
    for target in returns.TARGETS:
        assert target.preset in presets.presets_for(target.env), target
        presets.get(target.preset, env_name=target.env)
    assert {t.env for t in returns.TARGETS} == set(available_envs()) - set(NEEDS_NETWORK)
    row = {"env": "X", "preset": "p", "budget": 250_000, "num_seeds": 8,
           "final_return_mean": -110.14, "final_return_std": 8.92, "eval_return_mean": None,
           "eval_return_std": None, "published": "", "source": "none found"}
    assert ("| X | p | 2.5e5 | 8 | −110.1 ± 8.9 | not measured | — | none found |"
            in returns.table([row]))


# One learning run per preset family at a reduced budget, 2 seeds (slow: out of CI; `-m slow`).
# Each bound is far from the first 5% of updates and short of what these exact runs measured,
# printed by the test (2026-12-02, 2-core Intel Xeon, base key 0). FourRooms is judged by
# episode length (steps to the goal): every episode that ends before the time limit returns 1.
FAMILY_LEARNING = [
    pytest.param("acrobot", "Acrobot-v1", 250_000, "return", -100.0, id="classic-discrete"),
    pytest.param("pendulum", "Pendulum-v1", 300_000, "return", -300.0, id="classic-continuous"),
    pytest.param("minatar", "Breakout-MinAtar", 250_000, "return", 3.0, id="minatar"),
    pytest.param("bsuite", "Catch-bsuite", 50_000, "return", 0.5, id="bsuite"),
    pytest.param("misc", "FourRooms-misc", 200_000, "length", 100.0, id="misc"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,env,budget,measure,bound", FAMILY_LEARNING)
def test_preset_family_learns_at_reduced_budget(name, env, budget, measure, bound):
    from purejaxppo import final_return

    config = presets.get(name, env_name=env, total_timesteps=budget)
    metrics = jax.jit(jax.vmap(make_train(config)))(jax.random.split(jax.random.key(0), 2)).metrics
    if measure == "length":
        metrics = metrics._replace(episode_return=metrics.episode_length)
    final = final_return(metrics)
    early = np.asarray(metrics.episode_return)[:, : max(3, config.num_updates // 20)]
    first = np.nanmean(early)  # the first 5% of updates (some finish no episode at first)
    print(f"{name} on {env} at {budget}: final {measure} {final}, first 5% of updates {first:.2f}")
    if measure == "return":
        assert final.min() >= bound > first
    else:
        assert final.max() <= bound < first
