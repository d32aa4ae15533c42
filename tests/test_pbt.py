"""Population-based training (`purejaxppo.pbt`): exploit copies exactly, explore multiplies
exactly and stays in bounds, the same key gives the same lineage, 4 devices give the numbers of
1, a probe whose good learning rates are known pulls the population there (and does not without
exploit), resume is bitwise, and the CLI."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import purejaxppo
from purejaxppo import make_trainer
from purejaxppo.checkpoint import checkpoint_path, latest_checkpoint, read_meta
from purejaxppo.cli import main
from purejaxppo.config import ConfigError, HParams
from purejaxppo.parallel import run_mesh
from purejaxppo.pbt import (PBT, Space, choose_sources, initial_population, parse_pbt,
                            pbt_step, read_lineage, run_population, schedules)
from purejaxppo.runs import keys_to_data

from probes import ActionReward, ProbeParams

P = 6  # members of the fit-level runs: 6 pads to 8 on 4 devices
FIT_PBT = PBT({"learning_rate": (1e-4, 1e-2), "ent_coef": [0.0, 0.01]}, population=P, ready=4,
              fraction=0.34)
CLI_PBT = ["--pbt", "learning_rate=1e-4:1e-2", "--pbt", "ent_coef=0,0.01", "--population",
           str(P), "--ready", "4", "--pbt-fraction", "0.34"]


# ----------------------------------------------------------------------------- checks


@pytest.mark.parametrize("pbt, match", [
    (PBT({"num_envs": (1, 2)}), "static PPOConfig field"),
    (PBT({"kl_coef": (0.1, 1.0)}), "kl_coef.*initial β"),
    (PBT({"gamma": Space(0.9, 0.99, log=False, bounds=(0.9, 1.1))}), "gamma must be in \\[0, 1\\]"),
    (PBT({"ent_coef": Space(0.0, 0.01)}), "log-scale range needs positive bounds"),
    (PBT({"learning_rate": Space(1e-3, 1e-2, bounds=(2e-3, 1.0))}), "lo <= low"),
    (PBT({"learning_rate": (1e-3, 1e-2)}, population=3), "fraction"),
    (PBT({"learning_rate": (1e-3, 1e-2)}, factors=(0.8, -1.0)), "PBT.factors"),
    (PBT({"learning_rate": [1e-3, 2e-3, 3e-3]}, population=8), "do not tile"),
    (PBT({"learning_rate": (1e-3, 1e-2)}, ready=16), "no exploit step"),
    (PBT({}), "at least one"),
])
def test_bad_pbt_raises_before_compiling(tiny_config, pbt, match):
    with pytest.raises(ConfigError, match=match):
        purejaxppo.fit(tiny_config, pbt=pbt, progress=False)


@pytest.mark.parametrize("options, match", [
    (dict(grid={"learning_rate": [1e-3]}), "give no grid"),
    (dict(num_seeds=2), "num_seeds"),
    (dict(checkpoint_every=8), "checkpoint_every"),
    (dict(eval_every=8), "eval_every"),
])
def test_pbt_refuses_conflicting_fit_options(tiny_config, options, match):
    with pytest.raises(ConfigError, match=match):
        purejaxppo.fit(tiny_config, pbt=FIT_PBT, progress=False, **options)


def test_parse_pbt():
    pbt = parse_pbt(["learning_rate=1e-4:1e-2", "clip_eps=0.1:0.3:lin", "ent_coef=0,0.01"],
                    ["learning_rate=1e-5:1e-1"], population=4, ready=None)
    spaces = dict(pbt.ranges)
    assert spaces["learning_rate"] == Space(1e-4, 1e-2, True, (), (1e-5, 1e-1))
    assert spaces["clip_eps"] == Space(0.1, 0.3, False)
    assert spaces["ent_coef"].values == (0.0, 0.01) and not spaces["ent_coef"].log
    assert pbt.population == 4 and pbt.ready == PBT.ready
    assert PBT.from_dict(json.loads(json.dumps(pbt.to_dict()))) == pbt
    for bad in (["lr=1:2"], ["learning_rate=1:2:cubic"], ["learning_rate"]):
        with pytest.raises(ConfigError):
            parse_pbt(bad)


def test_initial_population_tiles_the_grid_and_samples_in_range(tiny_config):
    pbt = PBT({"learning_rate": (1e-4, 1e-2), "ent_coef": [0.0, 0.01],
               "clip_eps": [0.1, 0.2, 0.3]}, population=12)
    hp = initial_population(tiny_config, pbt, seed=3)
    combos = list(zip(hp.ent_coef.tolist(), hp.clip_eps.tolist()))
    grid = [(a, b) for a in (0.0, 0.01) for b in (0.1, 0.2, 0.3)]
    assert combos == [tuple(np.float32(v).item() for v in c) for c in grid * 2]
    assert np.all((hp.learning_rate >= np.float32(1e-4)) & (hp.learning_rate <= np.float32(1e-2)))
    assert len(set(hp.learning_rate.tolist())) == 12
    assert np.all(hp.gamma == np.float32(tiny_config.gamma))  # not explored: the config's
    again = initial_population(tiny_config, pbt, seed=3)
    other = initial_population(tiny_config, pbt, seed=4)
    assert np.array_equal(again.learning_rate, hp.learning_rate)
    assert not np.array_equal(other.learning_rate, hp.learning_rate)


# ----------------------------------------------------------------------------- the step


def _ranking_reference(fitness, n):
    """(top, bottom) index sets by plain Python: NaN last, ties by index."""
    score = [-np.inf if np.isnan(f) else f for f in fitness]
    order = sorted(range(len(fitness)), key=lambda i: (-score[i], i))
    return set(order[:n]), set(order[-n:])


@pytest.mark.parametrize("exploit", [True, False])
def test_choose_sources_matches_a_reference_ranking(exploit):
    pbt = PBT({"learning_rate": (1e-4, 1e-2)}, population=10, fraction=0.3, exploit=exploit)
    fitness = np.asarray([3.0, np.nan, 1.0, 5.0, 1.0, 2.0, 5.0, 0.5, np.nan, 4.0], np.float32)
    top, bottom = _ranking_reference(fitness, 3)
    seen = set()
    for k in range(20):
        d = choose_sources(jax.numpy.asarray(fitness), jax.random.key(k), pbt)
        source, explored = np.asarray(d.source), np.asarray(d.explored)
        assert set(np.flatnonzero(explored)) == bottom
        for i in range(10):
            if i in bottom and exploit:
                assert source[i] in top
                seen.add(int(source[i]))
            else:
                assert source[i] == i
    assert seen == (top if exploit else set())  # every top member gets drawn


def _fake_population(trainer, padded, seed=0):
    """A keys-as-data `TrainState` of `padded` members in which every leaf differs between
    members (random numbers of each leaf's shape and dtype): exploit must move whole members."""
    abstract = jax.eval_shape(lambda k: keys_to_data(trainer.init(k)), jax.random.key(0))
    rng = np.random.default_rng(seed)
    leaves, tree = jax.tree.flatten(abstract)
    filled = [(rng.integers(0, 1000, (padded, *a.shape)) if np.issubdtype(a.dtype, np.integer)
               or a.dtype == bool else rng.normal(size=(padded, *a.shape))).astype(a.dtype)
              for a in leaves]
    return jax.tree.unflatten(tree, filled)


def _hparams(config, padded, **values):
    base = {k: np.full((padded,), v, np.float32)
            for k, v in config.hparams().__dict__.items()}
    return HParams(**{**base, **{k: np.asarray(v, np.float32) for k, v in values.items()}})


@pytest.fixture(scope="module")
def normalising_trainer(tiny_config):
    """The tiny config with observation and reward normalisation (every part of the state)."""
    return make_trainer(tiny_config.replace(normalize_obs=True, normalize_reward=True))


def test_exploit_copies_every_copied_leaf_exactly(normalising_trainer):
    config = normalising_trainer.config
    p, padded = 6, 8  # two padding rows, as on a 4-device mesh
    state = _fake_population(normalising_trainer, padded)
    pbt = PBT({"learning_rate": (1e-4, 1e-2)}, population=p, fraction=0.5)
    lrs = np.geomspace(1e-4, 1e-2, padded)
    fitness = np.asarray([0.0, 5.0, 1.0, 4.0, 3.0, 2.0], np.float32)
    mesh = run_mesh(jax.devices()[:1])
    new, hp, key, d = pbt_step(state, _hparams(config, padded, learning_rate=lrs), fitness,
                               np.asarray(jax.random.key_data(jax.random.key(7))), pbt=pbt,
                               impl="threefry2x32", mesh=mesh)
    source = np.asarray(d.source)
    assert set(np.flatnonzero(source != np.arange(p))) == {0, 2, 5}  # the bottom half
    assert set(source[[0, 2, 5]]) <= {1, 3, 4}
    index = np.concatenate([source, [6, 7]])  # padding stays as it is
    copied = {"learner": new.learner, "obs_stats": new.obs_stats,
              "reward_stats": new.reward_scaler.stats}
    before = {"learner": state.learner, "obs_stats": state.obs_stats,
              "reward_stats": state.reward_scaler.stats}
    for part, tree in copied.items():
        for got, old in zip(jax.tree.leaves(tree), jax.tree.leaves(before[part])):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(old)[index], err_msg=part)
    kept = (new.runner, new.reward_scaler.returns, new.update)
    for got, old in zip(jax.tree.leaves(kept), jax.tree.leaves((state.runner,
                                                                state.reward_scaler.returns,
                                                                state.update))):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(old))
    # Hyperparameters: the source's, the copied ones explored.
    for name, values in hp.__dict__.items():
        if name != "learning_rate":
            np.testing.assert_array_equal(np.asarray(values), np.asarray(getattr(
                _hparams(config, padded, learning_rate=lrs), name))[index])
    # The same key: the same step; another key: other draws.
    again = pbt_step(state, _hparams(config, padded, learning_rate=lrs), fitness,
                     np.asarray(jax.random.key_data(jax.random.key(7))), pbt=pbt,
                     impl="threefry2x32", mesh=mesh)
    np.testing.assert_array_equal(np.asarray(again[3].source), source)
    np.testing.assert_array_equal(np.asarray(again[1].learning_rate), np.asarray(hp.learning_rate))
    np.testing.assert_array_equal(np.asarray(again[2]), np.asarray(key))
    assert not np.array_equal(np.asarray(key), np.asarray(jax.random.key_data(jax.random.key(7))))


