"""JAX's persistent compilation cache, turned on before anything compiles.

A module of its own, importing nothing that runs a JAX computation: gymnax's import does, and JAX
decides whether the cache is on at the first compilation, so `enable_compile_cache` must run
before `purejaxppo.train` (and gymnax) is imported.
"""

from __future__ import annotations

import os
import sys

import jax

from purejaxppo.config import ConfigError


def enable_compile_cache(directory, option: str = "compile_cache",
                         progress: bool = False) -> None:
    """Turn on JAX's persistent compilation cache in `directory`: every program compiled from
    here on is written there, and a later process compiling the same program (same code, config,
    shapes, jax version and machine) loads it instead. The directory is created if needed;
    ConfigError naming `option` when it cannot be. Call it before anything compiles. The
    thresholds are lowered so that every CPU program is cached. JAX never caches a program with
    host callbacks: the progress bar is one, so the training program is cached only without it
    (with `progress`, a note says so)."""
    if directory is None:
        return
    if not directory:
        raise ConfigError(f"{option}: expected a directory, got an empty string")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{option} {directory}: cannot create the directory "
                          f"({err.strerror or err})") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {directory}: the directory is not writable")
    jax.config.update("jax_compilation_cache_dir", os.path.abspath(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    if progress:
        print(f"note: {option}: JAX does not cache programs with host callbacks, and the progress bar "
              f"is one; add --no-progress to cache the training program", file=sys.stderr)
