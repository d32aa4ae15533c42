"""Command line: `purejaxppo train --env CartPole-v1 --num-seeds 8`."""

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


def run_train(args) -> dict:
    import jax
    import numpy as np

    from purejaxppo.metrics import final_return
    from purejaxppo.progress import ProgressReporter
    from purejaxppo.train import make_train

    config = build_config(args)
    if args.num_seeds <= 0:
        raise ConfigError(f"--num-seeds: must be a positive integer, got {args.num_seeds}")
    every = max(1, config.num_updates // 200)
    reporter = ProgressReporter(args.num_seeds, config.num_updates, config.batch_size, every,
                                show=not args.no_progress, description=config.env_name)
    train = make_train(config, callback=None if args.no_progress else reporter,
                       callback_every=every)
    keys = jax.random.split(jax.random.key(args.seed), args.num_seeds)
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(keys).compile()
    compile_s = time.perf_counter() - start
    with reporter:
        reporter.restart_clock()
        start = time.perf_counter()
        result = jax.block_until_ready(compiled(keys))
        run_s = time.perf_counter() - start
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


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="purejaxppo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train PPO on one environment over several seeds")
    t.add_argument("--env", default="CartPole-v1", help="gymnax environment name")
    t.add_argument("--num-seeds", type=int, default=1)
    t.add_argument("--seed", type=int, default=0, help="base PRNG seed")
    t.add_argument("--total-timesteps", type=int, default=None)
    t.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any PPOConfig field, e.g. --set learning_rate=3e-4")
    t.add_argument("--final-window", type=int, default=10,
                   help="updates at the end whose finished episodes make the final return")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--json", default=None, help="write the summary here")
    t.set_defaults(func=run_train)
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
