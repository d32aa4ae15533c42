"""Command line: `purejaxppo train --env CartPole-v1 --num-seeds 8`, `purejaxppo sweep ...`,
`purejaxppo eval RUN_DIR`, `purejaxppo plot RUN_DIR`, `purejaxppo envs`.

Argument parsing and printing over the library's run API (`purejaxppo.fit`). The modules that
import gymnax (the run API, the env table) are imported inside the commands: gymnax's import runs
a JAX computation, and `sweep --coordinator` must call `jax.distributed.initialize` first."""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

import jax

from purejaxppo import presets
from purejaxppo.config import HPARAM_FIELDS, ConfigError, PPOConfig, parse_override
from purejaxppo.logs import plot_run, write_json
from purejaxppo.rundir import check_output_path

_FIELDS = {f.name for f in dataclasses.fields(PPOConfig)}
EXIT_SIGNAL, EXIT_NONFINITE = 130, 3


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
    _merge_option(changes, "env_name", "--env", args.env)
    _merge_option(changes, "total_timesteps", "--total-timesteps", args.total_timesteps)
    return changes


def build_config(args) -> PPOConfig:
    """The validated `PPOConfig` of the command line (`presets.build_config`)."""
    return presets.build_config(args.preset, **config_changes(args))


def parse_grid(texts) -> dict[str, list[float]]:
    """Parse repeated `--grid field=v1,v2,...` into `hparam_grid` keywords (in the order given)."""
    grid: dict[str, list[float]] = {}
    for text in texts:
        if "=" not in text:
            raise ConfigError(f"--grid expects field=value,value,..., got {text!r}")
        name, raw = text.split("=", 1)
        name = name.strip().replace("-", "_")
        if name not in HPARAM_FIELDS:
            static = " (a static field: run one sweep per value)" if name in _FIELDS else ""
            raise ConfigError(f"--grid {name}: not a hyperparameter{static}. "
                              f"Valid: {', '.join(HPARAM_FIELDS)}")
        if name in grid:
            raise ConfigError(f"--grid {name}: given twice")
        try:
            grid[name] = [float(v) for v in raw.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--grid {name}: cannot parse {raw!r} as numbers") from None
        if not grid[name]:
            raise ConfigError(f"--grid {name}: no values")
    return grid


def _start_compile_cache(args) -> None:
    """`fit.enable_compile_cache(--compile-cache)`, with a note when the progress bar (a host
    callback) keeps JAX from caching the training program."""
    from purejaxppo.fit import enable_compile_cache

    enable_compile_cache(args.compile_cache, "--compile-cache")
    if args.compile_cache is not None and not args.no_progress:
        print("note: --compile-cache: JAX does not cache programs with host callbacks, and the "
              "progress bar is one; add --no-progress to cache the training program",
              file=sys.stderr)


def _fit(args, grid_of, writes: bool):
    """Check the options, then `fit` (new run) or `resume` (`--resume DIR`) as the command line
    says; returns the `FitResult`."""
    from purejaxppo.fit import fit, resume

    if args.num_seeds is not None and args.num_seeds < 1:
        raise ConfigError(f"--num-seeds: must be a positive integer, got {args.num_seeds}")
    if args.final_window < 1:
        raise ConfigError(f"--final-window: must be >= 1 (the number of final updates whose "
                          f"finished episodes make the final return), got {args.final_window}")
    for option, path in (("--json", args.json), ("--npz", getattr(args, "npz", None))):
        if writes:
            check_output_path(option, path)
    options = dict(checkpoint_every=args.checkpoint_every, keep=args.keep,
                   eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                   tensorboard=args.tensorboard, progress=not args.no_progress)
    if args.resume:
        if args.checkpoint_dir:
            raise ConfigError("--resume DIR continues in DIR: do not give --checkpoint-dir")
        if getattr(args, "grid", None):
            raise ConfigError("--resume continues the saved grid: do not give --grid")
        given = (build_config(args) if args.preset is not None  # with --preset: every field
                 else config_changes(args))
        return resume(args.resume, config=given, num_seeds=args.num_seeds, seed=args.seed,
                      log_format=args.log_format, **options)
    config = build_config(args)
    seeds = args.num_seeds if args.num_seeds is not None else args.default_seeds
    return fit(config, num_seeds=seeds, seed=args.seed or 0, grid=grid_of(config),
               run_dir=args.checkpoint_dir, overwrite=args.overwrite,
               log_format=args.log_format or "jsonl", preset=args.preset, **options)


def _say_how_it_ended(run, command: str) -> int:
    """Print why training stopped early (if it did); the exit code (0, 130 or 3)."""
    if run.stopped == "nonfinite":
        update, which = run.diverged
        kept = f"; the last good checkpoint is {run.checkpoint}" if run.checkpoint else ""
        print(f"\nerror: non-finite loss, gradient norm or parameters at update {update} in "
              f"run(s) {which} (run = setting * num_seeds + seed); stopped{kept}",
              file=sys.stderr)
        return EXIT_NONFINITE
    if run.stopped == "signal":
        where = (f"checkpoint {run.checkpoint}; resume with: purejaxppo {command} --resume "
                 f"{run.run_dir}" if run.checkpoint
                 else "no checkpoint (use --checkpoint-dir DIR to be able to resume)")
        print(f"\nstopped by signal after {run.updates_done} of {run.config.num_updates} "
              f"updates (the summary covers those); {where}", file=sys.stderr)
        return EXIT_SIGNAL
    return 0


def _timing(run, runs: int, where: str = "") -> str:
    return (f"{run.steps_per_second:,.0f} env steps/s ({runs} x "
            f"{run.updates_run * run.config.batch_size:,} steps in {run.run_s:.2f} s{where}), "
            f"compile {run.compile_s:.2f} s")


def run_train(args) -> int:
    """Train `--num-seeds` seeds of one config over every local device, with a progress bar;
    print and optionally save the summary (also when stopped early)."""
    _start_compile_cache(args)  # before anything compiles
    run = _fit(args, lambda config: None, writes=True)
    summary = run.summary(window=args.final_window)
    early = f", stopped early after {run.updates_done} updates" if run.stopped else ""
    print(f"\n{run.config.env_name}: final return {summary['final_return_mean']:.1f} ± "
          f"{summary['final_return_std']:.1f} over {run.num_seeds} seeds (episodes finished "
          f"in the last {args.final_window} updates{early})")
    print(_timing(run, run.num_seeds))
    if args.json:
        write_json(args.json, summary)
    return _say_how_it_ended(run, "train")


def _start_distributed(args) -> None:
    """`jax.distributed.initialize` when asked to (before anything runs a JAX computation)."""
    if (args.coordinator is not None or args.num_processes is not None
            or args.process_id is not None or args.distributed):
        from purejaxppo.distributed import initialize

        initialize(args.coordinator, args.num_processes, args.process_id)


def run_sweep(args) -> int:
    """Every setting of `--grid` x `--num-seeds` seeds as one program over every device and
    process; process 0 prints the table of final returns."""
    _start_distributed(args)
    _start_compile_cache(args)  # before anything compiles
    from purejaxppo.distributed import is_main_process, process_info
    from purejaxppo.parallel import padded_size
    from purejaxppo.sweeps import format_sweep_table, hparam_grid, save_sweep_npz, sweep_table

    grid = parse_grid(args.grid)
    run = _fit(args, lambda config: hparam_grid(config, **grid), writes=is_main_process())
    info, runs = process_info(), run.num_settings * run.num_seeds
    summary = {**run.summary(window=args.final_window), "num_processes": info.process_count,
               "num_devices": info.global_devices, "progress": not args.no_progress,
               "padded_runs": padded_size(runs, info.global_devices)}
    if is_main_process():
        print(f"\n{run.config.env_name}: {run.num_settings} settings x {run.num_seeds} seeds, "
              f"final return = mean ± std over seeds of the return of episodes finished in the "
              f"last {args.final_window} updates")
        print(format_sweep_table(sweep_table(run.sweep_result(), window=args.final_window)))
        print(_timing(run, runs, f" on {info.global_devices} device(s), "
                                 f"{info.process_count} process(es)"))
        if args.json:
            write_json(args.json, summary)
        if args.npz:
            save_sweep_npz(args.npz, run.sweep_result())
    return _say_how_it_ended(run, "sweep")


def run_eval(args) -> int:
    """Evaluate every run's policy of the newest intact checkpoint in RUN_DIR: `--episodes`
    episodes each (mode or sampled actions, observation statistics frozen), optionally a GIF."""
    from purejaxppo.fit import load_run, play_run
    from purejaxppo.render import render_episode, save_gif

    if args.episodes < 1:
        raise ConfigError(f"--episodes: must be >= 1, got {args.episodes}")
    if args.fps < 1:
        raise ConfigError(f"--fps: must be >= 1 frames per second, got {args.fps}")
    for option in ("json", "gif"):
        check_output_path(f"--{option}", getattr(args, option))
    loaded = load_run(args.run_dir)
    config, spec = loaded.trainer.config, loaded.trainer.spec
    out = play_run(loaded, episodes=args.episodes, deterministic=args.deterministic,
                   seed=args.seed, record=bool(args.gif))
    returns, update = out.returns, loaded.meta["update"]
    mode = "deterministic (mode)" if args.deterministic else "sampled actions"
    print(f"{config.env_name}, {loaded.path} (update {update}), {args.episodes} episodes per "
          f"run, {mode}:")
    for i, row in enumerate(returns):
        print(f"  run {i}: {row.mean():.2f} ± {row.std():.2f}")
    print(f"  all runs: {returns.mean():.2f} ± {returns.mean(1).std():.2f} (std over runs)")
    summary = {"env": config.env_name, "checkpoint": str(loaded.path), "update": update,
               "episodes": args.episodes, "deterministic": args.deterministic,
               "return_mean_per_run": returns.mean(1), "return_std_per_run": returns.std(1),
               "return_mean": float(returns.mean()),
               "episode_length_mean": float(out.lengths.mean())}
    if args.gif:
        length = int(out.lengths[0, 0])
        states = jax.tree.map(lambda x: x[0], out.states)  # run 0, episode 0
        frames = render_episode(config.env_name, spec.env, spec.env_params, states, length)
        save_gif(frames, args.gif, fps=args.fps)
        print(f"GIF of run 0's first episode ({length} steps, return {returns[0, 0]:.2f}): "
              f"{args.gif}")
        summary["gif"], summary["gif_frames"] = args.gif, length
    if args.json:
        write_json(args.json, summary)
    return 0


def run_plot(args) -> int:
    """Learning curve (mean ± std over runs) of a run directory's metrics log, as a PNG."""
    if not pathlib.Path(args.run_dir).is_dir():
        raise ConfigError(f"plot {args.run_dir}: no such run directory")
    check_output_path("--out", args.out)
    try:
        png = plot_run(args.run_dir, args.out, field=args.field)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise ConfigError(f"plot {args.run_dir}: {err}") from None
    print(f"learning curve: {png}")
    return 0


def run_envs(args) -> int:
    """`purejaxppo envs`: every gymnax environment with its spaces, network and presets."""
    from purejaxppo.envtable import env_rows, format_env_table

    check_output_path("--json", args.json)
    rows = env_rows()
    print(format_env_table(rows))
    if args.json:
        write_json(args.json, rows)
    return 0


def _add_run_options(p: argparse.ArgumentParser, default_seeds: int) -> None:
    add = p.add_argument
    add("--env", default=None,
        help="gymnax environment name (default: --set env_name=..., else CartPole-v1)")
    add("--num-seeds", type=int, default=None, help=f"seeds (default {default_seeds})")
    add("--seed", type=int, default=None, help="base PRNG seed (default 0)")
    add("--total-timesteps", type=int, default=None)
    add("--preset", default=None, metavar="NAME",
        help="start from a named config (purejaxppo.presets; `purejaxppo envs` lists them per "
        "environment); --env, --total-timesteps and --set change it")
    add("--set", action="append", default=[], metavar="FIELD=VALUE",
        help="override any PPOConfig field, e.g. --set learning_rate=3e-4")
    add("--final-window", type=int, default=10,
        help="updates at the end whose finished episodes make the final return")
    add("--no-progress", action="store_true",
        help="no progress bar and no host callback (for benchmarks)")
    add("--json", default=None, help="write the summary here (also when stopped early)")
    add("--checkpoint-dir", default=None, metavar="DIR",
        help="run directory (new or empty; locked while the run writes): config.json, "
        "metrics.jsonl and checkpoints of the whole train state of every run, after every chunk")
    add("--overwrite", action="store_true",
        help="--checkpoint-dir may hold an earlier purejaxppo run: replace it (nothing else is "
        "ever removed)")
    add("--checkpoint-every", type=int, default=None, metavar="N",
        help="updates per compiled chunk, i.e. between checkpoints: the largest divisor of the "
        "updates left in [N/2, N], so that every chunk is one compiled program (else N, with "
        "a shorter last chunk); default ~1/20 of the run; saved with the run")
    add("--keep", type=int, default=3, help="checkpoints to keep (the newest)")
    add("--resume", default=None, metavar="DIR",
        help="continue the run saved in DIR to its total_timesteps (config, seeds and grid come "
        "from DIR; bitwise the same as an uninterrupted run)")
    add("--log-format", choices=("jsonl", "csv"), default=None,
        help="per-update metrics file in the run directory (default jsonl)")
    add("--tensorboard", action="store_true",
        help="also write TensorBoard events to the run directory (needs tensorboardX)")
    add("--eval-every", type=int, default=None, metavar="N",
        help="every N updates (at chunk ends) evaluate every run's policy deterministically; "
        "to RUN_DIR/eval.jsonl (off by default: it costs time)")
    add("--eval-episodes", type=int, default=10, help="episodes per periodic eval")
    add("--compile-cache", default=None, metavar="DIR",
        help="JAX persistent compilation cache in DIR (created if needed); the training "
        "program is cached only with --no-progress (JAX does not cache host callbacks)")
    p.set_defaults(default_seeds=default_seeds)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="purejaxppo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train PPO on one environment over several seeds")
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
                       "newest intact checkpoint in RUN_DIR (jitted, all runs at once, "
                       "observation statistics frozen); print the return mean ± std per run.")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--episodes", type=int, default=100)
    e.add_argument("--deterministic", action="store_true",
                   help="act with the distribution's mode instead of sampling")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--gif", default=None, help="render run 0's first episode to this GIF")
    e.add_argument("--fps", type=int, default=30, help="GIF frames per second (>= 1)")
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
        return args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once
        print("\nstopped at once (second signal); the newest checkpoint, if any, is where "
              "--resume continues", file=sys.stderr)
        return EXIT_SIGNAL


if __name__ == "__main__":
    sys.exit(main())
