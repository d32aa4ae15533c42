"""Test-session settings.

The suite is dominated by XLA compilation of many small programs. purejaxppo's own entry points
(CLI, sweeps, chunked runs) compile for the CPU with `purejaxppo.compiler_options()` (LLVM -O1);
the tests compile mostly through plain `jax.jit`, so the same level is set here for every program
of the test process and of the CLI subprocesses it starts (they inherit the environment). It
must be set before jax initialises its backend, hence at import of this file. A level already
given in `XLA_FLAGS` is left alone.
"""
import os

_FLAG = "--xla_backend_optimization_level"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}=1".strip()
