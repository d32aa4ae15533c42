"""Training throughput against its ceiling: a rollout-only loop with the same env, network and sizes.

    python benchmarks/throughput.py                      # CartPole-v1 defaults, 1 and 16 seeds
    python benchmarks/throughput.py --seeds 1 --repeats 7 --set num_envs=8

For each seed count it measures

* compile_s: `jax.jit(jax.vmap(train)).lower(keys).compile()` of the full PPO `train`, with
  `purejaxppo.compiler_options()` as the CLI and sweeps compile (both programs alike);
* train_sps: env steps/second of the compiled `train` (all seeds together), compilation excluded;
* ceiling_sps: env steps/second of a rollout-only program, built from the package's own
  `purejaxppo.rollout.collect_rollout` with fixed initial parameters and scanned for the same
  `num_updates` iterations (env step + network forward + action sampling, no GAE, no update),
  jitted and vmapped over seeds exactly like `train`;
* ratio = train_sps / ceiling_sps: the share of the rollout-only speed that training keeps.

Training and ceiling runs are interleaved (train, ceiling, train, ceiling, ...) so machine noise
hits both. The table gives the best of `--repeats` runs of each and their ratio, plus the median
over repeats of the ratio of each adjacent (train, ceiling) pair, which is the more robust number on
a shared machine. Everything, including every single timing, is written as JSON (`--out`).
For low-noise numbers on a busy machine, pin the process to one core: `taskset -c 1 python ...`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from purejaxppo.config import ConfigError, PPOConfig, parse_override
from purejaxppo.presets import build_config
from purejaxppo.envs import make_env
from purejaxppo.fast_paths import compiler_options, fast_key, fast_paths_enabled, restore_key
from purejaxppo.networks import init_params, initial_carry, policy_step
from purejaxppo.rollout import collect_rollout, reset_envs
from purejaxppo.train import make_network, make_train

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                           "throughput_cpu.json")


def make_ceiling(config: PPOConfig):
    """`ceiling(key)`: what `train(key)` does minus learning.

    Same initialisation (params, env reset), then `num_updates` iterations of `collect_rollout`
    (same `num_envs`, `num_steps`, `rollout_unroll`) with the initial parameters held fixed. Every
    field of each rollout is reduced to a scalar per iteration and returned, so nothing the rollout
    computes (values, log-probs, final observations, episode statistics) can be dead-code
    eliminated: the loop pays for env step + network forward + action sampling, as training does.
    """
    spec = make_env(config.env_name)
    network = make_network(config, spec)

    def ceiling(key):
        init_key, env_key = jax.random.split(key)
        params = init_params(network, init_key, spec.obs_shape)
        runner = reset_envs(spec.env, spec.env_params, env_key, config.num_envs,
                            initial_carry(network, config.num_envs))

        act = functools.partial(policy_step, network)

        def iteration(runner, _):
            start_key = runner.key  # keys as `train` draws them (fast_paths.fast_key)
            runner = runner._replace(key=fast_key(start_key, fast_paths_enabled(config.fast_paths)))
            runner, traj = collect_rollout(runner, params, act, spec.env, spec.env_params,
                                           config.num_steps, config.rollout_unroll)
            runner = runner._replace(key=restore_key(runner.key, start_key))
            return runner, jax.tree.map(lambda x: x.astype(jnp.float32).sum(), traj)

        _, sums = jax.lax.scan(iteration, runner, None, length=config.num_updates)
        return sums

    return ceiling


def compile_vmapped(fn, keys):
    """`jax.jit(jax.vmap(fn))` compiled for `keys` with `compiler_options()`; (compiled, seconds)."""
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(fn), compiler_options=compiler_options() or None).lower(
        keys).compile()
    return compiled, time.perf_counter() - start


def _run(compiled, keys) -> float:
    start = time.perf_counter()
    jax.block_until_ready(compiled(keys))
    return time.perf_counter() - start


def measure(config: PPOConfig, num_seeds: int, repeats: int, seed: int = 0) -> dict:
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    train, compile_s = compile_vmapped(make_train(config), keys)
    ceiling, ceiling_compile_s = compile_vmapped(make_ceiling(config), keys)
    _run(train, keys), _run(ceiling, keys)  # warm-up: first-call allocations, page faults
    train_s, ceiling_s = [], []
    for _ in range(repeats):  # interleaved, so noise hits both
        train_s.append(_run(train, keys))
        ceiling_s.append(_run(ceiling, keys))
    steps = num_seeds * config.env_steps_per_run
    best_train, best_ceiling = steps / min(train_s), steps / min(ceiling_s)
    med_train, med_ceiling = steps / statistics.median(train_s), steps / statistics.median(ceiling_s)
    # Ratio of the runs paired in time, robust to slow drifts in machine load.
    paired = sorted(c / t for t, c in zip(train_s, ceiling_s))
    return {
        "num_seeds": num_seeds,
        "compile_s": compile_s,
        "ceiling_compile_s": ceiling_compile_s,
        "train_sps": best_train,
        "ceiling_sps": best_ceiling,
        "ratio": best_train / best_ceiling,
        "train_sps_median": med_train,
        "ceiling_sps_median": med_ceiling,
        "ratio_median": med_train / med_ceiling,
        "ratio_paired_median": statistics.median(paired),
        "train_run_s": train_s,
        "ceiling_run_s": ceiling_s,
    }


def parse_run_args(args) -> tuple[PPOConfig, list[int]]:
    """The config and seed counts from the common benchmark arguments (ConfigError names the bad
    one), validated before any timing."""
    changes = {k: v for k, v in (("env_name", args.env), ("total_timesteps",
                                                          args.total_timesteps)) if v is not None}
    config = build_config(getattr(args, "preset", None),
                          **{**dict(parse_override(s) for s in args.set), **changes})
    seed_counts = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seed_counts or any(n <= 0 for n in seed_counts):
        raise ConfigError(f"--seeds: positive integers expected, got {args.seeds!r}")
    if args.repeats <= 0:
        raise ConfigError(f"--repeats: must be positive, got {args.repeats}")
    make_train(config)
    return config, seed_counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default=None, help="gymnax environment name (default CartPole-v1)")
    parser.add_argument("--seeds", default="1,16",
                        help="comma-separated seed counts, each measured separately (default 1,16)")
    parser.add_argument("--total-timesteps", type=int, default=None,
                        help="env steps per seed (default: PPOConfig's, 500k)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs of each program per seed count (best is reported)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any PPOConfig field, e.g. --set num_envs=8")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    try:
        config, seed_counts = parse_run_args(args)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    device = jax.devices()[0]
    jax.jit(lambda x: x + 1).lower(0).compile()  # one-time JAX/XLA start-up, not part of compile_s
    print(f"{config.env_name}: {config.num_envs} envs x {config.num_steps} steps, "
          f"{config.update_epochs} epochs x {config.num_minibatches} minibatches, "
          f"{config.env_steps_per_run:,} steps/seed; {device.platform} "
          f"({getattr(device, 'device_kind', '')}, {os.cpu_count()} cpus), jax {jax.__version__}; "
          f"best of {args.repeats}")
    header = (f"{'seeds':>5}  {'compile s':>9}  {'train sps':>12}  {'ceiling sps':>12}  "
              f"{'ratio':>6}  {'ratio (paired median)':>21}")
    print(header)
    print("-" * len(header))
    rows = []
    for n in seed_counts:
        row = measure(config, n, args.repeats)
        rows.append(row)
        print(f"{n:>5}  {row['compile_s']:>9.2f}  {row['train_sps']:>12,.0f}  "
              f"{row['ceiling_sps']:>12,.0f}  {row['ratio']:>6.3f}  "
              f"{row['ratio_paired_median']:>21.3f}",
              flush=True)

    result = {
        "benchmark": "throughput",
        "platform": device.platform,
        "device": str(device),
        "device_kind": getattr(device, "device_kind", None),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "jax_version": jax.__version__,
        "jaxlib_version": _jaxlib_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "repeats": args.repeats,
        "timing": ("train and ceiling runs interleaved; *_sps and ratio: best of repeats; "
                   "*_median: medians; ratio_paired_median: median of ceiling_s/train_s pairs"),
        "env_steps_per_seed": config.env_steps_per_run,
        "num_updates": config.num_updates,
        "config": dataclasses.asdict(config),
        "results": rows,
    }
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")
    return 0


def _jaxlib_version():
    try:
        import jaxlib

        return jaxlib.__version__
    except Exception:  # pragma: no cover
        return None


if __name__ == "__main__":
    sys.exit(main())
