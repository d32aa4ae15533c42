"""Sweeps: seeds x hyperparameter settings as one compiled program, sharded over every device.

A sweep is `jax.vmap` of `train(key, hparams)` over a flat axis of `settings x seeds` runs:

    train = make_train(config)
    grid = hparam_grid(config, learning_rate=[1e-4, 3e-4], ent_coef=[0.0, 0.01])   # 4 settings
    result = sweep(train, jax.random.split(jax.random.key(0), 8), grid)          # 4 x 8 runs
    result.metrics.episode_return        # (4, 8, num_updates)
    print(format_sweep_table(sweep_table(result)))

The flat run axis is sharded over a 1-D `jax.sharding.Mesh` of all devices (all processes' devices
after `jax.distributed.initialize`) by `purejaxppo.parallel`; results are gathered to host numpy
arrays on every process. Each run is computed on exactly one device with no communication, so the
numbers do not depend on the device count (up to float rounding of the compiled program).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

import jax
import numpy as np
from jax.sharding import Mesh

from purejaxppo.config import (HPARAM_FIELDS, ConfigError, HParams, PPOConfig, check_hparam_name,
                               validate_hparams)
from purejaxppo.fast_paths import compiler_options
from purejaxppo.metrics import Metrics, final_return
from purejaxppo.parallel import (  # noqa: F401  (run_mesh etc. re-exported for callers)
    PlacedRuns, gather_runs, local_runs, padded_size, place_runs, run_mesh, runs_per_group,
    shard_runs, split_keys, vmap_in_groups)

class SweepResult(NamedTuple):
    """The outcome of `sweep`, gathered to host numpy arrays.

    params: final network parameters, leaves `(n_settings, n_seeds, ...)`.
    metrics: `Metrics`, leaves `(n_settings, n_seeds, num_updates)`.
    hparams: the `HParams` of each setting, leaves `(n_settings,)` (row i of the results ran with
      `hparams_at(result.hparams, i)`).
    obs_stats: final observation-normalisation statistics (`RunningStats`, leaves
      `(n_settings, n_seeds, ...)`), needed to run the policy; None without `normalize_obs`.
    diverged_at: `(n_settings, n_seeds)` first update with non-finite losses, -1 if none (None
      where the runner checks this itself, as the CLI does after every chunk).
    """

    params: Any
    metrics: Metrics
    hparams: HParams
    obs_stats: Any = None
    diverged_at: Any = None


class SweepRow(NamedTuple):
    """One setting of a sweep: its hyperparameters and its final return over seeds."""

    index: int
    hparams: dict  # field name -> float, all HParams fields
    mean: float  # mean over seeds (NaN-safe) of each seed's `final_return`
    std: float  # standard deviation over seeds (NaN-safe, population std)
    num_seeds: int  # seeds with at least one finished episode in the final window
    per_seed: tuple  # each seed's final return (NaN: no episode finished in the window)


# ----------------------------------------------------------------------------- hyperparameters


def _as_values(name: str, values) -> list[float]:
    """A value or a list of values of field `name` as a list of floats (ConfigError names it)."""
    try:
        array = np.atleast_1d(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError):
        raise ConfigError(f"hparam_grid.{name}: values must be numbers, got {values!r}") from None
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(f"hparam_grid.{name}: expected a number or a non-empty flat list of "
                          f"numbers, got {values!r}")
    return [float(v) for v in array]


def hparam_grid(config: PPOConfig, **values) -> HParams:
    """Cartesian product of hyperparameter values, as one `HParams` with `(n_settings,)` leaves.

    Each keyword is an `HParams` field name with a value or a list of values; fields not named
    keep `config`'s value. Settings are ordered like nested for-loops over the keywords in the
    order given, the *last* keyword varying fastest (`itertools.product` order): for
    `hparam_grid(c, learning_rate=[a, b], ent_coef=[x, y])` the settings are
    `(a, x), (a, y), (b, x), (b, y)`.

    Names and values are checked before anything is compiled: an unknown name raises
    `ConfigError` naming it and listing the valid ones; an invalid value (e.g. a negative
    learning rate) raises `ConfigError` naming the field.
    """
    for name in values:
        check_hparam_name(name, "hparam_grid")
    axes = {name: _as_values(name, v) for name, v in values.items()}
    base = dataclasses.asdict(config.hparams())
    for name, vals in axes.items():
        validate_hparams(HParams(**{**base, name: np.asarray(vals)}), where="hparam_grid")
    settings = [HParams(**{**base, **dict(zip(axes, combo))})
                for combo in itertools.product(*axes.values())]
    return stack_hparams(settings)


def parse_grid(texts) -> dict[str, list[float]]:
    """Parse repeated `field=v1,v2,...` texts (the CLI's `--grid`) into `hparam_grid` keywords, in
    the order given; ConfigError names a static or unknown field, a repeat or a bad number."""
    grid: dict[str, list[float]] = {}
    for text in texts:
        if "=" not in text:
            raise ConfigError(f"--grid expects field=value,value,..., got {text!r}")
        name, raw = text.split("=", 1)
        name = name.strip().replace("-", "_")
        check_hparam_name(name, "--grid")
        if name in grid:
            raise ConfigError(f"--grid {name}: given twice")
        try:
            grid[name] = [float(v) for v in raw.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--grid {name}: cannot parse {raw!r} as numbers") from None
        if not grid[name]:
            raise ConfigError(f"--grid {name}: no values")
    return grid


def stack_hparams(settings: Sequence[HParams]) -> HParams:
    """Stack a list of (scalar) `HParams` into one `HParams` with `(len(settings),)` leaves.

    For sweeps that are not a Cartesian grid. Every setting is validated (`ConfigError` names
    the field and the setting).
    """
    settings = list(settings)
    if not settings:
        raise ConfigError("stack_hparams: needs at least one setting")
    for i, hp in enumerate(settings):
        if not isinstance(hp, HParams):
            raise ConfigError(f"stack_hparams: setting {i} is a {type(hp).__name__}, not HParams")
        validate_hparams(hp, where=f"HParams[{i}]")
    return jax.tree.map(lambda *xs: np.asarray(xs, dtype=np.float32), *settings)


def num_settings(hparams: HParams) -> int:
    """Number of settings in a stacked `HParams` (1 for scalar leaves)."""
    shapes = {np.shape(leaf) for leaf in jax.tree.leaves(hparams)}
    if len(shapes) != 1 or len(next(iter(shapes))) > 1:
        raise ConfigError(f"HParams: every leaf must be a scalar or have the same (n_settings,) "
                          f"shape, got shapes {sorted(shapes)}")
    (shape,) = shapes
    return shape[0] if shape else 1


def hparams_at(hparams: HParams, index: int) -> HParams:
    """Setting `index` of a stacked `HParams`, as an `HParams` of Python floats."""
    # The shortest decimal that rounds back to the same float32: readable in tables and JSON,
    # and bitwise the value the sweep ran with once `train` casts it to float32.
    return jax.tree.map(lambda leaf: float(str(np.float32(np.atleast_1d(leaf)[index]))), hparams)


def _train_flat_jit():
    """`_train_flat`, jitted with `compiler_options()` for the current backend (cached)."""
    return _jit_with_options(tuple(sorted(compiler_options().items())))


@functools.cache
def _jit_with_options(options: tuple):
    return jax.jit(_train_flat, static_argnames=("train", "impl", "mesh"),
                   compiler_options=dict(options))


def _train_flat(key_data, hparams, *, train, impl, mesh: Mesh):
    """`vmap(train)` over the flat run axis, one block of runs per device.

    `shard_map` makes the program per-device: a device trains its own runs with no
    communication, and `train`'s progress callbacks run on the host of the device that made them
    (under automatic partitioning they would all be shipped to device 0, which across processes
    costs a network round trip per callback). Keys are rebuilt from their raw data.
    """

    def one(data, hp):
        key = data if impl is None else jax.random.wrap_key_data(data, impl=impl)
        return train(key, hp)

    return shard_runs(one, mesh)(key_data, hparams)


# ----------------------------------------------------------------------------- running


def train_runs(train, keys, hparams: HParams, *, mesh: Optional[Mesh] = None):
    """Run `train(keys[i], hparams[i])` for every i as one program sharded over `mesh`.

    Args:
      train: the function returned by `make_train` (not jitted or vmapped).
      keys: `(n,)` PRNG keys (or legacy `(n, 2)` uint32 keys).
      hparams: `HParams` with `(n,)` leaves.
      mesh: a 1-D mesh; default `run_mesh()`, all devices.

    Returns:
      What `train` returns (`TrainResult`) with `(n, ...)` host numpy leaves, padding removed.
    """
    runs = place_runs(keys, hparams, mesh=mesh)
    out = _train_flat_jit()(runs.key_data, runs.hparams, train=train, impl=runs.impl,
                            mesh=runs.mesh)
    return gather_runs(out, runs.num_runs)


def train_seeds(train, keys, hparams: Optional[HParams] = None, *,
                config: Optional[PPOConfig] = None, mesh: Optional[Mesh] = None):
    """Plain seed vmap, sharded: `train(keys[i], hparams)` for every seed over every device.

    `hparams` is one scalar `HParams` shared by all seeds; default `config.hparams()` (pass the
    config, or the hparams). Returns `TrainResult` with `(n_seeds, ...)` host numpy leaves.
    """
    if hparams is None:
        if config is None:
            raise ValueError("train_seeds: pass hparams or the config whose defaults to use")
        hparams = config.hparams()
    n = split_keys(keys)[0].shape[0]
    flat = jax.tree.map(lambda x: np.full((n,), x, np.float32), hparams)
    return train_runs(train, keys, flat, mesh=mesh)


def flatten_sweep(keys, grid: HParams):
    """Settings x seeds as one flat run axis (index `setting * n_seeds + seed`): returns
    `(flat_keys, flat_hparams, grid, n_seeds)`, the grid broadcast to `(n_settings,)` leaves."""
    s = num_settings(grid)
    grid = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x, np.float32), (s,)).copy(), grid)
    validate_hparams(grid, where="HParams")
    key_data, impl = split_keys(keys)
    flat_keys = np.tile(key_data, (s, 1))
    if impl is not None:
        flat_keys = jax.random.wrap_key_data(flat_keys, impl=impl)
    flat_hparams = jax.tree.map(lambda x: np.repeat(x, key_data.shape[0]), grid)
    return flat_keys, flat_hparams, grid, key_data.shape[0]


def sweep_result(out, grid: HParams, num_seeds: int) -> SweepResult:
    """A flat `TrainResult` (leaves `(n_settings * n_seeds, ...)`) as a `SweepResult`."""
    s = num_settings(grid)
    params, metrics, obs_stats, diverged_at = jax.tree.map(
        lambda x: x.reshape((s, num_seeds, *x.shape[1:])),
        (out.params, out.metrics, out.obs_stats, out.diverged_at))
    return SweepResult(params, metrics, grid, obs_stats, diverged_at)


def sweep(train, keys, grid: HParams, *, mesh: Optional[Mesh] = None) -> SweepResult:
    """Every setting of `grid` x every key, as one compiled program sharded over every device.

    Args:
      train: the function returned by `make_train(config, ...)` (not jitted or vmapped).
      keys: `(n_seeds,)` PRNG keys; every setting runs with the same keys (common random numbers,
        so settings differ only by their hyperparameters).
      grid: `HParams` with `(n_settings,)` leaves (`hparam_grid`, `stack_hparams`) or scalars.
      mesh: a 1-D mesh; default `run_mesh()`, all devices (of all processes).

    Returns:
      `SweepResult` with `(n_settings, n_seeds, ...)` host numpy leaves and the grid's `HParams`.
      The flat run index is `setting * n_seeds + seed`.
    """
    flat_keys, flat_hparams, grid, num_seeds = flatten_sweep(keys, grid)
    return sweep_result(train_runs(train, flat_keys, flat_hparams, mesh=mesh), grid, num_seeds)


class CompiledSweep(NamedTuple):
    """A sweep compiled ahead of time for its placed inputs; call it to run (e.g. to time the run
    without compilation). Made by `compile_sweep`."""

    executable: Any  # jax.stages.Compiled
    runs: PlacedRuns
    grid: HParams
    num_seeds: int

    @property
    def num_padded(self) -> int:
        """Runs actually executed, padding included (the progress callback fires for these)."""
        return int(self.runs.key_data.shape[0])

    def __call__(self) -> SweepResult:
        out = self.executable(self.runs.key_data, self.runs.hparams)
        return sweep_result(gather_runs(out, self.runs.num_runs), self.grid, self.num_seeds)


def compile_sweep(train, keys, grid: HParams, *, mesh: Optional[Mesh] = None) -> CompiledSweep:
    """Place and compile `sweep(train, keys, grid)` without running it (same arguments)."""
    flat_keys, flat_hparams, grid, num_seeds = flatten_sweep(keys, grid)
    runs = place_runs(flat_keys, flat_hparams, mesh=mesh)
    executable = _train_flat_jit().lower(runs.key_data, runs.hparams, train=train,
                                         impl=runs.impl, mesh=runs.mesh).compile()
    return CompiledSweep(executable, runs, grid, num_seeds)


# ----------------------------------------------------------------------------- tables


def sweep_table(result: SweepResult, window: int = 10) -> list[SweepRow]:
    """One `SweepRow` per setting: final return (mean return of the episodes finished in the last
    `window` updates, `final_return`) as mean ± std over seeds."""
    finals = final_return(result.metrics, window)  # (n_settings, n_seeds)
    rows = []
    for i in range(finals.shape[0]):
        seeds = finals[i]
        valid = seeds[~np.isnan(seeds)]
        mean = float(valid.mean()) if valid.size else math.nan
        std = float(valid.std()) if valid.size else math.nan
        rows.append(SweepRow(i, dataclasses.asdict(hparams_at(result.hparams, i)), mean, std,
                             int(valid.size), tuple(float(x) for x in seeds)))
    return rows


def format_sweep_table(rows: Sequence[SweepRow], fields: Optional[Sequence[str]] = None) -> str:
    """A plain-text table of `sweep_table` rows. `fields`: the hyperparameter columns; default the
    ones that vary across rows (all of them for a single row)."""
    if fields is None:
        fields = [f for f in HPARAM_FIELDS if len({r.hparams[f] for r in rows}) > 1]
        fields = fields or list(HPARAM_FIELDS)
    header = ["#", *fields, "final return", "seeds"]
    lines = [[str(r.index), *(f"{r.hparams[f]:.6g}" for f in fields),
              f"{r.mean:.2f} ± {r.std:.2f}", str(len(r.per_seed)) if r.num_seeds == len(r.per_seed)
              else f"{r.num_seeds}/{len(r.per_seed)}"] for r in rows]
    widths = [max(len(h), *(len(line[j]) for line in lines)) for j, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def rows_to_dicts(rows: Sequence[SweepRow]) -> list[dict]:
    """JSON-ready dicts of `sweep_table` rows."""
    return [{"index": r.index, "hparams": r.hparams, "final_return_mean": r.mean,
             "final_return_std": r.std, "num_seeds": r.num_seeds,
             "final_return_per_seed": list(r.per_seed)} for r in rows]


def save_sweep_npz(path, result: SweepResult) -> None:
    """Save a `SweepResult`'s metrics (`metrics/<field>`, `(n_settings, n_seeds, num_updates)`)
    and hyperparameters (`hparams/<field>`, `(n_settings,)`) as one .npz file."""
    arrays = {f"metrics/{k}": np.asarray(v) for k, v in result.metrics._asdict().items()}
    arrays.update({f"hparams/{k}": np.asarray(v)
                   for k, v in dataclasses.asdict(result.hparams).items()})
    np.savez(path, **arrays)
