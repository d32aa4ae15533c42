"""Command line: `purejaxppo train --env CartPole-v1 --num-seeds 8`, `purejaxppo sweep ...`,
`purejaxppo envs`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from typing import Any, NamedTuple, Optional

from purejaxppo.config import (HPARAM_FIELDS, ConfigError, PPOConfig, check_hparam_name,
                               field_help, parse_override, validate_config)


def _merge_option(changes: dict, name: str, option: str, value) -> None:
    """Put `option`'s value (None: not given) into `changes[name]`; ConfigError naming both when
    `--set name=...` gave a different value."""
    if value is None:
        return
    if name in changes and changes[name] != value:
        raise ConfigError(f"{option} {value!r} and --set {name}={changes[name]!r} disagree: "
                          f"give one of them")
    changes[name] = value


def config_changes(args) -> dict:
    """The config fields the command line sets: `--set`, `--env`, `--total-timesteps` (given two
    ways, they must agree)."""
    changes = dict(parse_override(s) for s in args.set)
    _merge_option(changes, "env_name", "--env", getattr(args, "env", None))
    _merge_option(changes, "total_timesteps", "--total-timesteps",
                  getattr(args, "total_timesteps", None))
    return changes


def build_config(args) -> PPOConfig:
    """The validated `PPOConfig` of the command line: `--preset` (default: the environment's
    own or family preset; "none": PPOConfig's defaults) changed by `--set`, `--env` and
    `--total-timesteps` (`presets.build_config`)."""
    from purejaxppo import presets

    return presets.build_config(getattr(args, "preset", None), **config_changes(args))


def announce_preset(args, show: bool = True) -> Optional[str]:
    """The preset `build_config(args)` starts from (`presets.resolve`; None: PPOConfig's
    defaults), saying so in one line when `show`."""
    from purejaxppo import presets

    preset, env = getattr(args, "preset", None), config_changes(args).get("env_name")
    if show:
        print(presets.describe_choice(preset, env), flush=True)
    return presets.resolve(preset, env)


def _check_output_path(option: str, path) -> None:
    """ConfigError naming `option` unless `path` can be written: its directory must exist."""
    if path is None:
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise ConfigError(f"{option} {path}: the directory {parent} {what}")
    if os.path.isdir(path):
        raise ConfigError(f"{option} {path}: is a directory, expected a file path")


def check_run_options(args, *, writes: bool = True) -> None:
    """Check the command-line options that are not config fields, before anything is compiled:
    `--num-seeds` and `--final-window` (integers >= 1) and, where this process `writes`, that
    the `--json`/`--npz` paths can be written."""
    if args.num_seeds <= 0:
        raise ConfigError(f"--num-seeds: must be a positive integer, got {args.num_seeds}")
    if args.final_window < 1:
        raise ConfigError(f"--final-window: must be >= 1 (the number of final updates whose "
                          f"finished episodes make the final return), got {args.final_window}")
    if writes:
        _check_output_path("--json", args.json)
        _check_output_path("--npz", getattr(args, "npz", None))


def enable_compile_cache(directory) -> None:
    """Turn on JAX's persistent compilation cache in `directory` (`--compile-cache DIR`): every
    program compiled from here on is written there, and a later process compiling the same
    program (same code, config, shapes, jax version and machine) loads it instead. The directory
    is created if needed; ConfigError naming the option when it cannot be. Call it before
    anything compiles. The thresholds are lowered so that every CPU program is cached (JAX's
    defaults skip programs that compile in under a second). JAX never caches a program with host
    callbacks: the progress bar is one, so the training program is cached only with
    `--no-progress`."""
    if directory is None:
        return
    if not directory:
        raise ConfigError("--compile-cache: expected a directory, got an empty string")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--compile-cache {directory}: cannot create the directory "
                          f"({err.strerror or err})") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"--compile-cache {directory}: the directory is not writable")
    import jax

    jax.config.update("jax_compilation_cache_dir", os.path.abspath(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def _start_compile_cache(args) -> None:
    """`enable_compile_cache(--compile-cache)`, with a note when the progress bar (a host
    callback) keeps JAX from caching the training program."""
    directory = getattr(args, "compile_cache", None)
    enable_compile_cache(directory)
    if directory is not None and not args.no_progress:
        print("note: --compile-cache: JAX does not cache programs with host callbacks, and the "
              "progress bar is one; add --no-progress to cache the training program",
              file=sys.stderr)


def json_safe(value):
    """`value` with every non-finite float (NaN, ±inf) replaced by None, recursively through
    dicts, lists and tuples, numpy/JAX arrays and scalars made Python lists and numbers: what
    `json.dump(..., allow_nan=False)` accepts (`null` where, e.g., no episode finished)."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy / JAX values
        value = value.tolist()
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str, summary: dict) -> None:
    """Write `summary` as strict JSON (`null`, never a bare NaN/Infinity)."""
    with open(path, "w") as f:
        json.dump(json_safe(summary), f, indent=2, allow_nan=False)


