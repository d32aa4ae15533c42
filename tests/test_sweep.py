"""Hyperparameter grids and sweeps: construction, validation, and equality with separate runs."""

import dataclasses

import jax
import numpy as np
import pytest

import purejaxppo
from purejaxppo import ConfigError, HParams, PPOConfig, hparam_grid, make_train, sweep
from purejaxppo.sweeps import (format_sweep_table, hparams_at, num_settings, padded_size,
                               rows_to_dicts, run_mesh, stack_hparams, sweep_table, train_runs,
                               train_seeds)

# 16 updates of 4 envs x 16 steps: a few seconds to compile on 2 CPU cores.
CONFIG = PPOConfig(env_name="CartPole-v1", total_timesteps=1024, num_envs=4, num_steps=16,
                   hidden_sizes=(8, 8))
LEARNING_RATES = [1e-3, 1e-2]
ENT_COEFS = [0.0, 0.05]
NUM_SEEDS = 2

# Fields that follow the trajectory (exact unless the trajectories diverge) and fields that are
# float reductions (a vmapped program may round differently from a single run).
EPISODE_FIELDS = ("episode_return", "episode_length", "num_episodes", "learning_rate")


def assert_metrics_close(actual, expected):
    for name in actual._fields:
        a, e = np.asarray(getattr(actual, name)), np.asarray(getattr(expected, name))
        if name in EPISODE_FIELDS:
            np.testing.assert_allclose(a, e, rtol=1e-6, err_msg=name)
        else:
            np.testing.assert_allclose(a, e, rtol=1e-3, atol=1e-4, err_msg=name)


# ----------------------------------------------------------------------------- grid


def test_grid_is_cartesian_product_last_name_fastest():
    grid = hparam_grid(CONFIG, learning_rate=[1e-4, 3e-4, 1e-3], ent_coef=[0.0, 0.01])
    assert isinstance(grid, HParams)
    assert num_settings(grid) == 6
    assert all(np.shape(leaf) == (6,) for leaf in jax.tree.leaves(grid))
    np.testing.assert_allclose(grid.learning_rate, [1e-4, 1e-4, 3e-4, 3e-4, 1e-3, 1e-3])
    np.testing.assert_allclose(grid.ent_coef, [0.0, 0.01] * 3)
    # Fields not swept keep the config's values.
    for name in ("gamma", "gae_lambda", "clip_eps", "vf_clip_eps", "vf_coef", "max_grad_norm"):
        np.testing.assert_allclose(getattr(grid, name), np.full(6, getattr(CONFIG, name)),
                                   rtol=1e-6, err_msg=name)
    # Reversing the keyword order reverses which axis varies fastest.
    swapped = hparam_grid(CONFIG, ent_coef=[0.0, 0.01], learning_rate=[1e-4, 3e-4, 1e-3])
    np.testing.assert_allclose(swapped.ent_coef, [0.0] * 3 + [0.01] * 3)


def test_grid_scalars_and_no_names():
    one = hparam_grid(CONFIG, gamma=0.9)
    assert num_settings(one) == 1
    assert hparams_at(one, 0) == dataclasses.replace(CONFIG.hparams(), gamma=0.9)
    default = hparam_grid(CONFIG)
    assert hparams_at(default, 0) == CONFIG.hparams()


def test_grid_unknown_name_is_named_with_valid_ones():
    with pytest.raises(ConfigError) as err:
        hparam_grid(CONFIG, learning_rate=[1e-3], lr=[1e-3])
    message = str(err.value)
    assert "'lr'" in message
    for name in purejaxppo.HPARAM_FIELDS:
        assert name in message


def test_grid_static_field_is_rejected_with_reason():
    with pytest.raises(ConfigError, match="num_envs.*static"):
        hparam_grid(CONFIG, num_envs=[4, 8])


@pytest.mark.parametrize("kwargs, field", [
    (dict(learning_rate=[1e-3, -1e-3]), "learning_rate"),
    (dict(gamma=[0.9, 1.5]), "gamma"),
    (dict(ent_coef=[float("nan")]), "ent_coef"),
    (dict(clip_eps=["big"]), "clip_eps"),
    (dict(vf_coef=[]), "vf_coef"),
])
def test_grid_bad_values_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        hparam_grid(CONFIG, **kwargs)


def test_stack_hparams_and_validation():
    a, b = CONFIG.hparams(), dataclasses.replace(CONFIG.hparams(), clip_eps=0.1)
    stacked = stack_hparams([a, b])
    assert num_settings(stacked) == 2
    assert hparams_at(stacked, 1) == b
    with pytest.raises(ConfigError, match=r"HParams\[1\]\.max_grad_norm"):
        stack_hparams([a, dataclasses.replace(a, max_grad_norm=0.0)])
    with pytest.raises(ConfigError):
        stack_hparams([])


