"""The training run from Python: `fit`, `resume`, `evaluate_run` (what `purejaxppo train` and
`sweep` do, as library calls that work in a script, a notebook or a worker thread).

    run = fit(config, num_seeds=8, run_dir="runs/cartpole", checkpoint_every=50)
    run.final_return()                   # (n_settings, n_seeds)
    run = resume("runs/cartpole")        # bitwise as an uninterrupted run
    ev = evaluate_run("runs/cartpole", episodes=32)

A run is seeds x hyperparameter settings over the device mesh, advanced in compiled chunks
(`runs.ChunkedRuns`, one compiled program per run: `chunk_size`). Between chunks the host logs
the metrics, checks for non-finite values (the NaN stop), checkpoints, evaluates and answers a
stop request (SIGINT/SIGTERM in the main thread, or the `stop` event). Everything a run could
refuse (options, config, sizes, the run directory, the saved run) is checked before compiling.

A run directory has one writer (`rundir.RunLock`); a new run takes only an empty directory (or
one of its own earlier runs with `overwrite=True`); each checkpoint records the metrics log's
fingerprint, checked before a resume.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import types
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import numpy as np

from purejaxppo.compile_cache import enable_compile_cache  # noqa: F401  (fit.enable_compile_cache)
from purejaxppo.checkpoint import (config_from_dict, config_to_dict, latest_intact_checkpoint,
                                   load_checkpoint, policy_from_checkpoint, read_meta, save_json,
                                   versions)
from purejaxppo.config import ConfigError, HParams, PPOConfig, validate_config
from purejaxppo.evaluate import EvalResult, make_evaluator
from purejaxppo.logs import (FORMATS, MetricsLog, TensorBoardLog, check_metrics_log, find_log,
                             json_safe, log_fingerprint, read_metrics)
from purejaxppo.metrics import Metrics, final_return
from purejaxppo.parallel import local_runs, padded_size, run_mesh
from purejaxppo.pbt import (PBT, Population, check_chunk_options, member_keys, pbt_from_meta,
                            run_options)
from purejaxppo.progress import ProgressReporter, progress_every
from purejaxppo.rundir import RunLock, check_fits, clean_stale_temp, prepare_new_run_dir
from purejaxppo.runs import (ChunkedRuns, ChunkOutcome, StopFlag, keys_to_data, stop_on_signals,
                             train_in_chunks)
from purejaxppo.sweeps import (SweepResult, flatten_sweep, hparam_grid, num_settings,
                               rows_to_dicts, stack_hparams, sweep_result, sweep_table)
from purejaxppo.train import TrainResult, Trainer, make_trainer

CHUNKS_PER_RUN = 20  # without checkpoint_every: about this many chunks (Ctrl-C answered in ~5 %)


class FitResult(NamedTuple):
    """What `fit` / `resume` return. Arrays are host numpy; runs are `(n_settings, n_seeds)`.

    metrics: `Metrics` of every update done, leaves `(n_settings, n_seeds, updates_done)`.
    params / obs_stats: the final state's network parameters / observation statistics (None
      without `normalize_obs`), leaves `(n_settings, n_seeds, ...)`.
    stopped: None (ran to the end), "signal" (SIGINT/SIGTERM or the `stop` event) or
      "nonfinite" (the NaN stop; `diverged` = (first bad update, [runs])).
    updates_run: updates done by this call (fewer than `updates_done` after a resume).
    compile_s / run_s: compilation and training time of this call.
    """

    config: PPOConfig
    hparams: HParams
    num_seeds: int
    seed: int
    metrics: Metrics
    params: Any
    obs_stats: Any
    run_dir: Optional[str]
    checkpoint: Optional[str]
    stopped: Optional[str]
    diverged: Optional[tuple]
    updates_done: int
    updates_run: int
    compile_s: float
    run_s: float
    steps_per_second: float
    preset: Optional[str]
    pbt: Optional[list] = None  # a PBT run's lineage rows (pbt.jsonl); hparams are the final ones

    @property
    def num_settings(self) -> int:
        return num_settings(self.hparams)

    def final_return(self, window: int = 10) -> np.ndarray:
        """`(n_settings, n_seeds)` mean return of the episodes finished in the last `window`
        updates (NaN where none finished)."""
        return final_return(self.metrics, window)

    def sweep_result(self) -> SweepResult:
        """The run as a `sweeps.SweepResult` (for `sweep_table` and friends)."""
        return SweepResult(self.params, self.metrics, self.hparams, self.obs_stats)

    def early_end(self, command: str = "train") -> Optional[str]:
        """Why the run stopped early and where it can continue (None: it ran to the end);
        `command` names the CLI command in the resume hint."""
        if self.stopped == "nonfinite":
            update, which = self.diverged
            kept = f"; the last good checkpoint is {self.checkpoint}" if self.checkpoint else ""
            return (f"error: non-finite loss, gradient norm or parameters at update {update} in "
                    f"run(s) {which} (run = setting * num_seeds + seed); stopped{kept}")
        if self.stopped == "signal":
            where = (f"checkpoint {self.checkpoint}; resume with: purejaxppo {command} --resume "
                     f"{self.run_dir} (or purejaxppo.resume({self.run_dir!r}))" if self.checkpoint
                     else "no checkpoint (give a run directory to be able to resume)")
            return (f"stopped by signal after {self.updates_done} of {self.config.num_updates} "
                    f"updates (the summary covers those); {where}")
        return None

    def summary(self, window: int = 10) -> dict:
        """The dict `purejaxppo train/sweep` print and write with `--json` (NaN -> null there)."""
        final = self.final_return(window)
        finished = final[~np.isnan(final)]
        runs = self.num_settings * self.num_seeds
        steps = runs * self.updates_run * self.config.batch_size
        return {
            "env": self.config.env_name, "num_settings": self.num_settings,
            "num_seeds": self.num_seeds, "seed": self.seed, "preset": self.preset,
            "env_steps_per_seed": self.config.env_steps_per_run,
            "env_steps_per_run": self.config.env_steps_per_run,
            "num_updates": self.config.num_updates, "updates_done": self.updates_done,
            "stopped_early": self.stopped, "diverged": self.diverged,
            "final_return_mean": float(finished.mean()) if finished.size else math.nan,
            "final_return_std": float(finished.std()) if finished.size else math.nan,
            "final_return_per_seed": (final[0] if self.num_settings == 1 else final).tolist(),
            "final_window_updates": window,
            "rows": rows_to_dicts(sweep_table(self.sweep_result(), window=window)),
            "compile_s": self.compile_s, "run_s": self.run_s,
            "steps_per_second": self.steps_per_second, "env_steps_this_session": steps,
            "run_dir": self.run_dir, "checkpoint": self.checkpoint,
            "config": dataclasses.asdict(self.config),
            **({"pbt": self.pbt} if self.pbt is not None else {}),
        }


# ----------------------------------------------------------------------------- options


def _positive(name: str, value, allow_none: bool = False) -> None:
    """ConfigError naming `name` unless `value` is an integer >= 1 (or None, if allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}: must be an integer >= 1, got {value!r}")


