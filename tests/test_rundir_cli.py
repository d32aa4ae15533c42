"""Issue 20's hostile cases through the run API and the CLI (each failed on the code before it),
and the run API from Python: fit / resume / evaluate_run, also from a worker thread."""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

import purejaxppo as pjp
from purejaxppo import PPOConfig
from purejaxppo.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, read_meta
from purejaxppo.cli import main
from purejaxppo.config import ConfigError
from purejaxppo.fit import chunk_size, divisors
from purejaxppo.progress import ProgressReporter
from purejaxppo.runs import ChunkedRuns, keys_to_data
from purejaxppo.train import make_trainer

CONFIG = PPOConfig(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 8, hidden_sizes=(16, 16))
RUN = ["--num-seeds", "2", "--total-timesteps", str(4 * 16 * 8), "--set", "num_envs=4",
       "--set", "num_steps=16", "--set", "hidden_sizes=16,16", "--no-progress"]


@pytest.fixture
def no_compile(monkeypatch):
    """Fail the test if the run gets as far as compiling."""
    def compile(self, num_updates):
        raise AssertionError("compiled before the error")

    monkeypatch.setattr(ChunkedRuns, "compile", compile)


@pytest.fixture(scope="module")
def r1(tmp_path_factory):
    """A finished run: 2 seeds x 8 updates, a checkpoint every 2 updates (all kept)."""
    run_dir = tmp_path_factory.mktemp("runs") / "r1"
    assert main(["train", *RUN, "--checkpoint-dir", str(run_dir), "--checkpoint-every", "2",
                 "--keep", "10", "--json", str(run_dir.parent / "r1.json")]) == 0
    return run_dir


def _copy(r1, target):
    shutil.copytree(r1, target)
    return target


def _state(run_dir):
    trainer = make_trainer(CONFIG)
    abstract = jax.eval_shape(lambda k: keys_to_data(trainer.init(k)), jax.random.key(0))
    return load_checkpoint(latest_checkpoint(run_dir), abstract, 2)


# ---------------------------------------------------------------------------- one compiled program


def test_chunk_sizes_divide_what_is_left_so_one_program_runs_every_chunk():
    assert divisors(976) == [1, 2, 4, 8, 16, 61, 122, 244, 488, 976]
    assert chunk_size(976) == 61  # CartPole defaults: 16 chunks of 61, ~1/20 of the run
    assert chunk_size(4000, 50) == 50 and chunk_size(8, 2) == 2
    assert chunk_size(30, 7) == 6  # never further apart than asked, the largest divisor
    assert chunk_size(8, 50) == 8  # fewer updates left than asked: one chunk
    assert chunk_size(97, 10) == 10  # prime: no divisor in [5, 10], a shorter last chunk
    for remaining in range(1, 300):
        for every in (None, 1, 3, 10, 64):
            c = chunk_size(remaining, every)
            assert c >= 1 and (every is None or c <= every)


def test_the_cli_compiles_one_program(monkeypatch, tmp_path):
    compiled = []
    original = ChunkedRuns.compile
    monkeypatch.setattr(ChunkedRuns, "compile",
                        lambda self, k: (compiled.append(k), original(self, k))[1])
    assert main(["train", *RUN, "--checkpoint-every", "3", "--checkpoint-dir",
                 str(tmp_path / "run")]) == 0
    assert compiled == [2]  # 8 updates: chunks of 2 (the largest divisor <= 3 and >= 1.5)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == [  # --keep 3
        "update_000000004", "update_000000006", "update_000000008"]
    assert read_meta(latest_checkpoint(tmp_path / "run"))["checkpoint_every"] == 3  # case 8


# ---------------------------------------------------------------------------- 1. two writers