def test_padded_size():
    assert [padded_size(n, 4) for n in (1, 4, 5, 8, 9)] == [4, 4, 8, 8, 12]
    assert padded_size(7, 1) == 7


def test_train_runs_checks_shapes_before_compiling():
    keys = jax.random.split(jax.random.key(0), 3)
    grid = hparam_grid(CONFIG, learning_rate=LEARNING_RATES)  # 2 settings, not 3
    with pytest.raises(ValueError, match=r"\(3,\)"):
        train_runs(make_train(CONFIG), keys, grid)


# ----------------------------------------------------------------------------- sweeping


@pytest.fixture(scope="module")
def train():
    return make_train(CONFIG)


@pytest.fixture(scope="module")
def keys():
    return jax.random.split(jax.random.key(0), NUM_SEEDS)


@pytest.fixture(scope="module")
def grid():
    return hparam_grid(CONFIG, learning_rate=LEARNING_RATES, ent_coef=ENT_COEFS)


@pytest.fixture(scope="module")
def result(train, keys, grid):
    return sweep(train, keys, grid, mesh=run_mesh(jax.devices()[:1]))


@pytest.fixture(scope="module")
def single_run(train):
    return jax.jit(train)


def test_sweep_shapes_and_hparams(result, grid):
    s, k, u = len(LEARNING_RATES) * len(ENT_COEFS), NUM_SEEDS, CONFIG.num_updates
    assert all(np.shape(leaf) == (s, k, u) for leaf in result.metrics)
    assert all(leaf.shape[:2] == (s, k) for leaf in jax.tree.leaves(result.params))
    assert all(np.shape(leaf) == (s,) for leaf in jax.tree.leaves(result.hparams))
    np.testing.assert_array_equal(result.diverged_at, np.full((s, k), -1))
    for i in range(s):
        assert hparams_at(result.hparams, i) == hparams_at(grid, i)


def test_sweep_equals_separate_runs(result, grid, keys, single_run):
    for i in range(num_settings(grid)):
        for j in range(NUM_SEEDS):
            alone = single_run(keys[j], hparams_at(grid, i))
            row = jax.tree.map(lambda x: x[i, j], result.metrics)
            assert_metrics_close(row, alone.metrics)
            for a, e in zip(jax.tree.leaves(result.params), jax.tree.leaves(alone.params)):
                np.testing.assert_allclose(a[i, j], e, rtol=1e-3, atol=1e-5)


def test_sweep_uses_each_setting(result):
    # Traced learning rate, linearly annealed: update t runs at lr * (1 - t / num_updates).
    schedule = 1.0 - np.arange(CONFIG.num_updates) / CONFIG.num_updates
    for i, lr in enumerate(np.repeat(LEARNING_RATES, len(ENT_COEFS))):
        np.testing.assert_allclose(result.metrics.learning_rate[i], np.tile(lr * schedule,
                                                                           (NUM_SEEDS, 1)),
                                   rtol=1e-5)
    # Settings differ only in their hyperparameters, and differently-set runs differ.
    assert not np.allclose(result.metrics.entropy[0], result.metrics.entropy[1])
    assert not np.allclose(result.metrics.policy_loss[0], result.metrics.policy_loss[2])


def test_train_seeds_equals_separate_runs(train, keys, single_run):
    out = train_seeds(train, keys, config=CONFIG)
    for j in range(NUM_SEEDS):
        alone = single_run(keys[j], CONFIG.hparams())
        assert_metrics_close(jax.tree.map(lambda x: x[j], out.metrics), alone.metrics)


def test_sweep_table(result):
    rows = sweep_table(result, window=5)
    finals = purejaxppo.final_return(result.metrics, window=5)
    assert len(rows) == len(LEARNING_RATES) * len(ENT_COEFS)
    for i, row in enumerate(rows):
        assert row.index == i
        assert row.hparams == dataclasses.asdict(hparams_at(result.hparams, i))
        np.testing.assert_allclose(row.per_seed, finals[i])
        np.testing.assert_allclose(row.mean, np.nanmean(finals[i]))
        np.testing.assert_allclose(row.std, np.nanstd(finals[i]))
        assert row.num_seeds == np.sum(~np.isnan(finals[i]))
    text = format_sweep_table(rows)
    lines = text.splitlines()
    assert len(lines) == 2 + len(rows)
    assert "learning_rate" in lines[0] and "ent_coef" in lines[0] and "gamma" not in lines[0]
    assert f"{rows[3].mean:.2f} ± {rows[3].std:.2f}" in lines[2 + 3]
    assert rows_to_dicts(rows)[1]["hparams"]["ent_coef"] == ENT_COEFS[1]