def check_options(*, num_seeds=1, seed=0, checkpoint_every=None, keep=3, eval_every=None,
                  eval_episodes=10, log_format="jsonl", progress=True) -> None:
    """ConfigError naming the option for a bad `fit`/`resume` option, before anything runs."""
    _positive("num_seeds", num_seeds)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed: must be an integer, got {seed!r}")
    _positive("checkpoint_every", checkpoint_every, allow_none=True)
    _positive("keep", keep)
    _positive("eval_every", eval_every, allow_none=True)
    _positive("eval_episodes", eval_episodes)
    if log_format not in FORMATS:
        raise ConfigError(f"log_format: expected one of {FORMATS}, got {log_format!r}")
    if not (isinstance(progress, bool) or callable(progress)):
        raise ConfigError(f"progress: expected True, False or a callable(update, metrics), "
                          f"got {progress!r}")


def divisors(n: int) -> list[int]:
    """The divisors of `n` >= 1, ascending."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def chunk_size(remaining: int, checkpoint_every: Optional[int] = None) -> int:
    """Updates per compiled chunk for a run with `remaining` updates left, chosen so that every
    chunk runs the same compiled program (one compilation per run):

    with `checkpoint_every` = N: the largest divisor of `remaining` in [N/2, N] (checkpoints never
    further apart than asked); without: the divisor in [W/2, 2W] nearest W = remaining/20 (Ctrl-C
    answered within ~5-10 % of the run). When `remaining` has no divisor there (a prime number
    of updates, say), N (or W) is returned and the last chunk is shorter: a second program."""
    if remaining < 1:
        return 1
    if checkpoint_every is not None:
        fits = [d for d in divisors(remaining) if checkpoint_every / 2 <= d <= checkpoint_every]
        return max(fits) if fits else min(checkpoint_every, remaining)
    wanted = max(1, round(remaining / CHUNKS_PER_RUN))
    fits = [d for d in divisors(remaining) if wanted / 2 <= d <= 2 * wanted]
    return min(fits, key=lambda d: (abs(math.log(d / wanted)), d)) if fits else wanted


def as_grid(config: PPOConfig, grid) -> HParams:
    """`fit`'s `grid` as stacked `HParams` `(n_settings,)`: None (the config's own setting), a
    dict `{hparam: [values]}` (Cartesian, `sweeps.hparam_grid`) or stacked `HParams`."""
    if grid is None:
        return stack_hparams([config.hparams()])
    if isinstance(grid, dict):
        return hparam_grid(config, **grid)
    if isinstance(grid, HParams):
        return grid
    raise ConfigError(f"grid: expected None, a dict {{hparam: [values]}} or HParams, "
                      f"got {type(grid).__name__}")


# ----------------------------------------------------------------------------- the run


class _Setup(NamedTuple):
    """Everything a run needs, checked, before anything is compiled or written."""

    config: PPOConfig
    grid: HParams
    num_seeds: int
    seed: int
    trainer: Trainer
    reporter: Optional[ProgressReporter]
    mesh: Any
    every: int
    pbt: Optional[PBT] = None


def _setup(config, grid, num_seeds, seed, progress, mesh, pbt=None) -> _Setup:
    """Validate, build the trainer (with the progress callback) and check the run fits the
    device memory (`rundir.check_fits`)."""
    validate_config(config)
    grid = as_grid(config, grid)
    mesh = run_mesh() if mesh is None else mesh
    every = progress_every(config.num_updates)
    total = num_settings(grid) * num_seeds
    reporter, callback = None, None
    if progress is True:
        # Each process's callbacks report the runs on its own devices; process 0 draws its share.
        padded, mine = padded_size(total, mesh.devices.size), local_runs(total, mesh)
        label = config.env_name + (" PBT" if pbt is not None else
                                   " sweep" if num_settings(grid) > 1 else "")
        reporter = ProgressReporter(mine, config.num_updates, config.batch_size, every,
                                    show=jax.process_index() == 0,
                                    description=label + (f" ({mine}/{padded} runs here)"
                                                         if mine < padded else ""))
        callback = reporter
    elif callable(progress):
        callback = progress
    trainer = make_trainer(config, callback=callback, callback_every=every)
    check_fits(trainer, total, mesh.devices.size)
    return _Setup(config, grid, num_seeds, seed, trainer, reporter, mesh, every, pbt)


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def fit(config: PPOConfig, *, num_seeds: int = 1, seed: int = 0, grid=None, run_dir=None,
        overwrite: bool = False, checkpoint_every: Optional[int] = None, keep: int = 3,
        eval_every: Optional[int] = None, eval_episodes: int = 10, log_format: str = "jsonl",
        tensorboard: bool = False, progress: Union[bool, Callable] = True, mesh=None,
        stop=None, preset: Optional[str] = None, pbt: Optional[PBT] = None) -> FitResult:
    """Train `grid` x `num_seeds` seeds of `config` over the device mesh in compiled chunks.

    run_dir: None (nothing written) or the run directory: locked for the run, it must be empty,
      new, or (with `overwrite=True`) one of purejaxppo's own earlier runs; it receives
      config.json, run.json, the metrics log (`log_format`, and TensorBoard events with
      `tensorboard`), eval.jsonl and a checkpoint after every chunk (the newest `keep` kept).
    checkpoint_every: updates per compiled chunk, i.e. between checkpoints (see `chunk_size`);
      saved with the run, `resume` keeps it.
    eval_every: every so many updates (at chunk ends) play `eval_episodes` deterministic
      episodes with every run's policy (to run_dir/eval.jsonl, or printed).
    progress: True (a rich bar), False, or a `callable(update_idx, metrics)` called from the
      program (as `make_train`'s callback).
    stop: an object with `is_set()` (a `threading.Event`): set, the run stops after its chunk.
      In the main thread SIGINT/SIGTERM do the same; a second one stops at once.
    preset: the name of the preset `config` came from (recorded with the run).
    pbt: a `pbt.PBT`: population-based training (docs/pbt.md); its population replaces `grid`
      and `num_seeds`, chunks (and checkpoints) come every `PBT.ready` updates.
    Every ConfigError (options, config, memory, run directory) comes before compiling.
    """
    check_options(num_seeds=num_seeds, seed=seed, checkpoint_every=checkpoint_every, keep=keep,
                  eval_every=eval_every, eval_episodes=eval_episodes, log_format=log_format,
                  progress=progress)
    if pbt is not None:
        validate_config(config)
        grid, checkpoint_every = run_options(config, pbt, seed=seed, grid=grid,
                                             num_seeds=num_seeds,
                                             checkpoint_every=checkpoint_every,
                                             eval_every=eval_every)
    setup = _setup(config, grid, num_seeds, seed, progress, mesh, pbt)
    lock = None
    if run_dir is not None and jax.process_index() == 0:  # process 0 writes the run dir
        lock = RunLock.acquire(run_dir, create=True)
    try:
        if lock is not None:
            prepare_new_run_dir(run_dir, overwrite=overwrite)
        return _train(setup, run_dir=None if run_dir is None else str(run_dir), resumed=None,
                      checkpoint_every=checkpoint_every, keep=keep, eval_every=eval_every,
                      eval_episodes=eval_episodes, log_format=log_format,
                      tensorboard=tensorboard, stop=stop, preset=preset)
    finally:
        if lock is not None:
            lock.release()


class SavedRun(NamedTuple):
    """What a run directory's newest intact checkpoint says about the run."""

    config: PPOConfig
    grid: HParams
    num_seeds: int
    seed: int
    path: Any  # the checkpoint directory
    meta: dict


def saved_run(run_dir) -> SavedRun:
    """The `SavedRun` of `run_dir`'s newest intact checkpoint (newer damaged ones are named in
    a note and passed over)."""
    path, skipped = latest_intact_checkpoint(run_dir)
    for bad, why in skipped:
        _note(f"skipped checkpoint {bad}: {why}")
    if skipped:
        _note(f"resuming from {path}, the newest intact checkpoint")
    meta = read_meta(path)
    config = config_from_dict(meta["config"])
    grid = stack_hparams([config.hparams().replace(**h) for h in meta["grid"]])
    return SavedRun(config, grid, meta["num_seeds"], meta["seed"], path, meta)


def _refuse_changes(run_dir, saved: SavedRun, config, num_seeds, seed) -> None:
    """ConfigError naming every config field (and num_seeds / seed) given that differs from the
    saved run's: a resumed run keeps its config and seeds."""
    values = dataclasses.asdict(saved.config)
    given = {} if config is None else (dataclasses.asdict(config) if isinstance(config, PPOConfig)
                                       else dict(config))
    unknown = sorted(set(given) - set(values))
    if unknown:
        raise ConfigError(f"resume {run_dir}: {unknown} are not PPOConfig fields")
    differ = [f"{k}: saved {values[k]!r}, given {v!r}" for k, v in given.items()
              if values[k] != v]
    if differ:
        raise ConfigError(f"resume {run_dir}: changes the saved run's config "
                          f"({'; '.join(differ)}); a resumed run keeps its config")
    for name, option, value, kept in (("num_seeds", "--num-seeds", num_seeds, saved.num_seeds),
                                      ("seed", "--seed", seed, saved.seed)):
        if value is not None and value != kept:
            raise ConfigError(f"resume {run_dir}: {name} (CLI {option}) {value} differs from the "
                              f"saved run's {kept}; a resumed run keeps its seeds")


def resume(run_dir, *, config=None, num_seeds: Optional[int] = None, seed: Optional[int] = None,
           checkpoint_every: Optional[int] = None, keep: int = 3,
           eval_every: Optional[int] = None, eval_episodes: int = 10,
           log_format: Optional[str] = None, tensorboard: bool = False,
           progress: Union[bool, Callable] = True, mesh=None, stop=None) -> FitResult:
    """Continue the run saved in `run_dir` to its `total_timesteps`, bitwise as an uninterrupted
    run, from its newest intact checkpoint (temporary files of a killed write are removed first).

    config / num_seeds / seed: optional, only checked: a `PPOConfig` (every field) or a dict of
    fields that must equal the saved run's (ConfigError naming each that differs).
    checkpoint_every: default the run's own; log_format: default the run's log's.
    The metrics log is checked against the checkpoint (rows, order, the fingerprint it saved)
    before anything is compiled. Other options as `fit`.
    """
    check_options(num_seeds=1 if num_seeds is None else num_seeds,
                  seed=0 if seed is None else seed, checkpoint_every=checkpoint_every, keep=keep,
                  eval_every=eval_every, eval_episodes=eval_episodes,
                  log_format=log_format or "jsonl", progress=progress)
    if not os.path.isdir(run_dir):
        raise ConfigError(f"resume {run_dir}: no such run directory")
    writer = jax.process_index() == 0
    lock = RunLock.acquire(run_dir) if writer else None
    try:
        if lock is not None:
            for path in clean_stale_temp(run_dir):
                _note(f"removed {path} (left by an interrupted write)")
        saved = saved_run(run_dir)
        _refuse_changes(run_dir, saved, config, num_seeds, seed)
        existing = find_log(run_dir)
        found = existing.suffix[1:] if existing is not None else None
        if log_format is not None and found is not None and log_format != found:
            raise ConfigError(f"log_format: the run logs to {existing.name}, given {log_format!r}")
        if writer:
            check_metrics_log(run_dir, saved.meta["num_runs"], saved.meta["update"],
                              fingerprint=saved.meta if "log_digest" in saved.meta else None)
        pbt = pbt_from_meta(saved.meta)
        if pbt is not None:
            check_chunk_options(pbt, checkpoint_every, eval_every)
        setup = _setup(saved.config, saved.grid, saved.num_seeds, saved.seed, progress, mesh, pbt)
        every = checkpoint_every if checkpoint_every is not None else saved.meta.get(
            "checkpoint_every")
        return _train(setup, run_dir=str(run_dir), resumed=saved, checkpoint_every=every,
                      keep=keep, eval_every=eval_every, eval_episodes=eval_episodes,
                      log_format=log_format or found or "jsonl", tensorboard=tensorboard,
                      stop=stop, preset=saved.meta.get("preset"))
    finally:
        if lock is not None:
            lock.release()


def _open_logs(run_dir, config: PPOConfig, done: int, log_format: str, tensorboard: bool):
    """The metric logs of the run directory (JSONL/CSV, optional TensorBoard), resumed at `done`
    (rows past the checkpoint, from an interrupted chunk, are dropped)."""
    if run_dir is None:
        return []
    logs = [MetricsLog(run_dir, config.batch_size, fmt=log_format, resume_from=done or None)]
    if tensorboard:
        logs.append(TensorBoardLog(run_dir, config.batch_size, resume_from=done or None))
    return logs


def _eval_hook(runs: ChunkedRuns, run_dir, every: Optional[int], episodes: int):
    """`after_chunk` hook for `eval_every`: every `every` updates (checked at chunk ends), play
    `episodes` deterministic episodes with every run's current policy (one jitted program,
    observation statistics frozen) and append the mean return per run to `run_dir/eval.jsonl`
    (or print it without a run directory); returns the `(n,)` returns (None when not due or not
    process 0). None when not asked for."""
    if not every:
        return None
    trainer = runs.trainer
    play = make_evaluator(trainer, num_episodes=episodes, deterministic=True)
    last = {"due": runs.updates_done // every}

    def hook(done: int) -> None:
        if done // every <= last["due"]:
            return
        last["due"] = done // every
        state = runs.host_state()  # collective: every process gathers, process 0 evaluates
        if jax.process_index() != 0:
            return
        keys = jax.random.split(jax.random.fold_in(jax.random.key(0), done), runs.num_runs)
        returns = np.asarray(play(jax.vmap(trainer.params)(state), state.obs_stats,
                                  keys).returns).mean(1)
        row = {"update": done, "env_steps": done * trainer.config.batch_size,
               "eval_return": returns.tolist()}
        if run_dir:
            with open(os.path.join(run_dir, "eval.jsonl"), "a") as f:
                f.write(json.dumps(json_safe(row), allow_nan=False) + "\n")
        else:
            print(f"eval at update {done}: {returns.mean():.2f} (mean over runs)")
        return returns

    return hook


def _all_metrics(run_dir, done: int, new):
    """Metrics of the whole run: the updates before a resume (read back from the run's log)
    followed by this call's."""
    if not done:
        return new
    old = read_metrics(run_dir)
    before = Metrics(**{f: np.asarray(old[f])[:, :done] for f in Metrics._fields})
    if new is None:  # resumed a run that had already finished
        return before
    return Metrics(*(np.concatenate([a.astype(b.dtype), b], axis=1) for a, b in zip(before, new)))


def _run_meta(setup: _Setup, keys, checkpoint_every, preset) -> dict:
    """What run.json and every checkpoint's meta.json record about the run."""
    grid = setup.grid
    return {"config": config_to_dict(setup.config), "num_seeds": setup.num_seeds,
            "seed": setup.seed, "preset": preset, "checkpoint_every": checkpoint_every,
            "grid": [{k: float(v[i]) for k, v in dataclasses.asdict(grid).items()}
                     for i in range(num_settings(grid))],
            "key_impl": str(jax.random.key_impl(keys)),
            "num_runs": num_settings(grid) * setup.num_seeds,
            **({"pbt": {"config": setup.pbt.to_dict()}} if setup.pbt is not None else {})}


def _train(setup: _Setup, *, run_dir: Optional[str], resumed: Optional[SavedRun],
           checkpoint_every, keep, eval_every, eval_episodes, log_format, tensorboard, stop,
           preset) -> FitResult:
    """Compile once, train in chunks with logs, checkpoints, the NaN stop, evaluation, progress
    and stop requests; gather the result."""
    config, trainer, reporter = setup.config, setup.trainer, setup.reporter
    keys = jax.random.split(jax.random.key(setup.seed), setup.num_seeds)
    flat_keys, flat_hparams, grid, _ = flatten_sweep(keys, setup.grid)
    if setup.pbt is not None:  # a sweep shares keys across settings; PBT members do not
        flat_keys = member_keys(setup.seed, setup.pbt.population)
    runs = ChunkedRuns(trainer, flat_keys, flat_hparams, mesh=setup.mesh)
    if resumed is not None:
        runs.restore(load_checkpoint(resumed.path, runs.abstract_state, runs.num_runs))
    else:
        runs.start()
    done, total = runs.updates_done, config.num_updates
    meta = _run_meta(setup, keys, checkpoint_every, preset)
    writer = jax.process_index() == 0
    evaluate_now = _eval_hook(runs, run_dir, eval_every, eval_episodes)
    population = None
    if setup.pbt is not None:  # the PBT step runs after each chunk, before its checkpoint
        population = Population(setup.pbt, runs, seed=setup.seed, total=total,
                                batch_size=config.batch_size, evaluate=evaluate_now,
                                run_dir=run_dir if writer else None)
        if resumed is not None:
            population.restore(resumed.meta)
        else:
            population.start()
    logs = _open_logs(run_dir, config, done, log_format, tensorboard) if writer else []
    if run_dir is not None and resumed is None and writer:
        save_json(os.path.join(run_dir, "config.json"), config_to_dict(config))
        save_json(os.path.join(run_dir, "run.json"), {**meta, "versions": versions()})

    def checkpoint_meta(updates: int) -> dict:
        return {**meta, **log_fingerprint(run_dir, meta["num_runs"] * updates),
                **(population.meta() if population is not None else {})}

    chunk = setup.pbt.ready if setup.pbt is not None else chunk_size(total - done,
                                                                     checkpoint_every)
    start = time.perf_counter()
    for k in {min(chunk, total - done), (total - done) % chunk} - {0}:
        runs.compile(k)
    compile_s = time.perf_counter() - start

    def after_chunk(updates: int) -> None:
        if evaluate_now is not None and population is None:  # PBT evaluates in its step
            evaluate_now(updates)
        if reporter is not None:
            reporter.set_done(updates, updates + chunk)

    flag = StopFlag(stop)
    try:
        with _showing(reporter), stop_on_signals(flag):
            if reporter is not None:
                reporter.set_done(done, done + chunk)
                reporter.restart_clock()
            start = time.perf_counter()
            outcome = train_in_chunks(runs, num_updates=total, chunk=chunk, stop=flag,
                                      run_dir=run_dir, meta=checkpoint_meta if logs else None,
                                      keep=keep, logs=logs, after_chunk=after_chunk,
                                      before_save=None if population is None else population.step)
            run_s = time.perf_counter() - start
    finally:
        for log in logs:
            getattr(log, "close", lambda: None)()
    return _result(setup, runs, outcome, grid, run_dir, done, compile_s, run_s, preset,
                   population)


class _showing:
    """`with reporter` when there is one (the live bar), else nothing."""

    def __init__(self, reporter):
        self.reporter = reporter

    def __enter__(self):
        return self.reporter.__enter__() if self.reporter is not None else None

    def __exit__(self, *exc):
        return self.reporter.__exit__(*exc) if self.reporter is not None else False


def _result(setup: _Setup, runs: ChunkedRuns, outcome: ChunkOutcome, grid, run_dir, done: int,
            compile_s: float, run_s: float, preset, population=None) -> FitResult:
    """The `FitResult` of a finished or stopped `_train` (a PBT run's hparams: the final ones)."""
    trainer, config = setup.trainer, setup.config
    if population is not None:
        grid = population.hparams()
    metrics = _all_metrics(run_dir, done, outcome.metrics)
    state = runs.host_state()
    flat = TrainResult(jax.vmap(trainer.params)(state), metrics, state.obs_stats, None)
    result = sweep_result(flat, grid, setup.num_seeds)
    updates_done = runs.updates_done
    updates_run = updates_done - done
    stopped = "nonfinite" if outcome.diverged else ("signal" if outcome.stopped else None)
    steps = runs.num_runs * updates_run * config.batch_size
    return FitResult(config, grid, setup.num_seeds, setup.seed, result.metrics, result.params,
                     result.obs_stats, run_dir, outcome.checkpoint, stopped, outcome.diverged,
                     updates_done, updates_run, compile_s, run_s,
                     steps / run_s if run_s > 0 else 0.0, preset,
                     None if population is None else population.rows)


# ----------------------------------------------------------------------------- evaluation


class LoadedRun(NamedTuple):
    """The policies of every run in a run directory's newest intact checkpoint."""

    trainer: Trainer
    policy: Any  # checkpoint.SavedPolicy, leaves with a leading run axis
    meta: dict
    path: Any  # the checkpoint directory


def load_run(run_dir) -> LoadedRun:
    """`LoadedRun` of `run_dir`'s newest intact checkpoint."""
    path, _ = latest_intact_checkpoint(run_dir)
    meta = read_meta(path)
    trainer = make_trainer(config_from_dict(meta["config"]))
    key = jax.random.key(0, impl=meta.get("key_impl", "threefry2x32"))
    abstract = jax.eval_shape(lambda k: keys_to_data(trainer.init(k)), key)
    policy = policy_from_checkpoint(path, trainer, abstract, meta["num_runs"])
    return LoadedRun(trainer, policy, meta, path)


def play_run(loaded: LoadedRun, *, episodes: int = 10, deterministic: bool = True,
             seed: int = 0, record: bool = False) -> EvalResult:
    """Play `episodes` episodes with every run's policy of `loaded` (jitted, all runs at once,
    observation statistics frozen): `EvalResult` of host arrays, leading axis the runs."""
    _positive("episodes", episodes)
    play = make_evaluator(loaded.trainer, num_episodes=episodes, deterministic=deterministic,
                          record=record)
    keys = jax.random.split(jax.random.key(seed), loaded.meta["num_runs"])
    out = play(loaded.policy.params, loaded.policy.obs_stats, keys)
    return jax.tree.map(np.asarray, out)


def eval_summary(loaded: LoadedRun, out: EvalResult, *, deterministic: bool) -> dict:
    """The dict `purejaxppo eval` prints and writes with `--json`: returns per run and overall."""
    returns = np.asarray(out.returns)
    return {"env": loaded.trainer.config.env_name, "checkpoint": str(loaded.path),
            "update": loaded.meta["update"], "episodes": returns.shape[1],
            "deterministic": deterministic, "return_mean_per_run": returns.mean(1),
            "return_std_per_run": returns.std(1), "return_mean": float(returns.mean()),
            "episode_length_mean": float(np.asarray(out.lengths).mean())}


def save_episode_gif(loaded: LoadedRun, out: EvalResult, path, fps: int = 30) -> int:
    """Render run 0's first episode of a `play_run(..., record=True)` to the GIF `path`; returns
    its length in steps (one frame per step)."""
    from purejaxppo.render import render_episode, save_gif  # PIL: only when a GIF is asked for

    spec = loaded.trainer.spec
    length = int(np.asarray(out.lengths)[0, 0])
    states = jax.tree.map(lambda x: np.asarray(x)[0], out.states)  # run 0, episode 0
    save_gif(render_episode(loaded.trainer.config.env_name, spec.env, spec.env_params, states,
                            length), path, fps=fps)
    return length


def evaluate_run(run_dir, *, episodes: int = 10, deterministic: bool = True, seed: int = 0,
                 record: bool = False) -> EvalResult:
    """Evaluate every run saved in `run_dir` (its newest intact checkpoint): `EvalResult` with
    `returns`/`lengths` `(num_runs, episodes)` (and, with `record`, run 0's first episode's
    env states for `render.render_episode`)."""
    _positive("episodes", episodes)
    return play_run(load_run(run_dir), episodes=episodes, deterministic=deterministic,
                    seed=seed, record=record)


class _CallableModule(types.ModuleType):
    """This module, callable as `fit`: `purejaxppo.fit(config, ...)` trains whether the name
    `purejaxppo.fit` is bound to the module (it is once the module is imported) or not."""

    def __call__(self, *args, **kwargs) -> FitResult:
        return fit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
