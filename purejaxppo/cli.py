"""Command line: `purejaxppo train --env CartPole-v1 --num-seeds 8`, `purejaxppo sweep ...`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from purejaxppo.config import ConfigError, PPOConfig

_FIELDS = {f.name: f for f in dataclasses.fields(PPOConfig)}


def parse_override(text: str) -> tuple[str, object]:
    """Parse `field=value` into a typed PPOConfig override (ConfigError names a bad field)."""
    if "=" not in text:
        raise ConfigError(f"--set expects field=value, got {text!r}")
    name, raw = text.split("=", 1)
    name = name.strip().replace("-", "_")
    if name not in _FIELDS:
        raise ConfigError(f"PPOConfig.{name}: no such field. Fields: {', '.join(_FIELDS)}")
    default = getattr(PPOConfig(), name)
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return name, raw.lower() in ("true", "1")
        if isinstance(default, int):
            return name, int(float(raw)) if float(raw).is_integer() else int(raw)
        if isinstance(default, float):
            return name, float(raw)
        if isinstance(default, tuple):
            return name, tuple(int(v) for v in raw.split(",") if v)
    except ValueError:
        raise ConfigError(f"PPOConfig.{name}: cannot parse {raw!r} as "
                          f"{type(default).__name__}") from None
    return name, raw


def build_config(args) -> PPOConfig:
    changes = dict(parse_override(s) for s in args.set)
    changes["env_name"] = args.env
    if args.total_timesteps is not None:
        changes["total_timesteps"] = args.total_timesteps
    return PPOConfig(**changes)


def _timed_sweep(config, args, grid, *, label: str, show: bool):
    """Compile and run `grid` x `--num-seeds` seeds over every device with a progress bar (drawn
    where `show`, unless `--no-progress`). Returns `(SweepResult, compile_s, run_s)`; the run
    time excludes compilation."""
    import jax

    from purejaxppo.progress import ProgressReporter, progress_every
    from purejaxppo.sweeps import compile_sweep, local_runs, num_settings, padded_size, run_mesh
    from purejaxppo.train import make_train

    if args.num_seeds <= 0:
        raise ConfigError(f"--num-seeds: must be a positive integer, got {args.num_seeds}")
    mesh = run_mesh()
    every = progress_every(config.num_updates)
    # Each process's callbacks report the runs on its own devices; process 0 draws its share.
    runs = padded_size(num_settings(grid) * args.num_seeds, mesh.devices.size)
    mine = local_runs(num_settings(grid) * args.num_seeds, mesh)
    reporter = ProgressReporter(mine, config.num_updates, config.batch_size, every,
                                show=show and not args.no_progress,
                                description=label + (f" ({mine}/{runs} runs here)"
                                                     if mine < runs else ""))
    train = make_train(config, callback=None if args.no_progress else reporter,
                       callback_every=every)
    keys = jax.random.split(jax.random.key(args.seed), args.num_seeds)
    start = time.perf_counter()
    compiled = compile_sweep(train, keys, grid, mesh=mesh)
    compile_s = time.perf_counter() - start
    with reporter:
        reporter.restart_clock()
        start = time.perf_counter()
        result = compiled()
        run_s = time.perf_counter() - start
    return result, compile_s, run_s


def run_train(args) -> dict:
    """Train `--num-seeds` seeds of one config, sharded over every local device (a sweep of one
    setting), with a progress bar; print and optionally save the summary."""
    import jax
    import numpy as np

    from purejaxppo.metrics import final_return
    from purejaxppo.sweeps import stack_hparams

    config = build_config(args)
    result, compile_s, run_s = _timed_sweep(config, args, stack_hparams([config.hparams()]),
                                            label=config.env_name, show=True)
    result = jax.tree.map(lambda x: x[0], result)  # the single setting: (num_seeds, ...)
    final = final_return(result.metrics, window=args.final_window)
    summary = {
        "env": config.env_name, "num_seeds": args.num_seeds, "seed": args.seed,
        "env_steps_per_seed": config.env_steps_per_run, "num_updates": config.num_updates,
        "final_return_mean": float(np.nanmean(final)), "final_return_std": float(np.nanstd(final)),
        "final_return_per_seed": [float(x) for x in final],
        "final_window_updates": args.final_window,
        "compile_s": compile_s, "run_s": run_s,
        "steps_per_second": args.num_seeds * config.env_steps_per_run / run_s,
        "config": dataclasses.asdict(config),
    }
    print(f"\n{config.env_name}: final return {summary['final_return_mean']:.1f} ± "
          f"{summary['final_return_std']:.1f} over {args.num_seeds} seeds "
          f"(episodes finished in the last {args.final_window} updates)")
    print(f"{summary['steps_per_second']:,.0f} env steps/s ({args.num_seeds} x "
          f"{config.env_steps_per_run:,} steps in {run_s:.2f} s), compile {compile_s:.2f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return summary


def parse_grid(texts) -> dict[str, list[float]]:
    """Parse repeated `--grid field=v1,v2,...` into `hparam_grid` keywords (in the order given)."""
    from purejaxppo.config import HPARAM_FIELDS

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


def _start_distributed(args) -> None:
    """`jax.distributed.initialize` when asked to (before anything runs a JAX computation)."""
    asked = (args.coordinator is not None or args.num_processes is not None
             or args.process_id is not None or args.distributed)
    if asked:
        from purejaxppo.distributed import initialize

        initialize(args.coordinator, args.num_processes, args.process_id)


def run_sweep(args) -> dict:
    _start_distributed(args)
    import jax

    from purejaxppo.distributed import is_main_process, process_info
    from purejaxppo.sweeps import (format_sweep_table, hparam_grid, num_settings, padded_size,
                                   rows_to_dicts, sweep_table)

    config = build_config(args)
    grid = hparam_grid(config, **parse_grid(args.grid))  # validated before any compilation
    settings = num_settings(grid)
    result, compile_s, run_s = _timed_sweep(config, args, grid, label=f"{config.env_name} sweep",
                                            show=is_main_process())
    runs = padded_size(settings * args.num_seeds, jax.device_count())
    rows = sweep_table(result, window=args.final_window)
    info = process_info()
    summary = {
        "env": config.env_name, "num_settings": settings, "num_seeds": args.num_seeds,
        "seed": args.seed, "env_steps_per_run": config.env_steps_per_run,
        "num_updates": config.num_updates, "final_window_updates": args.final_window,
        "rows": rows_to_dicts(rows), "compile_s": compile_s, "run_s": run_s,
        "steps_per_second": settings * args.num_seeds * config.env_steps_per_run / run_s,
        "num_processes": info.process_count, "num_devices": info.global_devices,
        "padded_runs": runs, "progress": not args.no_progress,
        "config": dataclasses.asdict(config),
    }
    if is_main_process():
        print(f"\n{config.env_name}: {settings} settings x {args.num_seeds} seeds, final return = "
              f"mean ± std over seeds of the return of episodes finished in the last "
              f"{args.final_window} updates")
        print(format_sweep_table(rows))
        print(f"{summary['steps_per_second']:,.0f} env steps/s ({settings * args.num_seeds} runs "
              f"x {config.env_steps_per_run:,} steps in {run_s:.2f} s on {info.global_devices} "
              f"device(s), {info.process_count} process(es)), compile {compile_s:.2f} s")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(summary, f, indent=2, default=float)
        if args.npz:
            save_sweep_npz(args.npz, result)
    return summary


def save_sweep_npz(path: str, result) -> None:
    """Save a `SweepResult`'s metrics (`metrics/<field>`, `(n_settings, n_seeds, num_updates)`)
    and hyperparameters (`hparams/<field>`, `(n_settings,)`) as one .npz file."""
    import numpy as np

    arrays = {f"metrics/{k}": np.asarray(v) for k, v in result.metrics._asdict().items()}
    arrays.update({f"hparams/{k}": np.asarray(v)
                   for k, v in dataclasses.asdict(result.hparams).items()})
    np.savez(path, **arrays)


def _add_run_options(p: argparse.ArgumentParser, default_seeds: int) -> None:
    p.add_argument("--env", default="CartPole-v1", help="gymnax environment name")
    p.add_argument("--num-seeds", type=int, default=default_seeds)
    p.add_argument("--seed", type=int, default=0, help="base PRNG seed")
    p.add_argument("--total-timesteps", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any PPOConfig field, e.g. --set learning_rate=3e-4")
    p.add_argument("--final-window", type=int, default=10,
                   help="updates at the end whose finished episodes make the final return")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar and no host callback (for benchmarks)")
    p.add_argument("--json", default=None, help="write the summary here")


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
                   "--grid ent_coef=0,0.01 (fields: learning_rate, gamma, gae_lambda, clip_eps, "
                   "vf_clip_eps, vf_coef, ent_coef, max_grad_norm)")
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
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    try:
        args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
