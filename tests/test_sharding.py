"""Sweeps sharded over a 4-device CPU mesh give the numbers of a 1-device run.

The 4 devices come from `XLA_FLAGS=--xla_force_host_platform_device_count=4`, which must be set
before JAX starts, so that run happens in a subprocess; this process computes the same sweep on
one device and compares.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from purejaxppo import PPOConfig, hparam_grid, make_train, sweep
from purejaxppo.sweeps import local_runs, place_runs, run_mesh, train_seeds

CONFIG = dict(env_name="CartPole-v1", total_timesteps=1024, num_envs=4, num_steps=16,
              hidden_sizes=(8, 8))
LEARNING_RATES = [1e-3, 3e-3, 1e-2]  # 3 settings x 2 seeds = 6 runs: padded to 8 on 4 devices
NUM_SEEDS = 2
NUM_SEEDS_PLAIN = 3  # plain seed vmap: 3 runs, padded to 4
EVERY = 4

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from purejaxppo import PPOConfig, hparam_grid, make_train, sweep
    from purejaxppo.progress import ProgressReporter
    from purejaxppo.sweeps import place_runs, run_mesh, train_seeds

    spec = json.loads(sys.argv[1])
    config = PPOConfig(**{**spec["config"], "hidden_sizes": tuple(spec["config"]["hidden_sizes"])})
    keys = jax.random.split(jax.random.key(0), spec["num_seeds"])
    grid = hparam_grid(config, learning_rate=spec["learning_rates"])
    mesh = run_mesh()
    assert mesh.devices.size == 4, jax.devices()

    # Inputs really are spread over the 4 devices, padding repeats run 0.
    flat_keys = jax.random.split(jax.random.key(1), 6)
    runs = place_runs(flat_keys, jax.tree.map(lambda x: np.repeat(x[:1], 6), grid), mesh=mesh)
    assert runs.key_data.shape[0] == 8 and runs.num_runs == 6
    assert len(runs.key_data.sharding.device_set) == 4
    data = np.asarray(runs.key_data)
    assert (data[6] == data[0]).all() and (data[7] == data[0]).all()

    reporter = ProgressReporter(8, config.num_updates, config.batch_size, spec["every"], show=False)
    train = make_train(config, callback=reporter, callback_every=spec["every"])
    result = sweep(train, keys, grid, mesh=mesh)
    plain = train_seeds(make_train(config), jax.random.split(jax.random.key(2), spec["plain_seeds"]),
                        config=config, mesh=mesh)
    out = {f"sweep_{k}": v for k, v in result.metrics._asdict().items()}
    out.update({f"plain_{k}": v for k, v in plain.metrics._asdict().items()})
    out["sweep_params"] = np.concatenate([x.reshape(-1) for x in jax.tree.leaves(result.params)])
    out["calls"] = reporter.calls
    out["devices"] = len(jax.devices())
    np.savez(sys.argv[2], **out)
""")


def _spec():
    return {"config": CONFIG, "learning_rates": LEARNING_RATES, "num_seeds": NUM_SEEDS,
            "plain_seeds": NUM_SEEDS_PLAIN, "every": EVERY}


def _one_device():
    config = PPOConfig(**CONFIG)
    mesh = run_mesh(jax.devices()[:1])
    keys = jax.random.split(jax.random.key(0), NUM_SEEDS)
    result = sweep(make_train(config), keys, hparam_grid(config, learning_rate=LEARNING_RATES),
                   mesh=mesh)
    plain = train_seeds(make_train(config), jax.random.split(jax.random.key(2), NUM_SEEDS_PLAIN),
                        config=config, mesh=mesh)
    out = {f"sweep_{k}": v for k, v in result.metrics._asdict().items()}
    out.update({f"plain_{k}": v for k, v in plain.metrics._asdict().items()})
    out["sweep_params"] = np.concatenate([x.reshape(-1) for x in jax.tree.leaves(result.params)])
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(4-device results from the subprocess, 1-device results from here), computed side by side."""
    out = tmp_path_factory.mktemp("sharding") / "four.npz"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(_spec()), str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        one = _one_device()
    finally:
        _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-4000:]
    return dict(np.load(out)), one


@pytest.fixture(scope="module")
def four_devices(runs):
    return runs[0]


@pytest.fixture(scope="module")
def one_device(runs):
    return runs[1]


def _assert_close(name, actual, expected):
    exact = any(name.endswith(f) for f in ("episode_return", "episode_length", "num_episodes",
                                           "learning_rate"))
    if exact:
        np.testing.assert_allclose(actual, expected, rtol=1e-6, err_msg=name)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-4, err_msg=name)


def test_four_device_sweep_equals_one_device(four_devices, one_device):
    assert four_devices["devices"] == 4
    assert four_devices["sweep_episode_return"].shape == (len(LEARNING_RATES), NUM_SEEDS,
                                                          PPOConfig(**CONFIG).num_updates)
    for name, expected in one_device.items():
        if name.startswith("sweep_"):
            _assert_close(name, four_devices[name], expected)


def test_four_device_seed_vmap_equals_one_device(four_devices, one_device):
    assert four_devices["plain_episode_return"].shape[0] == NUM_SEEDS_PLAIN  # padding dropped
    for name, expected in one_device.items():
        if name.startswith("plain_"):
            _assert_close(name, four_devices[name], expected)


def test_four_device_progress_fires_for_every_run(four_devices):
    # 6 runs padded to 8, each reporting at updates 0, EVERY, 2 * EVERY, ...
    reports = -(-PPOConfig(**CONFIG).num_updates // EVERY)
    assert four_devices["calls"] == 8 * reports


def test_local_runs_single_process():
    mesh = run_mesh()
    n = mesh.devices.size
    assert local_runs(3 * n + 1, mesh) == 4 * n


def test_place_runs_one_device_no_padding():
    keys = jax.random.split(jax.random.key(0), 3)
    runs = place_runs(keys, jax.tree.map(lambda x: np.full(3, x, np.float32),
                                         PPOConfig(**CONFIG).hparams()),
                      mesh=run_mesh(jax.devices()[:1]))
    assert runs.key_data.shape == (3, 2) and runs.num_runs == 3
