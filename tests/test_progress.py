"""Progress reporting: the host callback fires the expected number of times under vmap and never
changes results."""

import collections
import threading

import jax
import numpy as np
import pytest

from purejaxppo import hparam_grid, make_train, sweep
from purejaxppo.metrics import Metrics
from purejaxppo.progress import ProgressReporter, emit_progress, expected_calls, progress_every
from purejaxppo.sweeps import run_mesh

# Training runs use conftest's `tiny_config` (16 updates).
EVERY = 3  # reports at updates 0, 3, ..., 15: 6 per run
NUM_SEEDS = 2
# test_sweep.py's grid and mesh: the sweep without progress is the program test_sweep compiles (one
# compilation for both files, through the session's compilation cache, conftest.py).
GRID = dict(learning_rate=[1e-3, 1e-2], ent_coef=[0.0, 0.05])
NUM_RUNS = 4 * NUM_SEEDS


def _row(episode_return):
    value = np.asarray(episode_return, np.float32)
    return Metrics(*([value] * len(Metrics._fields)))


def test_progress_every_and_expected_calls():
    assert progress_every(976) == 5 and progress_every(10) == 1
    assert progress_every(1000, max_reports=10) == 100
    assert expected_calls(num_runs=4, num_updates=16, every=3) == 4 * 6
    assert expected_calls(num_runs=1, num_updates=15, every=3) == 5
    with pytest.raises(ValueError):
        progress_every(10, max_reports=0)


def test_reporter_counts_scalar_and_batched_rows():
    reporter = ProgressReporter(num_runs=4, num_updates=10, steps_per_update=8, every=2,
                                show=False)
    reporter(0, _row(10.0))
    reporter(0, _row(np.nan))  # an update without finished episodes: counted, not averaged
    assert reporter.calls == 2 and reporter.latest_return == 10.0
    reporter(2, _row([20.0, 30.0]))  # a batched row stands for two runs
    assert reporter.calls == 4
    assert reporter.latest_return == pytest.approx(20.0)
    assert reporter.steps_done == 4 * 2 * 8
    for _ in range(100):
        reporter(4, _row(1.0))
    assert reporter.steps_done == reporter.total_steps == 4 * 10 * 8  # clamped