# ----------------------------------------------------------------------------- command line


def test_cli_parse_grid():
    from purejaxppo.cli import make_parser, parse_grid

    assert parse_grid(["learning_rate=1e-4,3e-4", "ent-coef=0,0.01"]) == {
        "learning_rate": [1e-4, 3e-4], "ent_coef": [0.0, 0.01]}
    for bad, match in [(["num_envs=4,8"], "num_envs.*static"), (["lr=1"], "lr"),
                       (["gamma=0.9", "gamma=0.99"], "twice"), (["gamma=high"], "gamma"),
                       (["gamma"], "field=value")]:
        with pytest.raises(ConfigError, match=match):
            parse_grid(bad)
    args = make_parser().parse_args(["sweep", "--num-seeds", "3", "--grid", "gamma=0.9,0.99",
                                     "--coordinator", "127.0.0.1:1234", "--num-processes", "2",
                                     "--process-id", "1", "--no-progress"])
    assert (args.num_seeds, args.grid, args.coordinator, args.num_processes, args.process_id,
            args.no_progress) == (3, ["gamma=0.9,0.99"], "127.0.0.1:1234", 2, 1, True)


def test_cli_sweep_rejects_bad_grid_before_compiling(capsys):
    from purejaxppo.cli import main

    assert main(["sweep", "--grid", "learning_rate=-1", "--no-progress"]) == 2
    assert "learning_rate" in capsys.readouterr().err


def test_sweep_over_gamma_on_a_normalised_continuous_env_equals_separate_runs():
    """Traced γ also drives the reward scaler's discounted return; each run keeps its own
    normalisation statistics, and the sweep returns them (nothing dropped)."""
    config = PPOConfig(env_name="Pendulum-v1", total_timesteps=4 * 32 * 4, num_envs=4,
                       num_steps=32, hidden_sizes=(8, 8), normalize_obs=True,
                       normalize_reward=True, action_bounds="squash")
    train = make_train(config)
    grid = hparam_grid(config, gamma=[0.9, 0.99])
    keys = jax.random.split(jax.random.key(3), 2)
    out = sweep(train, keys, grid)
    assert out.obs_stats.mean.shape == (2, 2, 3)
    single = jax.jit(train)
    for i in range(2):
        for j in range(2):
            alone = single(keys[j], hparams_at(grid, i))
            assert_metrics_close(jax.tree.map(lambda x: x[i, j], out.metrics), alone.metrics)
            np.testing.assert_allclose(out.obs_stats.mean[i, j], alone.obs_stats.mean, rtol=1e-4)
    # γ matters: the two settings learned from differently scaled rewards.
    assert not np.allclose(out.metrics.value_loss[0], out.metrics.value_loss[1])


# ----------------------------------------------------------------------------- groups of runs


def test_runs_per_group_on_cpu_and_elsewhere():
    from purejaxppo.sweeps import runs_per_group

    assert [runs_per_group(n, "cpu") for n in (1, 16, 17, 32, 64, 256, 100, 97)] == [
        1, 16, 17, 16, 16, 16, 10, 97]  # 17 and 97 have no divisor in 8..16: one vmap
    assert runs_per_group(256, "gpu") == 256 and runs_per_group(4096, "tpu") == 4096


def test_runs_in_groups_equal_one_vmap():
    """`lax.map` over groups of vmapped runs computes what one vmap over all does (up to float
    rounding: XLA's kernels may round differently at another batch width), pytrees in and out."""
    from purejaxppo.sweeps import vmap_in_groups

    def run(key, hp):  # a stand-in for train: a scan of matmuls from a key and a hyperparameter
        w = jax.random.normal(key, (8, 8)) * hp["scale"]

        def step(x, _):
            x = jax.numpy.tanh(x @ w)
            return x, x.sum()

        x, sums = jax.lax.scan(step, jax.numpy.ones(8), None, length=5)
        return {"x": x, "sums": sums}

    keys = jax.random.split(jax.random.key(3), 12)
    hps = {"scale": np.linspace(0.1, 1.0, 12, dtype=np.float32)}
    together = jax.jit(jax.vmap(run))(keys, hps)
    for group in (4, 1):
        grouped = jax.jit(vmap_in_groups(run, group=group))(keys, hps)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                     grouped, together)
    with pytest.raises(ValueError, match="12 runs do not split into groups of 5"):
        jax.eval_shape(vmap_in_groups(run, group=5), keys, hps)
