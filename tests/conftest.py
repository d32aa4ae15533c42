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
  compilation produced, so results are bit-identical. Concurrent writers are safe: an entry is
  written whole or not found, and a torn read only makes JAX warn and compile. Programs with host
  callbacks (the progress bar) are never cached. A `JAX_COMPILATION_CACHE_DIR` already set (a
  cache kept between runs, say) is used as it is and kept.
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