def test_reporter_is_thread_safe():
    reporter = ProgressReporter(num_runs=8, num_updates=100, steps_per_update=1, show=False)
    threads = [threading.Thread(target=lambda: [reporter(0, _row(1.0)) for _ in range(500)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reporter.calls == 2000


def test_reporter_draws_a_bar(capsys):
    reporter = ProgressReporter(num_runs=2, num_updates=4, steps_per_update=8, show=True,
                                description="bar-test")
    with reporter:
        reporter(0, _row(5.0))
        reporter(0, _row(7.0))
    out = capsys.readouterr().out
    assert "bar-test" in out and "env steps" in out and "return 6.0" in out
    assert reporter.steps_done == 16


@pytest.fixture(scope="module")
def on_and_off(tiny_config):
    config = tiny_config
    keys = jax.random.split(jax.random.key(3), NUM_SEEDS)
    grid = hparam_grid(config, **GRID)
    mesh = run_mesh(jax.devices()[:1])
    reporter = ProgressReporter(NUM_RUNS, config.num_updates, config.batch_size, EVERY,
                                show=False)
    seen = collections.Counter()  # update -> runs reported
    host_calls = collections.Counter()  # update -> host calls

    def callback(update_idx, metrics):
        seen[int(update_idx)] += np.size(metrics.episode_return)
        host_calls[int(update_idx)] += 1
        reporter(update_idx, metrics)

    with_progress = sweep(make_train(config, callback=callback, callback_every=EVERY), keys, grid,
                          mesh=mesh)
    without = sweep(make_train(config), keys, grid, mesh=mesh)
    return with_progress, without, reporter, (seen, host_calls)


def test_progress_on_equals_off(on_and_off):
    with_progress, without, _, _ = on_and_off
    # The callback only reads. Identical bits here (jax 0.10.2, CPU); the tolerance only allows
    # for a compiler that fuses the two programs differently.
    for name in Metrics._fields:
        np.testing.assert_allclose(getattr(with_progress.metrics, name),
                                   getattr(without.metrics, name), rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    np.testing.assert_array_equal(with_progress.metrics.num_episodes, without.metrics.num_episodes)
    for a, b in zip(jax.tree.leaves(with_progress.params), jax.tree.leaves(without.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_callback_reports_every_run_in_one_host_call_per_report(on_and_off, tiny_config):
    with_progress, _, reporter, (seen, host_calls) = on_and_off
    runs = NUM_RUNS
    reports = range(0, tiny_config.num_updates, EVERY)
    assert seen == {u: runs for u in reports}
    assert host_calls == {u: 1 for u in reports}  # batched under vmap, one device
    assert reporter.calls == expected_calls(runs, tiny_config.num_updates, EVERY)
    assert reporter.steps_done == reporter.total_steps
    assert np.isfinite(reporter.latest_return)


def _scan_with_progress(callback, steps=6, every=2):
    """A tiny stand-in for `train`: a scan that reports a Metrics row every `every` steps."""

    def run(x):
        def body(c, i):
            row = Metrics(*[c * (k + 1) for k in range(len(Metrics._fields))])
            jax.lax.cond(i % every == 0, lambda: emit_progress(callback, i, row), lambda: None)
            return c + 1.0, row.episode_return

        return jax.lax.scan(body, x, jax.numpy.arange(steps))

    return run


def test_emit_progress_is_one_batched_call_per_report():
    calls = []
    run = _scan_with_progress(lambda i, row: calls.append((int(i), np.shape(row.entropy))))
    jax.block_until_ready(jax.jit(run)(1.0))
    assert calls == [(0, ()), (2, ()), (4, ())]
    calls.clear()
    out = jax.jit(jax.vmap(jax.vmap(run)))(np.arange(6.0, dtype=np.float32).reshape(2, 3))
    jax.block_until_ready(out)
    assert sorted(calls) == [(0, (2, 3)), (2, (2, 3)), (4, (2, 3))]
    expected = jax.vmap(_scan_with_progress(lambda i, row: None))(np.arange(6.0, dtype=np.float32))
    np.testing.assert_array_equal(out[1].reshape(6, -1), expected[1])


def test_reporter_counts_batched_reports_per_run():
    reporter = ProgressReporter(num_runs=5, num_updates=6, steps_per_update=10, every=2,
                                show=False)
    jax.block_until_ready(jax.jit(jax.vmap(_scan_with_progress(reporter)))(
        np.arange(5.0, dtype=np.float32)))
    assert reporter.calls == expected_calls(5, 6, 2) == 15
    assert reporter.steps_done == reporter.total_steps
    assert reporter.latest_return == pytest.approx(np.mean(np.arange(5.0) + 4))


@pytest.mark.parametrize("changes", [{}, dict(gru_size=8, normalize_obs=True,
                                              policy_objective="clip+kl_penalty")],
                         ids=["feed-forward", "recurrent+normalised+penalty"])
def test_training_program_has_no_host_round_trip_without_a_callback(changes, tiny_config):
    """Nothing in the hot path calls back to Python: without a progress callback the lowered
    vmapped training program holds no host callback; with one (the positive control) it does."""
    config = tiny_config.replace(**changes)
    keys = jax.random.split(jax.random.key(0), NUM_SEEDS)

    def lowered(train):
        return jax.jit(jax.vmap(train)).lower(keys).as_text()

    assert "callback" not in lowered(make_train(config)).lower()
    reporter = ProgressReporter(num_runs=NUM_SEEDS, num_updates=config.num_updates,
                                steps_per_update=config.batch_size, every=EVERY, show=False)
    assert "callback" in lowered(make_train(config, callback=reporter,
                                            callback_every=EVERY)).lower()