def test_1_a_second_writer_is_refused_naming_the_lock_owner(r1, tmp_path, capsys, no_compile):
    run_dir = tmp_path / "dup"
    run_dir.mkdir()
    owner = {"pid": os.getppid(), "host": socket.gethostname(), "started": "now", "token": "x"}
    (run_dir / ".lock").write_text(json.dumps(owner))
    assert main(["train", *RUN, "--checkpoint-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"locked by process {os.getppid()}" in err and "break_lock" in err
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing written
    copy = _copy(r1, tmp_path / "r1")
    (copy / ".lock").write_text(json.dumps(owner))
    before = (copy / "metrics.jsonl").read_text()
    assert main(["train", "--resume", str(copy), "--no-progress"]) == 2
    assert "locked by" in capsys.readouterr().err
    assert (copy / "metrics.jsonl").read_text() == before


def test_1_the_lock_is_held_during_the_run_and_released_after(tmp_path):
    seen = []

    def progress(update, metrics):
        seen.append((tmp_path / "run" / ".lock").exists())

    run = pjp.fit(CONFIG, run_dir=tmp_path / "run", checkpoint_every=4, progress=progress)
    assert run.updates_done == 8 and seen and all(seen)
    assert not (tmp_path / "run" / ".lock").exists()


# ---------------------------------------------------------------------------- 2. foreign files


def test_2_a_new_run_refuses_a_directory_with_other_files(r1, tmp_path, capsys, no_compile):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("my own config")
    (mine / "notes.txt").write_text("keep me")
    assert main(["train", *RUN, "--checkpoint-dir", str(mine)]) == 2
    assert "not empty and not a purejaxppo run directory" in capsys.readouterr().err
    assert (mine / "config.json").read_text() == "my own config"
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "metrics.jsonl").write_text('{"run": 0, "update": 0}\n')
    assert main(["train", *RUN, "--checkpoint-dir", str(theirs)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (theirs / "metrics.jsonl").read_text() == '{"run": 0, "update": 0}\n'
    assert main(["train", *RUN, "--checkpoint-dir", str(r1)]) == 2
    assert "already holds checkpoints" in capsys.readouterr().err


# ---------------------------------------------------------------------------- 3. Ctrl-C, no run dir

SCRIPT = "import sys\nfrom purejaxppo.cli import main\nsys.exit(main(sys.argv[1:]))\n"
LONG = ["train", "--total-timesteps", str(4 * 16 * 4000), "--set", "num_envs=4", "--set",
        "num_steps=16", "--set", "hidden_sizes=16,16"]


def _start(args, tmp_path):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"})


def _wait_for(path, proc, seconds=300):
    deadline = time.time() + seconds
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert path.exists(), proc.communicate()[1][-2000:]


def test_3_ctrl_c_without_a_run_dir_prints_the_summary_and_writes_json(tmp_path):
    flag, out = tmp_path / "started", tmp_path / "out.json"
    # --eval-every prints; the first chunk's end is when the test sends the signal.
    proc = _start([*LONG, "--no-progress", "--checkpoint-every", "50", "--json", str(out),
                   "--eval-every", "50", "--eval-episodes", "1"], tmp_path)
    deadline = time.time() + 300
    line = ""
    while "eval at update" not in line and time.time() < deadline:
        line = proc.stdout.readline()
        assert line or proc.poll() is None
    proc.send_signal(signal.SIGINT)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "stopped early after" in stdout and "final return" in stdout
    assert "stopped by signal after" in err and "no checkpoint" in err
    summary = json.loads(out.read_text())
    assert summary["stopped_early"] == "signal" and 50 <= summary["updates_done"] < 4000
    assert summary["updates_done"] % 50 == 0


def test_3_the_progress_bar_never_shows_more_than_was_done():
    from rich.console import Console

    text = io.StringIO()
    reporter = ProgressReporter(2, 10, 8, every=1, console=Console(file=text, width=200))
    with reporter:
        reporter.set_done(0, 4)
        for _ in range(20):  # more reports than the chunk holds
            reporter(0, type("M", (), {"episode_return": np.ones(2)})())
        assert reporter.steps_done == 4 * 2 * 8  # capped at the running chunk's end
        reporter.set_done(3, 7)  # stopped after 3 updates: the host knows
        assert reporter.steps_done == 3 * 2 * 8
    assert "48/160" in text.getvalue() and "160/160" not in text.getvalue()


STOP_SCRIPT = """
import os, pathlib, sys
import purejaxppo as pjp
flag = pathlib.Path(sys.argv[1])
config = pjp.PPOConfig(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 4000,
                       hidden_sizes=(16, 16))
try:
    pjp.fit(config, run_dir=sys.argv[2], checkpoint_every=4000,
            progress=lambda update, metrics: flag.touch())
except KeyboardInterrupt:
    print("stopped at once", file=sys.stderr, flush=True)
    os._exit(130)  # the chunk still runs in its thread: do not wait for it
"""


def test_8_a_second_ctrl_c_stops_at_once(tmp_path):
    run_dir, flag = tmp_path / "run", tmp_path / "running"
    # One chunk of 4000 tiny updates takes far longer than the test waits.
    proc = subprocess.Popen([sys.executable, "-c", STOP_SCRIPT, str(flag), str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    _wait_for(flag, proc)  # the chunk is running
    proc.send_signal(signal.SIGINT)
    time.sleep(1)
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.time() - sent < 20, err[-2000:]
    assert proc.returncode == 130 and "stopping after this chunk" in err, err[-2000:]
    assert "stopped at once" in err
    assert not (run_dir / ".lock").exists()  # released on the way out
    assert not list_checkpoints(run_dir)  # the chunk never finished


# ---------------------------------------------------------------------------- 4. the metrics log


@pytest.mark.parametrize("damage, message", [
    ("truncate", "the log is truncated"), ("delete", "metrics log (metrics.jsonl or metrics.csv) "
                                          "is missing"),
    ("garbage", "metrics.jsonl:3: not valid JSON"), ("edit", "was edited or replaced")])
def test_4_a_damaged_log_is_an_error_naming_the_file(r1, tmp_path, capsys, damage, message,
                                                     no_compile):
    copy = _copy(r1, tmp_path / "r1")
    log = copy / "metrics.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    if damage == "truncate":
        log.write_text("".join(lines[:5]))
    elif damage == "delete":
        log.unlink()
    elif damage == "garbage":
        log.write_text("".join(lines[:2]) + "garbage\n" + "".join(lines[3:]))
    else:
        row = json.loads(lines[0])
        row["episode_return"] = 1e6
        log.write_text(json.dumps(row) + "\n" + "".join(lines[1:]))
    assert main(["train", "--resume", str(copy), "--no-progress"]) == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------------------- 5. seeds on resume


def test_5_resume_refuses_other_seeds_naming_the_option(r1, capsys, no_compile):
    assert main(["train", "--resume", str(r1), "--num-seeds", "4", "--no-progress"]) == 2
    assert "--num-seeds" in capsys.readouterr().err
    assert main(["train", "--resume", str(r1), "--seed", "5", "--no-progress"]) == 2
    assert "--seed" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="num_seeds"):
        pjp.resume(r1, num_seeds=3)
    with pytest.raises(ConfigError, match="num_envs: saved 4, given 8"):
        pjp.resume(r1, config={"num_envs": 8})


# ---------------------------------------------------------------------------- 6. sizes


def test_6_a_run_that_cannot_fit_says_so_before_compiling(tmp_path, capsys, no_compile):
    assert main(["train", "--set", "hidden_sizes=1000000,1000000", "--no-progress",
                 "--checkpoint-dir", str(tmp_path / "big")]) == 2
    err = capsys.readouterr().err
    assert "per device" in err and "GB" in err
    assert not (tmp_path / "big").exists()  # nothing written either


# ---------------------------------------------------------------------------- 7. errors first


def test_7_paths_and_options_are_checked_before_the_work(r1, tmp_path, capsys, no_compile):
    assert main(["train", *RUN, "--checkpoint-dir", "/proc/foo"]) == 2
    assert "/proc/foo" in capsys.readouterr().err
    assert main(["train", "--env", "Breakout-MinAtar", "--set", "conv_channels=16,16,16,16,16,16",
                 "--no-progress"]) == 2
    assert "conv" in capsys.readouterr().err


def test_7_eval_checks_its_outputs_before_evaluating(r1, tmp_path, capsys, monkeypatch):
    import purejaxppo.fit

    monkeypatch.setattr(purejaxppo.fit, "make_evaluator",
                        lambda *a, **k: pytest.fail("evaluated before the error"))
    assert main(["eval", str(r1), "--gif", "/proc/x.gif"]) == 2
    assert "--gif /proc/x.gif" in capsys.readouterr().err
    assert main(["eval", str(r1), "--gif", str(tmp_path / "x.gif"), "--fps", "0"]) == 2
    assert "--fps" in capsys.readouterr().err
    bad = _copy(r1, tmp_path / "bad")
    for path in list_checkpoints(bad):
        meta = json.loads((path / "meta.json").read_text())
        meta["num_runs"] = "two"
        (path / "meta.json").write_text(json.dumps(meta))
    assert main(["eval", str(bad)]) == 2
    assert "num_runs" in capsys.readouterr().err


# ------------------------------------------------------------ 8. leftovers, fallback, saved options


def test_8_leftovers_are_cleaned_and_resume_falls_back_to_an_intact_checkpoint(r1, tmp_path,
                                                                              capsys):
    copy = _copy(r1, tmp_path / "r1")
    newest = list_checkpoints(copy)[-1]
    shutil.rmtree(newest)  # an interrupted run: checkpoints up to 6, the log past them
    stale = copy / "checkpoints" / "update_000000008.orbax-checkpoint-tmp-1234"
    stale.mkdir()
    (stale / "junk").write_text("x")
    truncated = list_checkpoints(copy)[-1] / "meta.json"  # update 6: cut off
    truncated.write_text(truncated.read_text()[:40])
    assert main(["train", "--resume", str(copy), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "removed" in err and "orbax-checkpoint-tmp" in err
    assert "skipped checkpoint" in err and "update_000000004" in err
    assert not stale.exists()
    jax.tree.map(np.testing.assert_array_equal, _state(r1), _state(copy))  # bitwise the whole
    assert (copy / "metrics.jsonl").read_text() == (r1 / "metrics.jsonl").read_text()


# ---------------------------------------------------------------------------- the run API


def test_fit_in_a_thread_stops_on_the_event_and_resume_finishes_bitwise(r1, tmp_path):
    stop, out = threading.Event(), {}
    stop.set()  # stop after the first chunk

    def work():
        out["run"] = pjp.fit(CONFIG, num_seeds=2, run_dir=tmp_path / "run", checkpoint_every=2,
                             progress=False, stop=stop)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    run = out["run"]
    assert run.stopped == "signal" and run.updates_done == 2 and run.updates_run == 2
    assert run.metrics.episode_return.shape == (1, 2, 2)
    assert run.summary()["stopped_early"] == "signal"
    again = pjp.resume(tmp_path / "run", progress=False)
    assert again.stopped is None and again.updates_done == 8 and again.updates_run == 6
    assert again.metrics.episode_return.shape == (1, 2, 8)
    jax.tree.map(np.testing.assert_array_equal, _state(r1), _state(tmp_path / "run"))
    summary = json.loads((r1.parent / "r1.json").read_text())
    np.testing.assert_allclose(again.final_return()[0], summary["final_return_per_seed"])
    ev = pjp.evaluate_run(tmp_path / "run", episodes=3)
    assert ev.returns.shape == (2, 3) and np.all(ev.returns >= 1)


def test_fit_in_a_thread_with_the_progress_bar_writes_nothing_without_a_run_dir(tmp_path,
                                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = {}

    def work():  # as in a notebook's worker thread: no signal handlers, the bar still draws
        out["run"] = pjp.fit(CONFIG.replace(total_timesteps=4 * 16 * 2), num_seeds=2,
                             grid={"learning_rate": [1e-3, 3e-3]}, progress=True)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    run = out["run"]
    assert list(tmp_path.iterdir()) == []
    assert run.final_return().shape == (2, 2) and run.updates_done == 2 and run.stopped is None
    assert [row["hparams"]["learning_rate"] for row in run.summary()["rows"]] == pytest.approx(
        [1e-3, 3e-3])
    for bad in (dict(num_seeds=0), dict(checkpoint_every=0), dict(keep=0),
                dict(log_format="xml"), dict(grid="lr"), dict(progress="yes")):
        with pytest.raises(ConfigError):
            pjp.fit(CONFIG, **bad)
