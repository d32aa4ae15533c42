"""Command line: `purejaxppo train|sweep|eval|plot|compare|envs`, parsing and printing over the run API
(`purejaxppo.fit`). Modules that import gymnax (whose import runs a JAX computation) are imported
inside the commands: `sweep --coordinator` must call `jax.distributed.initialize` first."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

from purejaxppo import presets
from purejaxppo.compile_cache import enable_compile_cache
from purejaxppo.config import HPARAM_FIELDS, ConfigError, PPOConfig, field_help, parse_override
from purejaxppo.distributed import initialize, is_main_process, process_info
from purejaxppo.logs import plot_run, write_json
from purejaxppo.parallel import padded_size
from purejaxppo.rundir import check_output_path
from purejaxppo.sweeps import parse_grid

EXIT_SIGNAL, EXIT_NONFINITE = 130, 3


def config_changes(args) -> dict:
    """The config fields the command line sets: `--set`, `--env`, `--total-timesteps` (given two
    ways, they must agree)."""
    changes = dict(parse_override(s) for s in args.set)
    for name, option, value in (("env_name", "--env", args.env),
                                ("total_timesteps", "--total-timesteps", args.total_timesteps)):
        if value is not None and changes.setdefault(name, value) != value:
            raise ConfigError(f"{option} {value!r} and --set {name}={changes[name]!r} disagree: "
                              f"give one of them")
    return changes


def build_config(args) -> PPOConfig:
    """The validated `PPOConfig` of the command line (`presets.build_config`)."""
    return presets.build_config(args.preset, **config_changes(args))


def _fit(args, grid_of, writes: bool):
    """Check the options, then `fit` a new run or `resume` (`--resume DIR`): the `FitResult`."""
    enable_compile_cache(args.compile_cache, "--compile-cache", progress=not args.no_progress)
    from purejaxppo.fit import fit, resume  # after the cache is on: this imports gymnax
    pbt = _pbt(args)
    if args.final_window < 1:
        raise ConfigError(f"--final-window: must be >= 1 updates, got {args.final_window}")
    for option, path in (("--json", args.json), ("--npz", getattr(args, "npz", None))):
        if writes:
            check_output_path(option, path)
    options = dict(checkpoint_every=args.checkpoint_every, keep=args.keep,
                   eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                   tensorboard=args.tensorboard, progress=not args.no_progress)
    if args.resume:
        if args.checkpoint_dir:
            raise ConfigError("--resume DIR continues in DIR: do not give --checkpoint-dir")
        if getattr(args, "grid", None) or pbt is not None:
            raise ConfigError("--resume continues the saved grid (or PBT population): do not "
                              "give --grid or --pbt")
        given = (build_config(args) if args.preset is not None  # with --preset: every field
                 else config_changes(args))
        return resume(args.resume, config=given, num_seeds=args.num_seeds, seed=args.seed,
                      log_format=args.log_format, **options)
    config, env = build_config(args), config_changes(args).get("env_name")
    if writes:  # which preset the config starts from, before anything compiles
        print(presets.describe_choice(args.preset, env), flush=True)
    seeds = args.num_seeds if args.num_seeds is not None else (
        1 if pbt is not None else args.default_seeds)
    return fit(config, num_seeds=seeds, seed=args.seed or 0, pbt=pbt,
               grid=None if pbt is not None else grid_of(config),
               run_dir=args.checkpoint_dir, overwrite=args.overwrite,
               log_format=args.log_format or "jsonl", preset=presets.resolve(args.preset, env),
               **options)


def _pbt(args):
    """The `pbt.PBT` of `sweep --pbt ...` (None without --pbt)."""
    if not getattr(args, "pbt", None):
        return None
    from purejaxppo.pbt import parse_pbt

    if args.grid:
        raise ConfigError("--pbt starts from its ranges: do not give --grid")
    return parse_pbt(args.pbt, args.pbt_bounds, population=args.population, ready=args.ready,
                     fraction=args.pbt_fraction, resample_probability=args.pbt_resample,
                     exploit=not args.no_exploit)


def _finish(args, run, summary: dict, text: str, writes: bool = True) -> int:
    """Print `text` and the timing, write `--json`, say why the run stopped early (if it did);
    the exit code (0, 130 after a signal, 3 after non-finite values)."""
    if writes:
        print(f"{text}\n{run.steps_per_second:,.0f} env steps/s ("
              f"{run.num_settings * run.num_seeds} runs x "
              f"{run.updates_run * run.config.batch_size:,} steps in {run.run_s:.2f} s), "
              f"compile {run.compile_s:.2f} s")
        if args.json:
            write_json(args.json, summary)
    message = run.early_end(args.command)
    if message:
        print(f"\n{message}", file=sys.stderr)
    return {None: 0, "signal": EXIT_SIGNAL, "nonfinite": EXIT_NONFINITE}[run.stopped]


def run_actor_learner_cli(args) -> int:
    """`train --actor-learner`: `actor_learner.run_actor_learner` (actors and learner on two
    devices at once); prints the final return, speed and lag, writes `--json`."""
    enable_compile_cache(args.compile_cache, "--compile-cache", progress=False)
    from purejaxppo.actor_learner import run_actor_learner

    for option, value in (("--eval-every", args.eval_every), ("--tensorboard", args.tensorboard),
                          ("--log-format", args.log_format),
                          ("--checkpoint-every", args.checkpoint_every),
                          ("--overwrite", args.overwrite)):
        if value:
            raise ConfigError(f"{option}: not available with --actor-learner (it checkpoints "
                              f"the learner at the end or on Ctrl-C, into --checkpoint-dir)")
    check_output_path("--json", args.json)
    config = build_config(args)
    if args.resume and args.checkpoint_dir:
        raise ConfigError("--resume DIR continues in DIR: do not give --checkpoint-dir")
    print(presets.describe_choice(args.preset, config_changes(args).get("env_name")), flush=True)
    run = run_actor_learner(config, num_seeds=args.num_seeds or 1, seed=args.seed or 0,
                            queue_size=args.queue_size, run_dir=args.resume or args.checkpoint_dir,
                            resume=bool(args.resume), keep=args.keep)
    summary = {**run.summary(config, args.final_window), "queue_size": args.queue_size}
    early = f", stopped early after {run.updates_done} updates" if run.stopped else ""
    print(f"\n{config.env_name}: final return {summary['final_return_mean']:.1f} ± "
          f"{summary['final_return_std']:.1f} over {run.state.update.shape[0]} runs{early}\n"
          f"{run.steps_per_second:,.0f} env steps/s, compile {run.compile_s:.2f} s; lag "
          f"(updates between acting and training): "
          f"{dict(enumerate(summary['lag_histogram']))}")
    if args.json:
        write_json(args.json, summary)
    return EXIT_SIGNAL if run.stopped else 0


def run_train(args) -> int:
    """Train `--num-seeds` seeds of one config over every local device, with a progress bar;
    print and optionally save the summary (also when stopped early)."""
    if args.actor_learner:
        return run_actor_learner_cli(args)
    run = _fit(args, lambda config: None, writes=True)
    summary = run.summary(window=args.final_window)
    early = f", stopped early after {run.updates_done} updates" if run.stopped else ""
    return _finish(args, run, summary, f"\n{run.config.env_name}: final return "
                   f"{summary['final_return_mean']:.1f} ± {summary['final_return_std']:.1f} over "
                   f"{run.num_seeds} seeds (episodes finished in the last {args.final_window} "
                   f"updates{early})")


def _start_distributed(args) -> None:
    """`jax.distributed.initialize` when asked to (before anything runs a JAX computation)."""
    if (args.coordinator is not None or args.num_processes is not None
            or args.process_id is not None or args.distributed):
        initialize(args.coordinator, args.num_processes, args.process_id)


def run_sweep(args) -> int:
    """Every setting of `--grid` x `--num-seeds` seeds as one program over every device and
    process; process 0 prints the table of final returns."""
    _start_distributed(args)
    from purejaxppo.sweeps import format_sweep_table, hparam_grid, save_sweep_npz, sweep_table

    grid, main_process = parse_grid(args.grid), is_main_process()
    run = _fit(args, lambda config: hparam_grid(config, **grid), writes=main_process)
    info, runs = process_info(), run.num_settings * run.num_seeds
    summary = {**run.summary(window=args.final_window), "num_processes": info.process_count,
               "num_devices": info.global_devices, "progress": not args.no_progress,
               "padded_runs": padded_size(runs, info.global_devices)}
    if main_process and args.npz:
        save_sweep_npz(args.npz, run.sweep_result())
    table = format_sweep_table(sweep_table(run.sweep_result(), window=args.final_window))
    if run.pbt is not None:
        from purejaxppo.pbt import describe

        table += "\n" + describe(run.pbt)
    return _finish(args, run, summary, f"\n{run.config.env_name}: {run.num_settings} settings x "
                   f"{run.num_seeds} seeds, final return = mean ± std over seeds of the return "
                   f"of episodes finished in the last {args.final_window} updates\n{table}\n"
                   f"on {info.global_devices} device(s), {info.process_count} process(es)",
                   writes=main_process)


def run_eval(args) -> int:
    """Evaluate every run's policy of the newest intact checkpoint in RUN_DIR: `--episodes`
    episodes each (mode or sampled actions, observation statistics frozen), optionally a GIF."""
    from purejaxppo.fit import eval_summary, load_run, play_run, save_episode_gif

    for option, value in (("--episodes", args.episodes), ("--fps", args.fps)):
        if value < 1:
            raise ConfigError(f"{option}: must be >= 1, got {value}")
    for option in ("json", "gif"):
        check_output_path(f"--{option}", getattr(args, option))
    loaded = load_run(args.run_dir)
    out = play_run(loaded, episodes=args.episodes, deterministic=args.deterministic,
                   seed=args.seed, record=bool(args.gif))
    summary = eval_summary(loaded, out, deterministic=args.deterministic)
    mode = "deterministic (mode)" if args.deterministic else "sampled actions"
    print(f"{summary['env']}, {loaded.path} (update {summary['update']}), {args.episodes} "
          f"episodes per run, {mode}:")
    for i, row in enumerate(out.returns):
        print(f"  run {i}: {row.mean():.2f} ± {row.std():.2f}")
    print(f"  all runs: {out.returns.mean():.2f} ± {out.returns.mean(1).std():.2f} (over runs)")
    if args.gif:
        length = save_episode_gif(loaded, out, args.gif, fps=args.fps)
        print(f"GIF of run 0's first episode ({length} steps, return {out.returns[0, 0]:.2f}): "
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
        from purejaxppo.pbt import is_pbt_run, plot_pbt  # imports JAX: only here

        plot = plot_pbt if is_pbt_run(args.run_dir) else plot_run
        png = plot(args.run_dir, args.out, field=args.field)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise ConfigError(f"plot {args.run_dir}: {err}") from None
    print(f"learning curve: {png}")
    return 0


def run_compare(args) -> int:
    """IQM of two run directories' per-run final returns, their difference and the probability
    of improvement, with stratified-bootstrap intervals (`purejaxppo.stats.compare_runs`)."""
    from purejaxppo.stats import compare_runs, format_comparison

    check_output_path("--json", args.json)
    result = compare_runs(args.run_a, args.run_b, window=args.final_window, reps=args.reps,
                          seed=args.seed)
    print(format_comparison(result))
    if args.json:
        write_json(args.json, result._asdict())
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


RUN_OPTIONS = [  # (flags, argparse keywords) of `train` and `sweep`
    ("--env", dict(help="gymnax environment (default: --set env_name=..., else CartPole-v1)")),
    ("--num-seeds", dict(type=int, help="seeds (default: train 1, sweep 4)")),
    ("--seed", dict(type=int, help="base PRNG seed (default 0)")),
    ("--total-timesteps", dict(type=int)),
    ("--preset", dict(metavar="NAME", help="start from a named config (`purejaxppo envs` lists "
                      "them; default: the env's own preset, else its family's; 'none': "
                      "PPOConfig's defaults); --env, --total-timesteps and --set change it")),
    ("--set", dict(action="append", default=[], metavar="FIELD=VALUE", help="override any "
                   "PPOConfig field, e.g. --set learning_rate=3e-4 (fields: see train --help)")),
    ("--final-window", dict(type=int, default=10,
                            help="updates at the end whose finished episodes make the return")),
    ("--no-progress", dict(action="store_true", help="no progress bar, no host callback")),
    ("--json", dict(help="write the summary here (also when stopped early)")),
    ("--checkpoint-dir", dict(metavar="DIR", help="run directory (new or empty; locked while "
                              "the run writes): config, metrics log, checkpoints")),
    ("--overwrite", dict(action="store_true", help="--checkpoint-dir may hold an earlier "
                         "purejaxppo run: replace it (nothing else is ever removed)")),
    ("--checkpoint-every", dict(type=int, metavar="N", help="updates per compiled chunk, i.e. "
                                "between checkpoints: the largest divisor of the updates left "
                                "in [N/2, N] (one compiled program; none: N and a shorter last "
                                "chunk); default ~1/20 of the run; saved with the run")),
    ("--keep", dict(type=int, default=3, help="checkpoints to keep (the newest)")),
    ("--resume", dict(metavar="DIR", help="continue the run saved in DIR to its total_timesteps,"
                      " bitwise as an uninterrupted run (its config, seeds, grid)")),
    ("--log-format", dict(choices=("jsonl", "csv"), help="metrics log format (default jsonl)")),
    ("--tensorboard", dict(action="store_true", help="also TensorBoard events (tensorboardX)")),
    ("--eval-every", dict(type=int, metavar="N", help="every N updates (at chunk ends) evaluate "
                          "every run deterministically, to RUN_DIR/eval.jsonl")),
    ("--eval-episodes", dict(type=int, default=10, help="episodes per periodic eval")),
    ("--compile-cache", dict(metavar="DIR", help="JAX persistent compilation cache in DIR (the "
                             "training program only with --no-progress)")),
]
SWEEP_OPTIONS = [
    ("--grid", dict(action="append", default=[], metavar="FIELD=V1,V2,...",
                    help=f"values to sweep, e.g. --grid learning_rate=1e-4,3e-4 (fields: "
                    f"{', '.join(HPARAM_FIELDS)})")),
    ("--npz", dict(help="write every run's per-update metrics and hyperparameters here")),
    ("--coordinator", dict(metavar="HOST:PORT", help="process 0's address (jax.distributed)")),
    ("--num-processes", dict(type=int, help="processes in the job")),
    ("--process-id", dict(type=int, help="this process's index")),
    ("--distributed", dict(action="store_true", help="jax.distributed.initialize() finds the "
                           "job (JAX_COORDINATOR_ADDRESS, SLURM, Open MPI, ...)")),
    ("--pbt", dict(action="append", default=[], metavar="FIELD=LOW:HIGH[:lin]|FIELD=V1,V2,...",
                   help="population-based training (docs/pbt.md) exploring FIELD from a "
                   "log-uniform (or :lin) range or a grid; replaces --grid and --num-seeds")),
    ("--pbt-bounds", dict(action="append", default=[], metavar="FIELD=LO:HI",
                          help="bounds explore keeps FIELD in (default its --pbt range)")),
    ("--population", dict(type=int, help="PBT members (default 8)")),
    ("--ready", dict(type=int, help="PBT: updates between exploit/explore steps (default 10)")),
    ("--pbt-fraction", dict(type=float, help="PBT: bottom/top fraction (default 0.25)")),
    ("--pbt-resample", dict(type=float, help="PBT: resample probability (default 0.25)")),
    ("--no-exploit", dict(action="store_true", help="PBT ablation: explore without copying")),
]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="purejaxppo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train PPO on one environment over several seeds",
                       epilog=field_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    w = sub.add_parser("sweep", help="seeds x hyperparameter grid as one program over every "
                       "device/process", description="Every setting of the --grid values' "
                       "Cartesian product (the last varying fastest) x --num-seeds seeds as one "
                       "program over all devices (and processes: --coordinator ...); process 0 "
                       "prints the final return per setting.")
    t.add_argument("--actor-learner", action="store_true", help="actors and learner at the same "
                   "time on two devices (host threads; needs two devices: on a CPU, XLA_FLAGS="
                   "--xla_force_host_platform_device_count=2); the lag is real and recorded")
    t.add_argument("--queue-size", type=int, default=1, help="with --actor-learner: rollouts "
                   "that may wait for the learner (default 1)")
    for p, func, seeds, options in ((t, run_train, 1, RUN_OPTIONS),
                                    (w, run_sweep, 4, RUN_OPTIONS + SWEEP_OPTIONS)):
        for flag, keywords in options:
            p.add_argument(flag, **keywords)
        p.set_defaults(func=func, default_seeds=seeds)
    e = sub.add_parser("eval", help="evaluate the newest checkpoint of a run directory")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--episodes", type=int, default=100)
    e.add_argument("--deterministic", action="store_true", help="act with the mode")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--gif", help="render run 0's first episode to this GIF")
    e.add_argument("--fps", type=int, default=30, help="GIF frames per second (>= 1)")
    e.add_argument("--json", help="write the evaluation summary here")
    e.set_defaults(func=run_eval)
    pl = sub.add_parser("plot", help="learning curve PNG of a run directory (a PBT run: returns "
                        "per member beside the hyperparameter schedules)")
    pl.add_argument("run_dir", metavar="RUN_DIR")
    pl.add_argument("--field", default="episode_return", help="metric to plot")
    pl.add_argument("--out", help="PNG path (default RUN_DIR/learning_curve.png)")
    pl.set_defaults(func=run_plot)
    cmp = sub.add_parser("compare", help="IQM difference of two run directories, with intervals")
    cmp.add_argument("run_a", metavar="RUN_DIR_A")
    cmp.add_argument("run_b", metavar="RUN_DIR_B")
    for flag, default in (("--final-window", 10), ("--reps", 2000), ("--seed", 0)):
        cmp.add_argument(flag, type=int, default=default)
    cmp.add_argument("--json", help="write the comparison here")
    cmp.set_defaults(func=run_compare)
    v = sub.add_parser("envs", help="every gymnax environment: spaces, network, presets")
    v.add_argument("--json", metavar="PATH", help="also write the list here (JSON)")
    v.set_defaults(func=run_envs)
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once (the chunk may still be running)
        print("\nstopped at once (second signal)", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(EXIT_SIGNAL)


if __name__ == "__main__":
    sys.exit(main())
