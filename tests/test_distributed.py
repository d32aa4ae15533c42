"""Two processes on localhost (jax.distributed, one CPU device each) run one sweep through the
`purejaxppo sweep` entry point; process 0's gathered table and metrics equal a single-process run
of the same sweep."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from purejaxppo import PPOConfig, hparam_grid, make_train, sweep
from purejaxppo.distributed import is_loopback, process_info
from purejaxppo.sweeps import run_mesh, sweep_table

# 3 settings x 1 seed = 3 runs over 2 devices: padded to 4, 2 per process.
LEARNING_RATES = [1e-3, 3e-3, 1e-2]
NUM_SEEDS = 1
CONFIG = PPOConfig(env_name="CartPole-v1", total_timesteps=1024, num_envs=4, num_steps=16,
                   hidden_sizes=(8, 8))
CLI_ARGS = ["--env", "CartPole-v1", "--num-seeds", str(NUM_SEEDS), "--seed", "0",
            "--total-timesteps", "1024", "--set", "num_envs=4", "--set", "num_steps=16",
            "--set", "hidden_sizes=8,8", "--final-window", "5",
            "--grid", "learning_rate=" + ",".join(map(str, LEARNING_RATES))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single_process():
    keys = jax.random.split(jax.random.key(0), NUM_SEEDS)
    return sweep(make_train(CONFIG), keys, hparam_grid(CONFIG, learning_rate=LEARNING_RATES),
                 mesh=run_mesh(jax.devices()[:1]))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """Start both processes, compute the single-process reference meanwhile, collect outputs."""
    tmp = tmp_path_factory.mktemp("distributed")
    address = f"127.0.0.1:{_free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    procs = []
    for pid in (0, 1):
        cmd = [sys.executable, "-m", "purejaxppo.cli", "sweep", *CLI_ARGS,
               "--coordinator", address, "--num-processes", "2", "--process-id", str(pid),
               "--json", str(tmp / f"p{pid}.json"), "--npz", str(tmp / f"p{pid}.npz"),
               "--checkpoint-dir", str(tmp / "run"), "--checkpoint-every", "8"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    try:
        reference = _single_process()
        outputs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, f"process exited {p.returncode}:\n{out[-2000:]}\n{err[-4000:]}"
    return tmp, outputs, reference


def test_process0_metrics_equal_single_process(two_processes):
    tmp, _, reference = two_processes
    saved = np.load(tmp / "p0.npz")
    for name, expected in reference.metrics._asdict().items():
        actual = saved[f"metrics/{name}"]
        assert actual.shape == (len(LEARNING_RATES), NUM_SEEDS, CONFIG.num_updates)
        if name in ("episode_return", "episode_length", "num_episodes", "learning_rate"):
            np.testing.assert_allclose(actual, expected, rtol=1e-6, err_msg=name)
        else:
            np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(saved["hparams/learning_rate"], LEARNING_RATES, rtol=1e-6)


def test_process0_table_equals_single_process(two_processes):
    tmp, outputs, reference = two_processes
    summary = json.loads((tmp / "p0.json").read_text())
    assert summary["num_processes"] == 2 and summary["num_devices"] == 2
    assert summary["padded_runs"] == 4
    rows = sweep_table(reference, window=5)
    assert len(summary["rows"]) == len(rows)
    for got, want in zip(summary["rows"], rows):
        assert got["hparams"]["learning_rate"] == pytest.approx(want.hparams["learning_rate"])
        np.testing.assert_allclose(got["final_return_per_seed"], want.per_seed, rtol=1e-6)
        np.testing.assert_allclose(got["final_return_mean"], want.mean, rtol=1e-6)
    assert "final return" in outputs[0][0]  # process 0 prints the table


def test_only_process0_prints_and_writes(two_processes):
    tmp, outputs, _ = two_processes
    assert "final return" not in outputs[1][0]
    assert not (tmp / "p1.json").exists() and not (tmp / "p1.npz").exists()


def test_single_process_info():
    info = process_info()
    assert info.process_index == 0 and info.process_count == 1
    assert info.global_devices == info.local_devices == len(jax.devices())


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1:1234", True), ("localhost:80", True), ("[::1]:9000", True),
    ("10.1.2.3:1234", False), ("node-7:1234", False)])
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


def test_imports_leave_jax_uninitialised_for_distributed_initialize():
    # jax.distributed.initialize must precede any JAX computation, and gymnax's import runs one:
    # `import purejaxppo` (lazy), `purejaxppo.distributed` and the CLI module must not import it.
    code = ("import sys, purejaxppo, purejaxppo.distributed, purejaxppo.cli, purejaxppo.config\n"
            "print(sorted(m for m in sys.modules if m.startswith('gymnax')))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_process0_alone_writes_the_run_directory(two_processes):
    """Both processes gather the state (collectively); process 0 alone saves checkpoints and
    logs, so there is one row per (run, update) and no cross-process barrier is left waiting."""
    from purejaxppo.checkpoint import latest_checkpoint, list_checkpoints, read_meta

    tmp, _, _ = two_processes
    run = tmp / "run"
    assert [p.name for p in list_checkpoints(run)] == ["update_000000008", "update_000000016"]
    assert read_meta(latest_checkpoint(run))["num_runs"] == len(LEARNING_RATES) * NUM_SEEDS
    rows = (run / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == len(LEARNING_RATES) * NUM_SEEDS * CONFIG.num_updates
