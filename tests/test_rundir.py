"""Run directories (`purejaxppo.rundir`): one writer, nothing of a user's replaced, checked
output paths, leftovers of killed writes, the size check; checkpoints that fall back past a
damaged newest one and refuse malformed metadata."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from purejaxppo import PPOConfig, presets
from purejaxppo.checkpoint import (CheckpointError, latest_checkpoint, latest_intact_checkpoint,
                                   read_meta, save_checkpoint)
from purejaxppo.config import ConfigError
from purejaxppo.rundir import (LOCK, RunDirError, RunLock, activations_per_sample, break_lock,
                               check_fits, check_output_path, clean_stale_temp,
                               estimate_run_bytes, prepare_new_run_dir, tree_bytes)
from purejaxppo.train import make_trainer


ROOT = str(pathlib.Path(__file__).resolve().parents[1])  # this tree's purejaxppo


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------------- the lock


def test_a_second_writer_is_refused_naming_the_owner(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RunDirError, match="no such run directory"):
        RunLock.acquire(run)
    with RunLock.acquire(run, create=True) as lock:
        owner = json.loads((run / LOCK).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(RunDirError, match=f"locked by process {os.getpid()} on "
                           f"{socket.gethostname()}") as err:
            RunLock.acquire(run)
        assert "break_lock" in str(err.value) and "stale" not in str(err.value)
        assert lock.held
    assert not (run / LOCK).exists()  # released on exit
    RunLock.acquire(run).release()  # free again


def test_a_second_writer_in_another_process_is_refused(tmp_path):
    code = ("import sys; from purejaxppo.rundir import RunLock\n"
            "try:\n    RunLock.acquire(sys.argv[1])\nexcept Exception as e:\n"
            "    print(type(e).__name__, e); sys.exit(2)")
    with RunLock.acquire(tmp_path):
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"RunDirError {tmp_path}: the run directory is locked by process {os.getpid()}" \
        in out.stdout


def test_the_lock_is_released_when_the_body_raises(tmp_path):
    with pytest.raises(KeyError):
        with RunLock.acquire(tmp_path):
            raise KeyError("boom")
    assert not (tmp_path / LOCK).exists()


def test_a_stale_lock_is_called_stale_and_can_be_broken(tmp_path):
    held = {"pid": dead_pid(), "host": socket.gethostname(), "started": "2026-12-01T00:00:00"}
    (tmp_path / LOCK).write_text(json.dumps(held))
    with pytest.raises(RunDirError, match=f"Process {held['pid']} is not running on this host: "
                       "the lock is stale"):
        RunLock.acquire(tmp_path)
    assert break_lock(tmp_path) == held
    assert break_lock(tmp_path) is None
    RunLock.acquire(tmp_path).release()


def test_release_leaves_a_lock_another_writer_took_after_a_break(tmp_path):
    first = RunLock.acquire(tmp_path)
    break_lock(tmp_path)
    second = RunLock.acquire(tmp_path)
    first.release()  # not its lock any more
    assert json.loads((tmp_path / LOCK).read_text())["token"] == second.owner["token"]
    second.release()
    assert not (tmp_path / LOCK).exists()


def test_an_unreadable_lock_still_blocks_and_says_so(tmp_path):
    (tmp_path / LOCK).write_text("")
    with pytest.raises(RunDirError, match="unknown process"):
        RunLock.acquire(tmp_path)


# ------------------------------------------------------------------------------ new run dirs


def test_a_new_run_dir_is_created_and_an_empty_one_accepted(tmp_path):
    assert prepare_new_run_dir(tmp_path / "a" / "b").is_dir()
    (tmp_path / "empty").mkdir()
    prepare_new_run_dir(tmp_path / "empty")
    assert os.listdir(tmp_path / "empty") == []  # the write test left nothing


def test_a_file_is_not_a_run_dir(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirError, match="exists and is not a directory"):
        prepare_new_run_dir(tmp_path / "f")
    for create in (False, True):
        with pytest.raises(RunDirError, match="is not a directory"):
            RunLock.acquire(tmp_path / "f", create=create)


@pytest.mark.parametrize("overwrite", [False, True])
def test_someone_elses_files_are_never_replaced(tmp_path, overwrite):
    (tmp_path / "metrics.jsonl").write_text("mine\n")
    (tmp_path / "notes.txt").write_text("my notes\n")
    with pytest.raises(RunDirError, match="not a purejaxppo run directory.*notes.txt"):
        prepare_new_run_dir(tmp_path, overwrite=overwrite)
    assert (tmp_path / "notes.txt").read_text() == "my notes\n"
    assert (tmp_path / "metrics.jsonl").read_text() == "mine\n"


def _fake_run(run_dir):
    """A run directory as purejaxppo leaves it (files only; the checkpoint is a stub)."""
    for name in ("config.json", "run.json", "metrics.jsonl", "eval.jsonl",
                 "events.out.tfevents.1.host", "learning_curve.png"):
        (run_dir / name).write_text("{}")
    (run_dir / "checkpoints" / "update_000000002").mkdir(parents=True)
    (run_dir / "checkpoints" / "update_000000002" / "meta.json").write_text("{}")


def test_an_earlier_run_needs_overwrite_and_then_is_removed(tmp_path):
    _fake_run(tmp_path)
    with pytest.raises(RunDirError, match="checkpoints of another run; continue it with resume"):
        prepare_new_run_dir(tmp_path)
    assert (tmp_path / "config.json").exists()
    prepare_new_run_dir(tmp_path, overwrite=True)
    assert os.listdir(tmp_path) == []


def test_an_earlier_run_without_checkpoints_needs_overwrite(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RunDirError, match=r"files of an earlier run \(config.json\).*overwrite"):
        prepare_new_run_dir(tmp_path)


def test_overwrite_waits_for_no_other_writer(tmp_path):
    _fake_run(tmp_path)
    (tmp_path / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(RunDirError, match="locked by process 1 on elsewhere"):
        prepare_new_run_dir(tmp_path, overwrite=True)
    assert (tmp_path / "config.json").exists()


def test_a_run_dir_holding_its_own_lock_is_prepared(tmp_path):
    with RunLock.acquire(tmp_path / "run", create=True):
        prepare_new_run_dir(tmp_path / "run")
        assert os.listdir(tmp_path / "run") == [LOCK]


def test_an_unwritable_place_is_refused_before_any_work():
    with pytest.raises(RunDirError, match="/proc/foo: cannot create the run directory"):
        prepare_new_run_dir("/proc/foo")
    with pytest.raises(RunDirError, match="/proc/foo"):
        RunLock.acquire("/proc/foo", create=True)


# ----------------------------------------------------------------------------- output paths


def test_output_paths_are_checked_naming_the_option(tmp_path):
    with pytest.raises(ConfigError, match="--gif /proc/x.gif: cannot be written"):
        check_output_path("--gif", "/proc/x.gif")
    with pytest.raises(ConfigError, match="--json .*the directory .*nowhere does not exist"):
        check_output_path("--json", tmp_path / "nowhere" / "x.json")
    with pytest.raises(ConfigError, match="--json .*is a directory"):
        check_output_path("--json", tmp_path)
    with pytest.raises(ConfigError, match="--out: expected a file path"):
        check_output_path("--out", "")
    check_output_path("--json", None)
    check_output_path("--json", tmp_path / "new.json")
    assert not (tmp_path / "new.json").exists()  # the probe leaves nothing
    (tmp_path / "old.json").write_text("keep")
    check_output_path("--json", tmp_path / "old.json")
    assert (tmp_path / "old.json").read_text() == "keep"


# ------------------------------------------------------------------- leftovers of killed writes


def test_leftover_temporary_checkpoint_files_are_cleaned(tmp_path):
    ckpt = tmp_path / "checkpoints"
    killed = ckpt / "update_000000004" / "state.orbax-checkpoint-tmp-1796329065"
    killed.mkdir(parents=True)
    (killed / "_METADATA").write_text("{")
    done = ckpt / "update_000000002"
    (done / "state").mkdir(parents=True)
    (done / "meta.json").write_text("{}")
    (done / "meta.json.tmp").write_text("{")
    (done / "state.orbax-checkpoint-tmp-17").mkdir()
    (tmp_path / "metrics.jsonl.tmp").write_text("{")
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(RunDirError, match="needs the run directory's lock"):
        clean_stale_temp(tmp_path)
    with RunLock.acquire(tmp_path):
        removed = clean_stale_temp(tmp_path)
    assert sorted(removed) == sorted(str(p) for p in (
        tmp_path / "metrics.jsonl.tmp", ckpt / "update_000000004", done / "meta.json.tmp",
        done / "state.orbax-checkpoint-tmp-17"))
    assert sorted(os.listdir(done)) == ["meta.json", "state"]
    assert sorted(os.listdir(tmp_path)) == ["checkpoints", "metrics.jsonl"]


# ------------------------------------------------------------------------------ the size check


HUGE = {"num_envs": dict(num_envs=10_000_000, num_steps=1, num_minibatches=1,
                         total_timesteps=10_000_000),
        "hidden_sizes": dict(hidden_sizes=(1_000_000, 1_000_000))}


@pytest.mark.parametrize("name", sorted(HUGE))
def test_a_run_that_cannot_fit_is_refused_at_once_with_the_numbers(name):
    start = time.perf_counter()
    trainer = make_trainer(PPOConfig(**HUGE[name]))
    with pytest.raises(ConfigError, match=r"needs about [\d.,]+ [GT]B per device .* more than "
                       r"the 8.00 GB available") as err:
        check_fits(trainer, num_runs=1, num_devices=1, available=8 * 10**9)
    assert time.perf_counter() - start < 5
    assert name in str(err.value)  # the field that drives the size


def test_a_default_run_fits_and_the_estimate_adds_up():
    config = PPOConfig(num_envs=8, num_steps=32, hidden_sizes=(32, 16))
    trainer = make_trainer(config)
    estimate = check_fits(trainer, num_runs=5, num_devices=2, available=8 * 10**9)
    state = jax.jit(trainer.init)(jax.random.key(0))  # the real state, as an independent count
    real = sum(np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key) else x).nbytes for x in jax.tree.leaves(state))
    assert estimate["train_state"] == real == tree_bytes(state)
    assert estimate["runs_per_device"] == 3
    assert estimate["per_device"] == 3 * estimate["per_run"] == 3 * (
        estimate["train_state"] + estimate["rollout"] + estimate["update"])
    # Two towers of Dense 32 -> Dense 16, a 2-logit policy head and a value head, per sample.
    assert activations_per_sample(trainer, trainer.params(state)) == 2 * (32 + 16) + 2 + 1
    bigger = estimate_run_bytes(make_trainer(config.replace(num_steps=64)), 5, 2)
    assert bigger["rollout"] == 2 * estimate["rollout"]


# -------------------------------------------------------------------- checkpoint metadata


GOOD_META = {"update": 4, "num_runs": 2, "num_seeds": 2, "seed": 0, "grid": [{}]}


@pytest.mark.parametrize("key, value, words", [
    ("num_runs", "abc", "'num_runs' must be an integer, found 'abc'"),
    ("num_runs", 0, "'num_runs' must be >= 1, found 0"),
    ("update", -1, "'update' must be >= 0"),
    ("update", 2.5, "'update' must be an integer, found 2.5"),
    ("seed", True, "'seed' must be an integer, found True"),
    ("num_seeds", None, "'num_seeds' must be an integer, found None"),
    ("num_seeds", 3, "'num_runs' 2 is not the 1 settings of 'grid' x 3 seeds"),
])
def test_malformed_meta_is_a_checkpoint_error_naming_file_and_key(tmp_path, key, value, words):
    (tmp_path / "meta.json").write_text(json.dumps({**GOOD_META, key: value}))
    with pytest.raises(CheckpointError, match=str(tmp_path / "meta.json")) as err:
        read_meta(tmp_path)
    assert words in str(err.value)
    (tmp_path / "meta.json").write_text(json.dumps({k: v for k, v in GOOD_META.items()
                                                    if k != "seed"}))
    with pytest.raises(CheckpointError, match="'seed' must be an integer, found missing"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="expected a JSON object"):
        read_meta(tmp_path)


def test_resume_falls_back_past_a_damaged_newest_checkpoint(tmp_path):
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.zeros(2, np.int32)}
    paths = [save_checkpoint(tmp_path, state, {**GOOD_META, "update": u}, keep=5)
             for u in (2, 4, 6)]
    assert latest_intact_checkpoint(tmp_path) == (paths[2], [])
    meta = paths[2] / "meta.json"
    meta.write_text(meta.read_text()[:40])  # truncated by a crash
    path, skipped = latest_intact_checkpoint(tmp_path)
    assert path == paths[1] and latest_checkpoint(tmp_path) == paths[2]
    assert [p for p, _ in skipped] == [paths[2]] and "corrupt or truncated" in skipped[0][1]
    (paths[1] / "state" / "_METADATA").unlink()  # arrays never written
    path, skipped = latest_intact_checkpoint(tmp_path)
    assert path == paths[0] and [p for p, _ in skipped] == [paths[2], paths[1]]
    assert "the arrays were not written" in skipped[1][1]
    (paths[0] / "meta.json").write_text(json.dumps({**read_meta(paths[0]), "leaves": []}))
    with pytest.raises(CheckpointError, match="no intact checkpoint.*holds 2 arrays, meta.json "
                       "lists 0 leaves"):
        latest_intact_checkpoint(tmp_path)


# ---------------------------------------------------------------------- presets and conv stacks


def test_presets_get_names_an_unknown_field_and_preset():
    with pytest.raises(ConfigError, match="PPOConfig.bogus: no such field"):
        presets.get("cartpole", bogus=1)
    with pytest.raises(ConfigError, match="PPOConfig.num_env: no such field.*Did you mean "
                       "num_envs"):
        presets.get("cartpole", num_env=8)
    with pytest.raises(ConfigError, match="no such preset. Presets: acrobot"):
        presets.get(None)
