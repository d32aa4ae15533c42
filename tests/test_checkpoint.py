"""The open train state (init/run), checkpoints, resume, stopping safely, NaN guard, evaluation."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image

from purejaxppo import PPOConfig
from purejaxppo.checkpoint import (CheckpointError, latest_checkpoint, list_checkpoints,
                                   load_checkpoint, load_policy, read_meta, save_checkpoint,
                                   save_policy)
from purejaxppo.cli import main
from purejaxppo.runs import keys_to_data
from purejaxppo.train import make_trainer

SMALL = PPOConfig(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 8, hidden_sizes=(16, 16),
                  normalize_obs=True, normalize_reward=True)
CLI_CONFIG = SMALL.replace(normalize_obs=False, normalize_reward=False)  # what CLI_RUN trains
CLI_RUN = ["--num-seeds", "2", "--total-timesteps", str(4 * 16 * 8), "--set", "num_envs=4",
           "--set", "num_steps=16", "--set", "hidden_sizes=16,16", "--no-progress"]


def _data(tree):
    return jax.tree.map(np.asarray, keys_to_data(tree))


def _assert_bitwise(a, b):
    jax.tree.map(np.testing.assert_array_equal, _data(a), _data(b))


def test_run_in_chunks_is_bitwise_one_run_and_train_is_init_then_run():
    trainer = make_trainer(SMALL)
    keys = jax.random.split(jax.random.key(0), 3)
    init = jax.jit(jax.vmap(trainer.init))
    run = {n: jax.jit(jax.vmap(lambda s, n=n: trainer.run(s, None, n))) for n in (4, 8)}
    whole, whole_metrics = run[8](init(keys))
    part, first = run[4](init(keys))  # one chunk program, twice (as `fit` runs its chunks)
    part, second = run[4](part)
    _assert_bitwise(whole, part)  # every leaf: params, Adam, env states, stats, keys, counter
    np.testing.assert_array_equal(np.concatenate([first.value_loss, second.value_loss], 1),
                                  whole_metrics.value_loss)
    assert np.all(np.asarray(whole.update) == 8)
    # train = run(init): the same computation (one fused program may round differently).
    result = jax.jit(jax.vmap(trainer.train))(keys)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 result.params, jax.vmap(trainer.params)(whole))
    np.testing.assert_array_equal(result.diverged_at, [-1, -1, -1])


def test_learning_rate_annealing_continues_across_chunks(smoke_jit):
    config = PPOConfig(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 4, learning_rate=1e-3)
    trainer = make_trainer(config)
    state = smoke_jit(trainer.init)(jax.random.key(0))
    run_two = smoke_jit(lambda s: trainer.run(s, None, 2))  # one program for both chunks
    state, first = run_two(state)
    _, second = run_two(state)
    np.testing.assert_allclose(np.concatenate([first.learning_rate, second.learning_rate]),
                               [1e-3, 0.75e-3, 0.5e-3, 0.25e-3], rtol=1e-6)


def test_train_reports_divergence_instead_of_hiding_it(smoke_jit):
    config = SMALL.replace(learning_rate=1e30, max_grad_norm=1e9, normalize_reward=False)
    result = smoke_jit(make_trainer(config).train)(jax.random.key(0))
    assert 0 <= int(result.diverged_at) < config.num_updates
    assert not np.isfinite(np.asarray(result.metrics.policy_loss)[int(result.diverged_at)])


def _train(run_dir, *extra):
    return main(["train", *CLI_RUN, "--checkpoint-dir", str(run_dir), "--checkpoint-every", "2",
                 *extra])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "whole"
    assert _train(run_dir, "--keep", "10") == 0
    return run_dir


def test_checkpoints_logs_and_config_are_written(finished_run):
    assert [p.name for p in list_checkpoints(finished_run)] == [
        f"update_{u:09d}" for u in (2, 4, 6, 8)]
    meta = read_meta(latest_checkpoint(finished_run))
    assert meta["update"] == 8 and meta["num_seeds"] == 2 and meta["num_runs"] == 2
    assert meta["config"]["num_envs"] == 4 and "jax" in meta["versions"]
    rows = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["run"], r["update"]) for r in rows] == [(r, u) for u in range(8) for r in range(2)]
    assert json.loads((finished_run / "config.json").read_text())["hidden_sizes"] == [16, 16]
    before = (finished_run / "metrics.jsonl").read_text()
    assert main(["train", "--resume", str(finished_run), "--no-progress"]) == 0  # nothing left
    assert (finished_run / "metrics.jsonl").read_text() == before


def test_keep_keeps_the_newest(tmp_path):
    assert _train(tmp_path / "run", "--keep", "2") == 0
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == [
        "update_000000006", "update_000000008"]


def _halfway_copy(finished_run, target):
    """A run directory as an interrupted run leaves it: checkpoint at update 4, and logs that
    ran one chunk further than the checkpoint (rows to be dropped on resume)."""
    target.mkdir()
    for name in ("config.json", "run.json", "metrics.jsonl"):
        shutil.copy(finished_run / name, target / name)
    (target / "checkpoints").mkdir()
    shutil.copytree(finished_run / "checkpoints" / "update_000000004",
                    target / "checkpoints" / "update_000000004")
    return target


def test_resume_half_plus_half_is_bitwise_the_whole_run(finished_run, tmp_path):
    resumed = _halfway_copy(finished_run, tmp_path / "resumed")
    assert main(["train", "--resume", str(resumed), "--no-progress"]) == 0
    trainer = make_trainer(CLI_CONFIG)
    abstract = jax.eval_shape(lambda k: keys_to_data(trainer.init(k)), jax.random.key(0))
    whole = load_checkpoint(latest_checkpoint(finished_run), abstract, 2)
    again = load_checkpoint(latest_checkpoint(resumed), abstract, 2)
    jax.tree.map(np.testing.assert_array_equal, whole, again)
    assert (resumed / "metrics.jsonl").read_text() == (finished_run / "metrics.jsonl").read_text()


def test_the_train_state_has_one_layout_on_every_backend():
    """fast_paths "on" (the CPU's) and "off" (GPU/TPU) hold the same leaves: checkpoints move."""
    shapes = [jax.eval_shape(make_trainer(CLI_CONFIG.replace(fast_paths=f)).init,
                             jax.random.key(0)) for f in ("on", "off")]
    assert jax.tree.structure(shapes[0]) == jax.tree.structure(shapes[1])
    assert jax.tree.leaves(shapes[0]) == jax.tree.leaves(shapes[1])


def _ravel_parameters(state):
    """`state` (host, leading run axis) as purejaxppo saved it on CPU before 2026-12-02: the
    parameters and every same-shaped tree in the Adam state raveled into one vector per run."""
    params = state.learner.params
    like_params = lambda x: jax.tree.structure(x) == jax.tree.structure(params)  # noqa: E731
    ravel = lambda t: np.concatenate([np.asarray(x).reshape(len(x), -1)  # noqa: E731
                                      for x in jax.tree.leaves(t)], 1)
    opt_state = jax.tree.map(lambda t: ravel(t) if like_params(t) else t,
                             state.learner.opt_state, is_leaf=like_params)
    return state._replace(learner=state.learner._replace(params=ravel(params),
                                                         opt_state=opt_state))


def test_a_checkpoint_with_raveled_parameters_loads_bitwise(finished_run, tmp_path):
    """Checkpoints from before 2026-12-02 hold the CPU's raveled ("flat") parameters and Adam
    moments; they load into the pytree layout as the very state a pytree checkpoint holds (which
    resumes bitwise: test_resume_half_plus_half_is_bitwise_the_whole_run)."""
    trainer = make_trainer(CLI_CONFIG)
    abstract = jax.eval_shape(lambda k: keys_to_data(trainer.init(k)), jax.random.key(0))
    resumed = _halfway_copy(finished_run, tmp_path / "old")
    path = latest_checkpoint(resumed)
    state, meta = load_checkpoint(path, abstract, 2), read_meta(path)
    old = _ravel_parameters(state)
    assert old.learner.params.shape == (2, sum(np.size(x[0]) for x in jax.tree.leaves(
        state.learner.params)))
    shutil.rmtree(path)
    save_checkpoint(resumed, old, {k: v for k, v in meta.items()
                                   if k not in ("leaves", "versions")})
    assert ".learner.params" in [leaf["name"] for leaf in read_meta(path)["leaves"]]
    _assert_bitwise(load_checkpoint(path, abstract, 2), state)
    wider = make_trainer(CLI_CONFIG.replace(hidden_sizes=(32, 32)))  # sizes do not add up
    wide = jax.eval_shape(lambda k: keys_to_data(wider.init(k)), jax.random.key(0))
    with pytest.raises(CheckpointError, match=r"raveled vector of \d+ numbers per run .* has "):
        load_checkpoint(path, wide, 2)


def test_a_bad_resume_says_what_differs_and_overwrites_nothing(finished_run, tmp_path, capsys):
    resumed = _halfway_copy(finished_run, tmp_path / "resumed")
    before = {p: p.stat().st_mtime_ns for p in resumed.rglob("*")}
    assert main(["train", "--resume", str(resumed), "--set", "num_envs=8", "--no-progress"]) == 2
    assert "num_envs: saved 4, given 8" in capsys.readouterr().err
    meta = resumed / "checkpoints" / "update_000000004" / "meta.json"
    meta.write_text(meta.read_text()[:50])  # truncated
    assert main(["train", "--resume", str(resumed), "--no-progress"]) == 2
    assert "meta.json: corrupt or truncated" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in resumed.rglob("*") if p != meta} == {
        p: t for p, t in before.items() if p != meta}
    assert main(["train", "--resume", str(tmp_path / "nothing"), "--no-progress"]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_corrupt_array_data_and_a_different_config_are_named(finished_run, tmp_path):
    trainer = make_trainer(CLI_CONFIG)
    abstract = jax.eval_shape(lambda k: keys_to_data(trainer.init(k)), jax.random.key(0))
    broken = tmp_path / "broken"
    shutil.copytree(latest_checkpoint(finished_run), broken)
    for file in (broken / "state").rglob("*"):
        if file.is_file() and file.stat().st_size > 1000:  # the array data
            file.write_bytes(file.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="state: cannot read the saved arrays"):
        load_checkpoint(broken, abstract, 2)
    wider = make_trainer(CLI_CONFIG.replace(hidden_sizes=(32, 32)))
    wide = jax.eval_shape(lambda k: keys_to_data(wider.init(k)), jax.random.key(0))
    with pytest.raises(CheckpointError, match=r"leaf \.learner\.params.* expected"):
        load_checkpoint(latest_checkpoint(finished_run), wide, 2)


def test_new_run_refuses_a_directory_with_checkpoints(finished_run, capsys):
    assert _train(finished_run) == 2
    assert "already holds checkpoints" in capsys.readouterr().err


def test_nan_guard_stops_reports_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    code = main(["train", *CLI_RUN, "--set", "learning_rate=1e30", "--set", "max_grad_norm=1e9",
                 "--checkpoint-dir", str(tmp_path / "nan"), "--checkpoint-every", "1"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "non-finite loss, gradient norm or parameters at update" in err and "run(s) [" in err
    for path in list_checkpoints(tmp_path / "nan"):  # only finite states were saved
        meta = read_meta(path)
        assert meta["update"] >= 1
    if list_checkpoints(tmp_path / "nan"):
        assert "last good checkpoint" in err


def test_save_and_load_policy_round_trip(tmp_path):
    trainer = make_trainer(SMALL)
    state = jax.jit(trainer.init)(jax.random.key(0))
    save_policy(tmp_path / "p.msgpack", SMALL, trainer.params(state), state.obs_stats)
    loaded = load_policy(tmp_path / "p.msgpack")
    assert loaded.config == SMALL
    jax.tree.map(np.testing.assert_array_equal, loaded.params, trainer.params(state))
    np.testing.assert_array_equal(loaded.obs_stats.var, state.obs_stats.var)
    (tmp_path / "bad").write_bytes(b"not a policy")
    with pytest.raises(CheckpointError, match="not a purejaxppo policy file"):
        load_policy(tmp_path / "bad")


def test_eval_prints_returns_and_writes_a_gif_with_one_frame_per_step(finished_run, tmp_path,
                                                                       capsys):
    gif, out = tmp_path / "episode.gif", tmp_path / "eval.json"
    assert main(["eval", str(finished_run), "--episodes", "5", "--deterministic",
                 "--gif", str(gif), "--json", str(out)]) == 0
    assert "run 0:" in capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert len(summary["return_mean_per_run"]) == 2 and summary["gif_frames"] >= 8
    with Image.open(gif) as image:
        assert image.n_frames == summary["gif_frames"]  # CartPole: return == episode length
        assert 64 <= image.size[0] <= 1024 and 64 <= image.size[1] <= 1024
    assert main(["plot", str(finished_run)]) == 0
    with Image.open(finished_run / "learning_curve.png") as image:
        assert image.size[0] > 200


SIGINT_SCRIPT = """
import sys
from purejaxppo.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigint_finishes_the_chunk_saves_and_exits_130_then_resumes(tmp_path):
    """Ctrl-C during training: exit 130 within about one chunk, a checkpoint to resume from."""
    run_dir = tmp_path / "interrupted"
    args = ["train", "--total-timesteps", str(4 * 16 * 4000), "--set", "num_envs=4", "--set",
            "num_steps=16", "--no-progress", "--checkpoint-dir", str(run_dir),
            "--checkpoint-every", "50"]
    proc = subprocess.Popen([sys.executable, "-c", SIGINT_SCRIPT, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    deadline = time.time() + 240
    while not list_checkpoints(run_dir) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert list_checkpoints(run_dir), proc.communicate()[1][-2000:]
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    latency = time.time() - sent
    assert proc.returncode == 130, err[-2000:]
    assert "stopped by signal" in err and f"--resume {run_dir}" in err
    assert latency < 60  # one chunk of 50 tiny updates, plus saving (seconds)
    stopped_at = read_meta(latest_checkpoint(run_dir))["update"]
    assert 50 <= stopped_at < 4000 and stopped_at % 50 == 0
    rows = pathlib.Path(run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(rows) >= stopped_at  # every update up to the checkpoint is logged


def test_periodic_evaluation_and_tensorboard_logs(tmp_path):
    pytest.importorskip("tensorboardX")
    run_dir = tmp_path / "evaluated"
    assert _train(run_dir, "--eval-every", "4", "--eval-episodes", "3", "--tensorboard") == 0
    rows = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [4, 8] and all(len(r["eval_return"]) == 2 for r in rows)
    assert all(v > 0 for r in rows for v in r["eval_return"])  # CartPole returns are >= 1
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert main(["train", *CLI_RUN, "--eval-every", "0"]) == 2


def test_sweep_checkpoints_every_setting_and_resumes_bitwise(tmp_path, capsys):
    sweep = ["sweep", "--grid", "learning_rate=1e-3,3e-3", *CLI_RUN, "--checkpoint-every", "4"]
    whole, half = tmp_path / "whole", tmp_path / "half"
    assert main([*sweep, "--checkpoint-dir", str(whole), "--keep", "5"]) == 0
    meta = read_meta(latest_checkpoint(whole))
    assert meta["num_runs"] == 4 and [g["learning_rate"] for g in meta["grid"]] == pytest.approx(
        [1e-3, 3e-3])
    half.mkdir()
    for name in ("config.json", "run.json", "metrics.jsonl"):
        shutil.copy(whole / name, half / name)
    shutil.copytree(whole / "checkpoints" / "update_000000004",
                    half / "checkpoints" / "update_000000004")
    assert main(["sweep", "--resume", str(half), "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "learning_rate" in table
    trainer = make_trainer(CLI_CONFIG)
    abstract = jax.eval_shape(lambda k: keys_to_data(trainer.init(k)), jax.random.key(0))
    jax.tree.map(np.testing.assert_array_equal,
                 load_checkpoint(latest_checkpoint(whole), abstract, 4),
                 load_checkpoint(latest_checkpoint(half), abstract, 4))
