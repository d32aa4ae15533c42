"""Test-session settings.

The suite is dominated by XLA compilation of many small programs. Two settings cut it, both made
through the environment at import of this file (before jax is imported, so that jax reads them;
the xdist workers and the CLI subprocesses the tests start inherit them):

- LLVM -O1. purejaxppo's own entry points (CLI, sweeps, chunked runs) compile for the CPU with
  `purejaxppo.compiler_options()`; the tests compile mostly through plain `jax.jit`, so the same
  level is set here for every program. A level already given in `XLA_FLAGS` is left alone.
- JAX's persistent compilation cache in one temporary directory per test session, shared by the
  xdist workers and every subprocess, removed when the session ends. Many tests build the same
  program afresh (a new `make_train(config)` closure, a CLI subprocess); with the cache the second
  compilation is a file read. A program loaded from the cache is the executable the first
  compilation produced, so results are bit-identical. Sharing one directory between processes
  is safe: JAX writes an entry with one plain file write, so a process may read an entry still
  being written; its zlib checksum then fails, JAX warns and compiles instead; two writers of one
  entry write the same bytes. Programs with host callbacks (the progress bar) are never cached.
  A `JAX_COMPILATION_CACHE_DIR` already set (a cache kept between runs, say) is used as it is
  and kept.
"""
import atexit
import os
import shutil
import tempfile

_FLAG = "--xla_backend_optimization_level"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}=1".strip()

if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    # The xdist controller (or a plain pytest process) gets here first; its workers find it set.
    _CACHE = tempfile.mkdtemp(prefix="purejaxppo-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import pytest  # noqa: E402  (after the environment above, which must precede any jax import)


@pytest.fixture(scope="session")
def tiny_config():
    """The suite's tiny training config: CartPole, 16 updates of 4 envs x 16 steps, 8-8 tanh
    towers (a few seconds to compile). Tests that train it with the same shapes (seeds, grid
    size, mesh) share one compiled program through the cache above, across files and workers;
    a test that needs another size derives it with `.replace(...)`."""
    from purejaxppo import PPOConfig

    return PPOConfig(env_name="CartPole-v1", total_timesteps=1024, num_envs=4, num_steps=16,
                     hidden_sizes=(8, 8))


SMOKE_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


@pytest.fixture(scope="session")
def smoke_jit():
    """`jax.jit` with LLVM -O0 (`SMOKE_COMPILER_OPTIONS`) for tests that only check that a
    program builds and runs (shapes, names, finite values, exact schedules): such a program
    compiles with ~10-25 % less CPU (measured on the env registry's programs, the suite's largest
    share). Never for a test that compares
    values with a program compiled at another level (CLI, run API, sweeps use -O1), which may
    round differently."""
    import functools

    import jax

    return functools.partial(jax.jit, compiler_options=SMOKE_COMPILER_OPTIONS)


# Heaviest files first (CPU seconds of each file run alone, measured 2026-12-03 on 2 cores, most
# first: test_envs ~230, test_ppo_family ~140, test_checkpoint ~95, test_learning ~60, then
# 45..30 each down to test_determinism, then the light ones), so that under
# `pytest -n 2 --dist loadfile` the last files handed out are short ones and neither worker idles
# long at the end. xdist by default hands out files by number of tests, most first, which put
# several of the longest (few tests, each a compilation) last. Files not named here follow the
# named ones, in that default order; the order changes no test's outcome.
HEAVY_FIRST = ("test_envs.py", "test_ppo_family.py", "test_appo.py", "test_checkpoint.py",
               "test_pbt.py", "test_learning.py", "test_rundir_cli.py", "test_actor_learner.py", "test_distributed.py", "test_sharding.py", "test_cli.py",
               "test_sweep.py", "test_probes.py", "test_seams.py", "test_vtrace.py", "test_normalize.py",
               "test_render.py", "test_determinism.py", "test_cli_envs.py", "test_progress.py",
               "test_rundir.py", "test_fast_keys.py", "test_presets.py", "test_logs.py")


def pytest_configure(config):
    """Keep the collection order below when xdist hands out files (`--dist loadfile`)."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    """Files in HEAVY_FIRST order, then the others by number of tests (most first, as xdist
    would); the order of tests within a file is kept."""
    counts = {}
    for item in items:
        counts[item.path.name] = counts.get(item.path.name, 0) + 1
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: (rank.get(item.path.name, len(rank)), -counts[item.path.name],
                                 item.path.name))