@pytest.mark.parametrize("resample", [0.0, 0.5, 1.0])
def test_explore_multiplies_by_exactly_the_factors_within_bounds(normalising_trainer, resample):
    config = normalising_trainer.config
    p = 64
    state = _fake_population(normalising_trainer, p, seed=1)
    space = Space(1e-3, 1e-2, bounds=(5e-4, 2e-2))
    pbt = PBT({"learning_rate": space, "clip_eps": [0.1, 0.2, 0.3]}, population=p, fraction=0.5,
              resample_probability=resample, factors=(0.8, 1.2))
    lrs = np.geomspace(5e-4, 2e-2, p).astype(np.float32)
    clips = np.tile(np.float32([0.1, 0.2, 0.3, 0.25]), p // 4)
    fitness = np.random.default_rng(0).normal(size=p).astype(np.float32)
    _, hp, _, d = pbt_step(state, _hparams(config, p, learning_rate=lrs, clip_eps=clips),
                           fitness, np.asarray(jax.random.key_data(jax.random.key(resample > 0))),
                           pbt=pbt, impl="threefry2x32", mesh=run_mesh(jax.devices()[:1]))
    source, explored = np.asarray(d.source), np.asarray(d.explored)
    counts = {"factor": 0, "bound": 0, "resampled": 0}
    for name, old, (lo, hi), grid in (("learning_rate", lrs, (5e-4, 2e-2), None),
                                      ("clip_eps", clips, (0.1, 0.3), (0.1, 0.2, 0.3))):
        new = np.asarray(getattr(hp, name))
        assert np.all((new >= np.float32(lo)) & (new <= np.float32(hi))), name
        for i in range(p):
            start = old[source[i]]
            if not explored[i]:
                assert new[i] == start
                continue
            products = {np.float32(start) * np.float32(f) for f in (0.8, 1.2)}
            clipped = {min(max(v, np.float32(lo)), np.float32(hi)) for v in products}
            initial = (np.float32(space.low) <= new[i] <= np.float32(space.high) if grid is None
                       else new[i] in np.float32(grid))
            if resample == 1.0:  # always a fresh draw from the initial distribution
                assert initial, (name, i, new[i])
                counts["resampled"] += 1
            elif new[i] in products:
                counts["factor"] += 1
            elif new[i] in clipped:
                counts["bound"] += 1
            else:
                assert initial and resample > 0, (name, i, start, new[i])
                counts["resampled"] += 1
    assert explored.sum() == p // 2
    assert (counts["resampled"] > 0) == (resample > 0)
    assert (counts["factor"] > 0 and counts["bound"] > 0) == (resample < 1)


# ----------------------------------------------------------------------------- a known best lr


@pytest.fixture(scope="module")
def probe_trainer(tiny_config):
    """ActionReward (one-step episodes, reward 1 for the action naming the observation), 40
    updates of 32 episodes, constant learning rate: lr <= 1e-4 does not learn in this budget, 1.0
    breaks down, 3e-3 .. 0.3 reach return 1 (a grid over lr, 4 seeds: 0.50 / 0.50 / 0.89 / 0.99 /
    1.0 / 1.0 / 1.0 / 1.0 / 0.50 for 1e-5, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)."""
    config = tiny_config.replace(total_timesteps=40 * 32, num_steps=8, num_minibatches=2,
                                 update_epochs=2, anneal_lr=False)
    return make_trainer(config, env=ActionReward(), env_params=ProbeParams())


def test_population_learning_rate_moves_to_the_known_good_range_only_with_exploit(
        probe_trainer):
    good = lambda lr: int(np.sum((lr >= 1e-3) & (lr <= 0.5)))  # noqa: E731
    found = {}
    for exploit in (True, False):
        pbt = PBT({"learning_rate": Space(1e-5, 3.0, bounds=(1e-6, 10.0))}, population=8,
                  ready=4, resample_probability=0.0, exploit=exploit)
        population, outcome = run_population(probe_trainer, pbt, seed=1)
        assert outcome.diverged is None
        first, last = (np.asarray(population.rows[i]["hparams"]["learning_rate"])
                       for i in (0, -1))
        found[exploit] = (good(first), good(last), last)
    (start, with_exploit, lr), (same_start, without, _) = found[True], found[False]
    assert start == same_start <= 4  # the same initial population, half of it outside
    assert with_exploit == 8, lr  # every member ends with a learning rate that learns
    assert without <= 5  # explore alone does not get there
    assert abs(np.median(np.log10(lr)) - np.log10(0.05)) < 0.5


# ----------------------------------------------------------------------------- fit, resume, CLI


class _StopAt:
    """A `stop` that is set once the run has checkpointed update `update`."""

    def __init__(self, run_dir, update):
        self.path = checkpoint_path(run_dir, update)

    def is_set(self):
        return (self.path / "meta.json").exists()


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def full_run(tiny_config, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pbt") / "full"
    return purejaxppo.fit(tiny_config, pbt=FIT_PBT, run_dir=run_dir, progress=False), run_dir


def test_fit_records_lineage_and_hparams(full_run):
    run, run_dir = full_run
    rows = read_lineage(run_dir)
    assert rows == run.pbt and [r["update"] for r in rows] == [0, 4, 8, 12, 16]
    for prev, row in zip(rows, rows[1:]):
        assert sum(row["explored"]) == (2 if row["update"] < 16 else 0)
        for i, s in enumerate(row["source"]):
            if not row["explored"][i]:  # hyperparameters carried over from the last row
                assert row["hparams"]["learning_rate"][i] == prev["hparams"]["learning_rate"][s]
    assert np.allclose(np.asarray(run.hparams.learning_rate, np.float64),
                       rows[-1]["hparams"]["learning_rate"])
    assert run.metrics.episode_return.shape == (P, 1, 16)
    steps, values = schedules(rows)["learning_rate"]
    assert values.shape == (P, 5) and steps[-1] == 16 * run.config.batch_size
    meta = read_meta(latest_checkpoint(run_dir))
    assert meta["pbt"]["rows"] == rows and len(meta["pbt"]["key"]) == 2
    assert run.summary()["pbt"] == rows


def test_resume_is_bitwise(full_run, tiny_config, tmp_path):
    run, _ = full_run
    run_dir = tmp_path / "stopped"
    first = purejaxppo.fit(tiny_config, pbt=FIT_PBT, run_dir=run_dir, progress=False,
                           stop=_StopAt(run_dir, 8))
    assert first.stopped == "signal" and first.updates_done == 8
    assert read_lineage(run_dir) == run.pbt[:3]
    with pytest.raises(ConfigError, match="eval_every"):
        purejaxppo.resume(run_dir, progress=False, eval_every=8)
    resumed = purejaxppo.resume(run_dir, progress=False)
    assert resumed.updates_done == 16 and resumed.pbt == run.pbt
    assert read_lineage(run_dir) == run.pbt
    for a, b in zip(_leaves((resumed.params, resumed.metrics, resumed.hparams)),
                    _leaves((run.params, run.metrics, run.hparams))):
        np.testing.assert_array_equal(a, b)


FOUR_DEVICES = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    import purejaxppo
    from purejaxppo import PPOConfig
    from purejaxppo.pbt import PBT
    assert len(jax.devices()) == 4
    config = PPOConfig(env_name="CartPole-v1", total_timesteps=1024, num_envs=4, num_steps=16,
                       hidden_sizes=(8, 8))
    pbt = PBT.from_dict(json.loads(sys.argv[1]))
    run = purejaxppo.fit(config, pbt=pbt, progress=False)
    params = np.concatenate([np.asarray(x).reshape(-1) for x in jax.tree.leaves(run.params)])
    np.save(sys.argv[2] + ".npy", params)
    json.dump(run.pbt, open(sys.argv[2], "w"))
""")


def test_four_devices_equal_one_device(full_run, tmp_path):
    run, _ = full_run
    out = tmp_path / "four.json"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", FOUR_DEVICES, json.dumps(FIT_PBT.to_dict()),
                           str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = json.loads(out.read_text())
    assert len(jax.devices()) == 1
    assert [r["source"] for r in rows] == [r["source"] for r in run.pbt]
    assert [r["hparams"] for r in rows] == [r["hparams"] for r in run.pbt]
    for a, b in zip(rows[1:], run.pbt[1:]):
        np.testing.assert_allclose(a["fitness"], b["fitness"], rtol=1e-6)
    params = np.concatenate([x.reshape(-1) for x in _leaves(run.params)])
    np.testing.assert_allclose(np.load(str(out) + ".npy"), params, rtol=1e-3, atol=1e-4)


def test_cli_sweep_pbt_and_plot(tmp_path, capsys, full_run):
    run, _ = full_run
    run_dir, summary = tmp_path / "cli", tmp_path / "summary.json"
    code = main(["sweep", "--preset", "none", "--env", "CartPole-v1", "--total-timesteps",
                 "1024", "--set", "num_envs=4", "--set", "num_steps=16", "--set",
                 "hidden_sizes=8,8", *CLI_PBT, "--checkpoint-dir", str(run_dir),
                 "--no-progress", "--json", str(summary)])
    assert code == 0
    text = capsys.readouterr().out
    assert "PBT: 4 ready points" in text and "member 5:" in text
    written = json.loads(summary.read_text())
    assert written["num_settings"] == P and written["num_seeds"] == 1
    assert written["pbt"] == run.pbt  # the same seed: the same lineage, through the CLI
    assert main(["plot", str(run_dir)]) == 0
    assert (run_dir / "pbt.png").stat().st_size > 0
    assert main(["sweep", "--resume", str(run_dir), *CLI_PBT]) == 2
    assert "do not give --grid or --pbt" in capsys.readouterr().err
    assert main(["sweep", "--pbt", "kl_coef=0.1:1", "--no-progress"]) == 2
    assert "kl_coef" in capsys.readouterr().err


def test_fitness_is_the_periodic_evaluation_when_it_is_on(tiny_config, tmp_path):
    run = purejaxppo.fit(tiny_config, pbt=FIT_PBT, run_dir=tmp_path, progress=False,
                         eval_every=4, eval_episodes=2)
    evals = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert [e["update"] for e in evals] == [4, 8, 12, 16]
    for row, e in zip(run.pbt[1:], evals):
        assert row["update"] == e["update"]
        np.testing.assert_allclose(row["fitness"], e["eval_return"], rtol=1e-6)