class Stopped(Exception):
    """Training ended early (signal: exit 130; non-finite values: exit 3) after saying why."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def chunk_size(args, num_updates: int, every: int) -> int:
    """Updates per compiled chunk: `--checkpoint-every`, else about 1/20 of the run rounded up to
    a multiple of the progress interval (so Ctrl-C is answered within ~5 % of the run)."""
    if getattr(args, "checkpoint_every", None) is not None:
        return args.checkpoint_every
    return every * max(1, -(-num_updates // (20 * every)))


def _check_run_dir(args) -> None:
    """Before compiling: `--checkpoint-every` >= 1, `--keep` >= 1, a new run never writes over
    another run's checkpoints, and `--resume` names a run directory."""
    from purejaxppo.checkpoint import list_checkpoints

    if getattr(args, "checkpoint_every", None) is not None and args.checkpoint_every < 1:
        raise ConfigError(f"--checkpoint-every: must be >= 1 updates, got {args.checkpoint_every}")
    if getattr(args, "keep", 1) < 1:
        raise ConfigError(f"--keep: must be >= 1, got {args.keep}")
    if getattr(args, "eval_every", None) is not None and args.eval_every < 1:
        raise ConfigError(f"--eval-every: must be >= 1 updates, got {args.eval_every}")
    if getattr(args, "eval_episodes", 1) < 1:
        raise ConfigError(f"--eval-episodes: must be >= 1, got {args.eval_episodes}")
    if getattr(args, "resume", None) and getattr(args, "checkpoint_dir", None):
        raise ConfigError("--resume DIR continues in DIR: do not give --checkpoint-dir as well")
    new = getattr(args, "checkpoint_dir", None)
    if new and list_checkpoints(new):
        raise ConfigError(f"--checkpoint-dir {new}: already holds checkpoints of another run; "
                          f"continue it with --resume {new}, or choose a new directory")
    if new and os.path.exists(new) and not os.path.isdir(new):
        raise ConfigError(f"--checkpoint-dir {new}: exists and is not a directory")


class Resume(NamedTuple):
    """What `--resume DIR` continues: the saved run's config, grid, seeds and newest checkpoint."""

    config: PPOConfig
    grid: Any  # HParams with (n_settings,) leaves
    num_seeds: int
    seed: int
    path: Any  # the checkpoint directory
    meta: dict


