"""purejaxppo: PPO as one pure, jit-compiled, vmappable function of a PRNG key.

The public names below are imported lazily (PEP 562), on first use. This keeps `import
purejaxppo.distributed` free of gymnax, whose import already runs a JAX computation: with several
processes, `jax.distributed.initialize` must come before any computation (see
`purejaxppo.distributed.initialize`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from purejaxppo.version import __version__  # noqa: F401  (imports nothing else)

_EXPORTS = {
    "purejaxppo.config": ("ConfigError", "HPARAM_FIELDS", "HParams", "PPOConfig",
                          "validate_config"),
    "purejaxppo.envs": ("available_envs", "make_env"),
    "purejaxppo.estimators": ("compute_gae", "compute_vtrace", "register_estimator"),
    "purejaxppo.loss": ("register_objective",),
    "purejaxppo.metrics": ("Metrics", "final_return"),
    "purejaxppo.train": ("TrainResult", "TrainState", "Trainer", "make_train", "make_trainer"),
    "purejaxppo.distributions": ("Categorical", "DiagGaussian", "TanhGaussian"),
    "purejaxppo.checkpoint": ("CheckpointError", "load_policy", "save_policy"),
    "purejaxppo.evaluate": ("EvalResult", "evaluate"),
    "purejaxppo.fit": ("FitResult", "evaluate_run", "resume"),
    "purejaxppo.sweeps": ("CompiledSweep", "SweepResult", "SweepRow", "compile_sweep",
                          "format_sweep_table", "hparam_grid", "hparams_at", "stack_hparams",
                          "sweep", "sweep_table", "train_runs", "train_seeds"),
    "purejaxppo.parallel": ("run_mesh",),
    "purejaxppo.progress": ("ProgressReporter", "progress_every"),
    "purejaxppo.rllib": ("from_rllib", "to_rllib"),
    "purejaxppo.fast_paths": ("compiler_options",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
# Submodules reachable as attributes (`purejaxppo.logs.plot_run(...)`). `purejaxppo.fit` is the
# module purejaxppo/fit.py made callable as its function `fit` (Python binds a submodule's name on
# its package when it is imported, so the two must be one object).
_SUBMODULES = ("checkpoint", "fit", "logs", "presets", "rundir", "stats")

__all__ = sorted([*_MODULE_OF, "fit"])


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"purejaxppo.{name}")
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'purejaxppo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static analysers and IDEs see ordinary imports
    from purejaxppo.config import HPARAM_FIELDS, ConfigError, HParams, PPOConfig, validate_config
    from purejaxppo.envs import available_envs, make_env
    from purejaxppo.estimators import compute_gae, compute_vtrace, register_estimator
    from purejaxppo.loss import register_objective
    from purejaxppo.metrics import Metrics, final_return
    from purejaxppo.progress import ProgressReporter, progress_every
    from purejaxppo.rllib import from_rllib, to_rllib
    from purejaxppo.parallel import run_mesh
    from purejaxppo.sweeps import (CompiledSweep, SweepResult, SweepRow, compile_sweep,
                                   format_sweep_table, hparam_grid, hparams_at, stack_hparams,
                                   sweep, sweep_table, train_runs, train_seeds)
    from purejaxppo.checkpoint import CheckpointError, load_policy, save_policy
    from purejaxppo.distributions import Categorical, DiagGaussian, TanhGaussian
    from purejaxppo.evaluate import EvalResult, evaluate
    from purejaxppo import checkpoint, fit, logs, presets, rundir  # fit: the callable module
    from purejaxppo.fit import FitResult, evaluate_run, resume
    from purejaxppo.train import TrainResult, Trainer, TrainState, make_train, make_trainer
