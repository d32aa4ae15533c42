"""Determinism, vmap == separate runs, compile-once, and the jax 0.10 CPU deadlock guard.

Every test here compiles `make_train(SMALL)` (the deadlock guard in a subprocess, 16 seeds as in
the first test): the same programs, so the session's compilation cache (conftest.py) compiles
each once."""

import functools
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from purejaxppo import PPOConfig, make_train

# Small but complete: default 2x64 tanh towers (orthogonal init), 10 updates.
SMALL_FIELDS = dict(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 10)
SMALL = PPOConfig(**SMALL_FIELDS)
NUM_SEEDS = 16


def assert_trees_allclose(a, b, **tol):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tol), a, b)


def test_vmap_of_16_seeds_equals_16_separate_runs():
    keys = jax.random.split(jax.random.key(7), NUM_SEEDS)
    train = make_train(SMALL)
    batched = jax.jit(jax.vmap(train))(keys)
    single = jax.jit(train)
    for i in range(NUM_SEEDS):
        separate = single(keys[i])
        row = jax.tree.map(lambda x: x[i], batched)
        assert_trees_allclose(row.metrics, separate.metrics, rtol=1e-4, atol=1e-5)
        assert_trees_allclose(row.params, separate.params, rtol=1e-4, atol=1e-5)
    # Seeds really differ: otherwise the comparison above would prove little.
    assert not np.allclose(batched.metrics.policy_loss[0], batched.metrics.policy_loss[1])


def test_vmap_of_train_runs_in_groups_that_equal_separate_runs(monkeypatch):
    """`jax.vmap(train)` over more seeds than `runs_per_group` allows runs them in groups
    (`parallel.grouped_when_vmapped`; groups of 2 here instead of the CPU's 16), each seed still
    its separate run; nested vmaps and unbatched arguments work; with a callback or
    `group_vmap=False`, one vmap."""
    import purejaxppo.parallel as parallel

    if jax.default_backend() != "cpu":
        pytest.skip("grouping applies on the CPU")
    monkeypatch.setattr(parallel, "CPU_GROUP_SIZES", range(2, 1, -1))
    keys = jax.random.split(jax.random.key(7), 8)
    train = make_train(SMALL)
    obs_of_all = "f32[8,4,4]"  # the 8 runs' observations (4 envs x 4 floats) side by side
    assert obs_of_all not in str(jax.make_jaxpr(jax.vmap(train))(keys))
    assert "f32[2,4,4]" in str(jax.make_jaxpr(jax.vmap(train))(keys))
    reporting = make_train(SMALL, callback=lambda *_: None, callback_every=SMALL.num_updates)
    assert obs_of_all in str(jax.make_jaxpr(jax.vmap(reporting))(keys))
    one_vmap = make_train(SMALL, group_vmap=False)
    assert obs_of_all in str(jax.make_jaxpr(jax.vmap(one_vmap))(keys))
    with pytest.raises(ValueError, match="group_vmap"):
        make_train(SMALL, group_vmap="yes")

    batched = jax.jit(jax.vmap(train))(keys)
    single = jax.jit(train)
    for i in range(len(keys)):
        row = jax.tree.map(lambda x: x[i], batched)
        assert_trees_allclose(row, single(keys[i]), rtol=1e-4, atol=1e-5)

    hparams = jax.tree.map(lambda x: np.full((3,), x, np.float32), SMALL.hparams())
    nested = jax.eval_shape(jax.vmap(jax.vmap(train, in_axes=(0, None)), in_axes=(None, 0)),
                            keys, hparams)
    assert nested.metrics.policy_loss.shape == (3, 8, SMALL.num_updates)
    shared = jax.eval_shape(jax.vmap(train, in_axes=(0, None)), keys, SMALL.hparams())
    assert shared.metrics.policy_loss.shape == (8, SMALL.num_updates)


def test_same_key_same_result_and_compiles_once():
    traces = []
    train = make_train(SMALL)

    @functools.wraps(train)  # the same program as jax.jit(train): a cache hit, not a compile
    def counted(key):
        traces.append(1)  # runs only while tracing
        return train(key)

    jitted = jax.jit(counted)
    first = jitted(jax.random.key(3))
    second = jitted(jax.random.key(3))
    third = jitted(jax.random.key(4))
    assert len(traces) == 1
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)),
                 first, second)
    assert not np.array_equal(np.asarray(first.metrics.value_loss),
                              np.asarray(third.metrics.value_loss))


def test_metrics_have_one_row_per_update():
    result = jax.jit(make_train(SMALL))(jax.random.key(0))
    for name, leaf in result.metrics._asdict().items():
        assert leaf.shape == (SMALL.num_updates,), name


GUARD = textwrap.dedent("""
    import jax
    from purejaxppo import PPOConfig, make_train
    config = PPOConfig(**{fields})
    train = jax.jit(jax.vmap(make_train(config)))
    for i in range(20):
        jax.block_until_ready(train(jax.random.split(jax.random.key(i), {n})))
    print("ok")
""")


def test_vmapped_seeds_do_not_deadlock_on_cpu():
    """jaxlib 0.10.x hangs (0% CPU) in batched QR under vmap, i.e. orthogonal init over seeds.

    A race: repeated 16-seed calls through the public entry point, in a subprocess with a
    timeout, so a regression fails here instead of hanging CI."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    code = GUARD.format(n=NUM_SEEDS, fields=SMALL_FIELDS)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