def _resume_setup(args) -> Resume:
    """The `Resume` of `--resume DIR`; ConfigError when a config field given on the command line
    differs from the saved run's."""
    from purejaxppo.checkpoint import (CheckpointError, config_from_dict, latest_checkpoint,
                                       read_meta)
    from purejaxppo.sweeps import stack_hparams

    path = latest_checkpoint(args.resume)
    meta = read_meta(path)
    try:
        config = config_from_dict(meta["config"])
        grid = stack_hparams([config.hparams().replace(**h) for h in meta["grid"]])
        num_seeds, seed = int(meta["num_seeds"]), int(meta["seed"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}/meta.json: incomplete ({type(err).__name__}: {err})") \
            from None
    saved = dataclasses.asdict(config)
    given = (dataclasses.asdict(build_config(args)) if getattr(args, "preset", None) is not None
             else config_changes(args))  # with --preset: every field
    differ = [f"{k}: saved {saved[k]!r}, given {v!r}" for k, v in given.items()
              if saved[k] != v]
    if differ:
        raise ConfigError(f"--resume {args.resume}: the command line changes the saved run's "
                          f"config ({'; '.join(differ)}); a resumed run keeps its config")
    return Resume(config, grid, num_seeds, seed, path, meta)


def _timed_sweep(config, args, grid, *, label: str, show: bool, resume: Optional[Resume] = None,
                 preset: Optional[str] = None):
    """Train `grid` x `--num-seeds` seeds over every device in compiled chunks, with a progress
    bar (drawn where `show`, unless `--no-progress`), metric logs and checkpoints in the run
    directory (`--checkpoint-dir` / `--resume`), and Ctrl-C / SIGTERM finishing the current
    chunk. Returns `(SweepResult, compile_s, run_s, updates_run)`: the run time excludes
    compilation, `updates_run` counts this session's updates (fewer than all after a resume).
    Raises `Stopped` after a signal (130) or non-finite values (3), having said why."""
    import jax

    from purejaxppo.checkpoint import config_to_dict, load_checkpoint, save_json, versions
    from purejaxppo.progress import ProgressReporter, progress_every
    from purejaxppo.runs import ChunkedRuns, StopFlag, stop_on_signals, train_in_chunks
    from purejaxppo.parallel import local_runs, padded_size, run_mesh
    from purejaxppo.sweeps import flatten_sweep, num_settings, sweep_result
    from purejaxppo.train import TrainResult, make_trainer

    validate_config(config)  # before the sizes below divide by it
    num_seeds, seed = (resume.num_seeds, resume.seed) if resume else (args.num_seeds, args.seed)
    mesh = run_mesh()
    every = progress_every(config.num_updates)
    total = num_settings(grid) * num_seeds
    # Each process's callbacks report the runs on its own devices; process 0 draws its share.
    runs_padded, mine = padded_size(total, mesh.devices.size), local_runs(total, mesh)
    reporter = ProgressReporter(mine, config.num_updates, config.batch_size, every,
                                show=show and not args.no_progress,
                                description=label + (f" ({mine}/{runs_padded} runs here)"
                                                     if mine < runs_padded else ""))
    trainer = make_trainer(config, callback=None if args.no_progress else reporter,
                           callback_every=every)
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    flat_keys, flat_hparams, grid, _ = flatten_sweep(keys, grid)
    runs = ChunkedRuns(trainer, flat_keys, flat_hparams, mesh=mesh)
    run_dir = args.resume if resume else getattr(args, "checkpoint_dir", None)
    if resume:
        runs.restore(load_checkpoint(resume.path, runs.abstract_state, runs.num_runs))
    else:
        runs.start()
    done = runs.updates_done
    meta = {"config": config_to_dict(config), "num_seeds": num_seeds, "seed": seed,
            "grid": [{k: float(v[i]) for k, v in dataclasses.asdict(grid).items()}
                     for i in range(num_settings(grid))],
            "key_impl": str(jax.random.key_impl(keys)), "num_runs": total,
            "preset": resume.meta.get("preset") if resume else preset}
    writer = jax.process_index() == 0  # with several processes, process 0 writes the run dir
    logs = _open_logs(args, run_dir, config, done) if writer else []
    if run_dir and not resume and writer:
        os.makedirs(run_dir, exist_ok=True)
        save_json(os.path.join(run_dir, "config.json"), config_to_dict(config))
        save_json(os.path.join(run_dir, "run.json"), {**meta, "versions": versions()})
    chunk = chunk_size(args, config.num_updates, every)
    start = time.perf_counter()
    for k in {min(chunk, config.num_updates - done), (config.num_updates - done) % chunk} - {0}:
        runs.compile(k)
    compile_s = time.perf_counter() - start
    flag = StopFlag()
    with reporter, stop_on_signals(flag):
        reporter.restart_clock()
        start = time.perf_counter()
        outcome = train_in_chunks(runs, num_updates=config.num_updates, chunk=chunk, stop=flag,
                                  run_dir=run_dir, meta=meta, keep=getattr(args, "keep", 3),
                                  logs=logs, after_chunk=_periodic_eval(args, runs, run_dir))
        run_s = time.perf_counter() - start
    for log in logs:
        getattr(log, "close", lambda: None)()
    _report_early_end(outcome, run_dir, runs, args)
    metrics = _all_metrics(run_dir, done, outcome.metrics)
    state = runs.host_state()
    out = TrainResult(jax.vmap(trainer.params)(state), metrics, state.obs_stats)
    return sweep_result(out, grid, num_seeds), compile_s, run_s, config.num_updates - done


def _periodic_eval(args, runs, run_dir):
    """`after_chunk` hook for `--eval-every N`: every N updates (checked at chunk ends), play
    `--eval-episodes` deterministic episodes with every run's current policy (one jitted
    program, observation statistics frozen) and append the mean return per run to
    `RUN_DIR/eval.jsonl` (or print it without a run directory). None when not asked for."""
    every = getattr(args, "eval_every", None)
    if not every:
        return None
    import jax
    import numpy as np

    from purejaxppo.evaluate import make_evaluator

    trainer = runs.trainer
    play = make_evaluator(trainer, num_episodes=args.eval_episodes, deterministic=True)
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

    return hook


def _open_logs(args, run_dir, config, done: int) -> list:
    """The metric logs of the run directory (JSONL/CSV, optional TensorBoard), resumed at `done`
    (rows past the checkpoint, from an interrupted chunk, are dropped)."""
    if not run_dir:
        return []
    from purejaxppo.logs import MetricsLog, TensorBoardLog

    logs = [MetricsLog(run_dir, config.batch_size, fmt=getattr(args, "log_format", "jsonl"),
                       resume_from=done if done else None)]
    if getattr(args, "tensorboard", False):
        logs.append(TensorBoardLog(run_dir, config.batch_size, resume_from=done or None))
    return logs


def _all_metrics(run_dir, done: int, new):
    """Metrics of the whole run: the updates before a resume (read back from the run's log)
    followed by this session's."""
    import numpy as np

    from purejaxppo.logs import read_metrics
    from purejaxppo.metrics import Metrics

    if not done:
        return new
    old = read_metrics(run_dir)
    before = Metrics(**{f: np.asarray(old[f])[:, :done] for f in Metrics._fields})
    if new is None:  # resumed a run that had already finished
        return before
    return Metrics(*(np.concatenate([a.astype(b.dtype), b], axis=1) for a, b in zip(before, new)))


def _report_early_end(outcome, run_dir, runs, args) -> None:
    """Say why training stopped early and raise `Stopped`; nothing when it ran to the end."""
    if outcome.diverged is not None:
        update, which = outcome.diverged
        kept = (f"; the last good checkpoint is {outcome.checkpoint}" if outcome.checkpoint
                else "")
        print(f"\nerror: non-finite loss, gradient norm or parameters at update {update} in "
              f"run(s) {which} (run = setting * num_seeds + seed); stopped{kept}",
              file=sys.stderr)
        raise Stopped(3)
    if outcome.stopped:
        where = (f"checkpoint {outcome.checkpoint}; resume with: purejaxppo "
                 f"{args.command} --resume {run_dir}" if outcome.checkpoint
                 else "no checkpoint (use --checkpoint-dir DIR to be able to resume)")
        print(f"\nstopped by signal after {runs.updates_done} updates; {where}",
              file=sys.stderr)
        raise Stopped(130)


def run_train(args) -> dict:
    """Train `--num-seeds` seeds of one config, sharded over every local device (a sweep of one
    setting), with a progress bar; print and optionally save the summary."""
    import jax
    import numpy as np

    _start_compile_cache(args)  # before anything compiles
    from purejaxppo.metrics import final_return
    from purejaxppo.sweeps import stack_hparams

    check_run_options(args)
    _check_run_dir(args)
    resume = _resume_setup(args) if args.resume else None
    config = resume.config if resume else build_config(args)
    preset = resume.meta.get("preset") if resume else announce_preset(args)
    grid = resume.grid if resume else stack_hparams([config.hparams()])
    result, compile_s, run_s, updates_run = _timed_sweep(config, args, grid,
                                                         label=config.env_name, show=True,
                                                         resume=resume, preset=preset)
    if resume:
        args.num_seeds, args.seed = resume.num_seeds, resume.seed
    result = jax.tree.map(lambda x: x[0], result)  # the single setting: (num_seeds, ...)
    final = final_return(result.metrics, window=args.final_window)  # NaN: no episode finished
    finished = final[~np.isnan(final)]
    summary = {
        "env": config.env_name, "num_seeds": args.num_seeds, "seed": args.seed,
        "env_steps_per_seed": config.env_steps_per_run, "num_updates": config.num_updates,
        "final_return_mean": float(finished.mean()) if finished.size else math.nan,
        "final_return_std": float(finished.std()) if finished.size else math.nan,
        "final_return_per_seed": [float(x) for x in final],
        "final_window_updates": args.final_window,
        "compile_s": compile_s, "run_s": run_s,
        "steps_per_second": args.num_seeds * updates_run * config.batch_size / run_s,
        "env_steps_this_session": args.num_seeds * updates_run * config.batch_size,
        "preset": preset, "config": dataclasses.asdict(config),
    }
    print(f"\n{config.env_name}: final return {summary['final_return_mean']:.1f} ± "
          f"{summary['final_return_std']:.1f} over {args.num_seeds} seeds "
          f"(episodes finished in the last {args.final_window} updates)")
    print(f"{summary['steps_per_second']:,.0f} env steps/s ({args.num_seeds} x "
          f"{updates_run * config.batch_size:,} steps in {run_s:.2f} s), compile "
          f"{compile_s:.2f} s")
    if args.json:
        write_json(args.json, summary)
    return summary


def parse_grid(texts) -> dict[str, list[float]]:
    """Parse repeated `--grid field=v1,v2,...` into `hparam_grid` keywords (in the order given)."""

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


def _start_distributed(args) -> None:
    """`jax.distributed.initialize` when asked to (before anything runs a JAX computation)."""
    asked = (args.coordinator is not None or args.num_processes is not None
             or args.process_id is not None or args.distributed)
    if asked:
        from purejaxppo.distributed import initialize

        initialize(args.coordinator, args.num_processes, args.process_id)


def run_sweep(args) -> dict:
    _start_distributed(args)
    _start_compile_cache(args)  # before anything compiles
    import jax

    from purejaxppo.distributed import is_main_process, process_info
    from purejaxppo.sweeps import (format_sweep_table, hparam_grid, num_settings, padded_size,
                                   rows_to_dicts, sweep_table)

    check_run_options(args, writes=is_main_process())
    _check_run_dir(args)
    resume = _resume_setup(args) if args.resume else None
    if resume and args.grid:
        raise ConfigError("--resume continues the saved grid: do not give --grid")
    config = resume.config if resume else build_config(args)
    preset = resume.meta.get("preset") if resume else announce_preset(args, is_main_process())
    grid = resume.grid if resume else hparam_grid(config, **parse_grid(args.grid))
    settings = num_settings(grid)
    result, compile_s, run_s, updates_run = _timed_sweep(
        config, args, grid, label=f"{config.env_name} sweep", show=is_main_process(),
        resume=resume, preset=preset)
    if resume:
        args.num_seeds, args.seed = resume.num_seeds, resume.seed
    runs = padded_size(settings * args.num_seeds, jax.device_count())
    rows = sweep_table(result, window=args.final_window)
    info = process_info()
    summary = {
        "env": config.env_name, "num_settings": settings, "num_seeds": args.num_seeds,
        "seed": args.seed, "env_steps_per_run": config.env_steps_per_run,
        "num_updates": config.num_updates, "final_window_updates": args.final_window,
        "rows": rows_to_dicts(rows), "compile_s": compile_s, "run_s": run_s,
        "steps_per_second": settings * args.num_seeds * updates_run * config.batch_size / run_s,
        "num_processes": info.process_count, "num_devices": info.global_devices,
        "padded_runs": runs, "progress": not args.no_progress,
        "preset": preset, "config": dataclasses.asdict(config),
    }
    if is_main_process():
        print(f"\n{config.env_name}: {settings} settings x {args.num_seeds} seeds, final return = "
              f"mean ± std over seeds of the return of episodes finished in the last "
              f"{args.final_window} updates")
        print(format_sweep_table(rows))
        print(f"{summary['steps_per_second']:,.0f} env steps/s ({settings * args.num_seeds} runs "
              f"x {updates_run * config.batch_size:,} steps in {run_s:.2f} s on "
              f"{info.global_devices} "
              f"device(s), {info.process_count} process(es)), compile {compile_s:.2f} s")
        if args.json:
            write_json(args.json, summary)
        if args.npz:
            save_sweep_npz(args.npz, result)
    return summary


def load_checkpoint_policy(run_dir):
    """`(trainer, SavedPolicy, meta, path)` of the newest checkpoint in `run_dir`: the policy of
    every run (leading run axis) with its observation statistics."""
    import jax

    from purejaxppo.checkpoint import (config_from_dict, latest_checkpoint,
                                       policy_from_checkpoint, read_meta)
    from purejaxppo.runs import keys_to_data
    from purejaxppo.train import make_trainer

    path = latest_checkpoint(run_dir)
    meta = read_meta(path)
    trainer = make_trainer(config_from_dict(meta["config"]))
    key = jax.random.key(0, impl=meta.get("key_impl", "threefry2x32"))
    abstract = jax.eval_shape(lambda k: keys_to_data(trainer.init(k)), key)
    return trainer, policy_from_checkpoint(path, trainer, abstract, int(meta["num_runs"])), \
        meta, path


def run_eval(args) -> dict:
    """Evaluate every run's policy of the newest checkpoint in RUN_DIR: `--episodes` episodes
    each (mode or sampled actions, observation statistics frozen), optionally a GIF."""
    import jax
    import numpy as np

    from purejaxppo.evaluate import make_evaluator

    if args.episodes < 1:
        raise ConfigError(f"--episodes: must be >= 1, got {args.episodes}")
    for option in ("json", "gif"):
        _check_output_path(f"--{option}", getattr(args, option))
    trainer, policy, meta, path = load_checkpoint_policy(args.run_dir)
    config, spec = trainer.config, trainer.spec
    play = make_evaluator(trainer, num_episodes=args.episodes, deterministic=args.deterministic,
                          record=bool(args.gif))
    num_runs = int(meta["num_runs"])
    keys = jax.random.split(jax.random.key(args.seed), num_runs)
    out = play(policy.params, policy.obs_stats, keys)
    returns = np.asarray(out.returns)
    mode = "deterministic (mode)" if args.deterministic else "sampled actions"
    print(f"{config.env_name}, {path} (update {meta['update']}), {args.episodes} episodes per "
          f"run, {mode}:")
    for i, row in enumerate(returns):
        print(f"  run {i}: {row.mean():.2f} ± {row.std():.2f}")
    print(f"  all runs: {returns.mean():.2f} ± {returns.mean(1).std():.2f} (std over runs)")
    summary = {"env": config.env_name, "checkpoint": str(path), "update": meta["update"],
               "episodes": args.episodes, "deterministic": args.deterministic,
               "return_mean_per_run": returns.mean(1), "return_std_per_run": returns.std(1),
               "return_mean": float(returns.mean()), "episode_length_mean": float(
                   np.asarray(out.lengths).mean())}
    if args.gif:
        from purejaxppo.render import render_episode, save_gif

        length = int(np.asarray(out.lengths)[0, 0])
        states = jax.tree.map(lambda x: np.asarray(x)[0], out.states)  # run 0, episode 0
        frames = render_episode(config.env_name, spec.env, spec.env_params, states, length)
        save_gif(frames, args.gif, fps=args.fps)
        print(f"GIF of run 0's first episode ({length} steps, return {returns[0, 0]:.2f}): "
              f"{args.gif}")
        summary["gif"], summary["gif_frames"] = args.gif, length
    if args.json:
        write_json(args.json, summary)
    return summary


def run_plot(args) -> dict:
    """Learning curve (mean ± std over runs) of a run directory's metrics log, as a PNG."""
    import pathlib

    from purejaxppo.logs import plot_run

    if not pathlib.Path(args.run_dir).is_dir():
        raise ConfigError(f"plot {args.run_dir}: no such run directory")
    if args.out:
        _check_output_path("--out", args.out)
    try:
        png = plot_run(args.run_dir, args.out, field=args.field)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise ConfigError(f"plot {args.run_dir}: {err}") from None
    print(f"learning curve: {png}")
    return {"png": str(png)}


# The module whose `PRESETS` fill the `preset` column of `purejaxppo envs` (see `env_presets`).
PRESETS_MODULE = "purejaxppo.presets"


def _preset_env(name: str, preset) -> str:
    """The environment of one `PRESETS` entry: its `env_name` (attribute or dict key), its `env`
    (an RLlib-style dict), else the entry's name itself."""
    env = getattr(preset, "env_name", None)
    if env is None and isinstance(preset, dict):
        env = preset.get("env_name", preset.get("env"))
    return env if isinstance(env, str) else name


def env_presets(env_name: str) -> str:
    """The `preset` column of `purejaxppo envs` for `env_name`: the comma-separated names of the
    presets for it in `PRESETS_MODULE` (its `presets_for(env_name)` in that order, the env's own
    preset first, if it has one; else the sorted keys of its `PRESETS` dict whose entry is for
    `env_name`, see `_preset_env`), or "-" when there are none or the module does not exist."""
    import importlib

    try:
        module = importlib.import_module(PRESETS_MODULE)
    except ModuleNotFoundError as err:
        if err.name == PRESETS_MODULE:
            return "-"
        raise
    if hasattr(module, "presets_for"):
        names = list(module.presets_for(env_name))
    else:
        names = sorted(name for name, preset in getattr(module, "PRESETS", {}).items()
                       if _preset_env(name, preset) == env_name)
    return ", ".join(names) or "-"


def _describe_action(space) -> str:
    """Discrete(n), or Box(shape, low, high) (per-dimension bounds as lists when they differ)."""
    if space.discrete:
        return f"Discrete({space.num_actions})"
    same = len(set(space.low)) == 1 and len(set(space.high)) == 1
    low, high = ((f"{space.low[0]:g}", f"{space.high[0]:g}") if same
                 else (str(list(space.low)), str(list(space.high))))
    return f"Box({space.shape}, {low}, {high})"


def env_rows() -> list[dict]:
    """One dict per gymnax environment (`gymnax.registered_envs`): action space, observation
    shape (or Discrete(n) observations), the network `network="auto"` picks, the presets, and
    `error` (None, or why the environment could not be made: MNISTBandit-bsuite is not made at
    all, since making it downloads a data set)."""
    from purejaxppo.envs import NEEDS_NETWORK, available_envs, make_env
    from purejaxppo.networks import network_kind

    rows = []
    for name in available_envs():
        row = {"env": name, "action_space": None, "num_actions": None, "action_shape": None,
               "action_low": None, "action_high": None, "obs_shape": None,
               "obs_categories": None, "observation": None, "network": None,
               "preset": env_presets(name), "error": None}
        if name in NEEDS_NETWORK:
            row["error"] = "not made: making it downloads a data set (needs the network)"
            rows.append(row)
            continue
        try:
            spec = make_env(name)
            network = network_kind(PPOConfig(env_name=name), spec)
        except Exception as err:  # an environment purejaxppo cannot take: say why, go on
            row["error"] = f"{type(err).__name__}: {err}"
            rows.append(row)
            continue
        space = spec.action_space
        row.update(action_space=_describe_action(space), num_actions=space.num_actions or None,
                   action_shape=list(space.shape), action_low=list(space.low) or None,
                   action_high=list(space.high) or None, obs_shape=list(spec.obs_shape),
                   obs_categories=spec.obs_categories or None, network=network,
                   observation=(f"Discrete({spec.obs_categories})" if spec.obs_categories
                                else str(spec.obs_shape)))
        rows.append(row)
    return rows


def format_env_table(rows: list[dict]) -> str:
    """`env_rows` as an aligned text table; an environment that could not be made shows why."""
    header = ("environment", "action space", "observation", "network (auto)", "preset")
    lines = [(r["env"], r["action_space"] or "-", r["observation"] or "-", r["network"] or "-",
              r["preset"]) for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    for row, line in zip(rows, lines):
        text = "  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
        out.append(text + (f"  ({row['error']})" if row["error"] else ""))
    return "\n".join(out)


def run_envs(args) -> list:
    """`purejaxppo envs`: every gymnax environment with its spaces, network and presets."""
    _check_output_path("--json", args.json)
    rows = env_rows()
    print(format_env_table(rows))
    if args.json:
        write_json(args.json, rows)
    return rows


def save_sweep_npz(path: str, result) -> None:
    """Save a `SweepResult`'s metrics (`metrics/<field>`, `(n_settings, n_seeds, num_updates)`)
    and hyperparameters (`hparams/<field>`, `(n_settings,)`) as one .npz file."""
    import numpy as np

    arrays = {f"metrics/{k}": np.asarray(v) for k, v in result.metrics._asdict().items()}
    arrays.update({f"hparams/{k}": np.asarray(v)
                   for k, v in dataclasses.asdict(result.hparams).items()})
    np.savez(path, **arrays)


def _add_run_options(p: argparse.ArgumentParser, default_seeds: int) -> None:
    p.add_argument("--env", default=None,
                   help="gymnax environment name (default: --set env_name=..., else CartPole-v1)")
    p.add_argument("--num-seeds", type=int, default=default_seeds)
    p.add_argument("--seed", type=int, default=0, help="base PRNG seed")
    p.add_argument("--total-timesteps", type=int, default=None)
    p.add_argument("--preset", default=None, metavar="NAME",
                   help="start from a named config (purejaxppo.presets; `purejaxppo envs` "
                   "lists them per environment; default: the environment's own preset, else "
                   "its family's; 'none': PPOConfig's defaults); --env, --total-timesteps and "
                   "--set change it")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any PPOConfig field, e.g. --set learning_rate=3e-4 (every "
                   "field is listed at the end of `purejaxppo train --help`)")
    p.add_argument("--final-window", type=int, default=10,
                   help="updates at the end whose finished episodes make the final return")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar and no host callback (for benchmarks)")
    p.add_argument("--json", default=None, help="write the summary here")
    p.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help="run directory: config.json, metrics.jsonl and checkpoints of the whole "
                   "train state of every run, saved after every chunk")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="updates per compiled chunk, i.e. between checkpoints (default: ~1/20 "
                   "of the run)")
    p.add_argument("--keep", type=int, default=3, help="checkpoints to keep (the newest)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run saved in DIR to its total_timesteps (config, seeds "
                   "and grid come from DIR; bitwise the same as an uninterrupted run)")
    p.add_argument("--log-format", choices=("jsonl", "csv"), default="jsonl",
                   help="per-update metrics file in the run directory")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard events to the run directory (needs tensorboardX)")
    p.add_argument("--eval-every", type=int, default=None, metavar="N",
                   help="every N updates (at chunk ends) evaluate every run's policy "
                   "deterministically; to RUN_DIR/eval.jsonl (off by default: it costs time)")
    p.add_argument("--eval-episodes", type=int, default=10, help="episodes per periodic eval")
    p.add_argument("--compile-cache", default=None, metavar="DIR",
                   help="JAX persistent compilation cache in DIR (created if needed): a later "
                   "run of the same program loads it instead of compiling; the training "
                   "program is cached only with --no-progress (JAX does not cache host "
                   "callbacks)")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="purejaxppo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train PPO on one environment over several seeds",
                       epilog=field_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_run_options(t, default_seeds=1)
    t.set_defaults(func=run_train)

    w = sub.add_parser(
        "sweep", help="seeds x hyperparameter grid as one program over every device/process",
        description="Train every setting of a hyperparameter grid (Cartesian product of the "
        "--grid values, the last --grid varying fastest) over --num-seeds seeds as one compiled "
        "program, sharded over all devices; with --coordinator/--num-processes/--process-id "
        "(or --distributed) over several processes via jax.distributed. Process 0 prints the "
        "table of final return (mean ± std over seeds) per setting.")
    _add_run_options(w, default_seeds=4)
    w.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2,...",
                   help="hyperparameter values to sweep, e.g. --grid learning_rate=1e-4,3e-4 "
                   f"--grid ent_coef=0,0.01 (fields: {', '.join(HPARAM_FIELDS)})")
    w.add_argument("--npz", default=None,
                   help="write the per-update metrics and hyperparameters of every run here")
    w.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="address of process 0 (jax.distributed coordinator)")
    w.add_argument("--num-processes", type=int, default=None, help="processes in the job")
    w.add_argument("--process-id", type=int, default=None, help="this process's index")
    w.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() and let JAX find the job "
                   "(JAX_COORDINATOR_ADDRESS, SLURM, Open MPI, ...)")
    w.set_defaults(func=run_sweep)

    e = sub.add_parser("eval", help="evaluate the newest checkpoint of a run directory",
                       description="Play --episodes episodes with every run's policy from the "
                       "newest checkpoint in RUN_DIR (jitted, all runs at once, observation "
                       "statistics frozen) and print the return mean ± std per run.")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--episodes", type=int, default=100)
    e.add_argument("--deterministic", action="store_true",
                   help="act with the distribution's mode instead of sampling")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--gif", default=None, help="render run 0's first episode to this GIF")
    e.add_argument("--fps", type=int, default=30)
    e.add_argument("--json", default=None, help="write the evaluation summary here")
    e.set_defaults(func=run_eval)

    pl = sub.add_parser("plot", help="learning curve PNG of a run directory")
    pl.add_argument("run_dir", metavar="RUN_DIR")
    pl.add_argument("--field", default="episode_return", help="metric to plot")
    pl.add_argument("--out", default=None, help="PNG path (default RUN_DIR/learning_curve.png)")
    pl.set_defaults(func=run_plot)

    v = sub.add_parser("envs", help="list every gymnax environment: spaces, network, presets",
                       description="Every gymnax environment (gymnax.registered_envs) with its "
                       "action space, observation shape, the network network=auto picks and "
                       "its presets; an environment that cannot be made is listed with the "
                       "reason.")
    v.add_argument("--json", default=None, metavar="PATH",
                   help="also write the list here (a JSON list of dicts)")
    v.set_defaults(func=run_envs)
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    try:
        args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Stopped as stop:
        return stop.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
