"""Seeds on the CPU: one plain `jax.vmap` over n seeds against `parallel.vmap_in_groups` (the
grouping `train_seeds`, `sweep`, `fit` and, since 2026-12-04, `jax.vmap(make_train(config))`
itself use), compiled alike, timed interleaved in one process. The one-vmap side is
`make_train(config, group_vmap=False)`.

    python benchmarks/grouping.py                          # 64 seeds, groups of 16, 2e5 steps per seed
    python benchmarks/grouping.py --preset pendulum --env Pendulum-v1 --seeds 32 --repeats 1

Default: CartPole-v1 as `benchmarks/peers.py` sets it (constant learning rate, Adam eps 1e-8);
`--env` changes the environment, `--preset` starts from a preset instead. Prints env steps/s of every run, each program's
compile time, and the final returns of both programs (`metrics.final_return`, per seed: the
same seeds, so the two distributions should agree; the runs differ only in float rounding);
JSON to benchmarks/results/grouping_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from peers import machine_info  # noqa: E402
from purejaxppo import PPOConfig, compiler_options, final_return, make_train  # noqa: E402
from purejaxppo.parallel import vmap_in_groups  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--group", type=int, default=16)
    parser.add_argument("--total-timesteps", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default=None, help="start from this preset (default: "
                        "CartPole as peers.py sets it)")
    parser.add_argument("--env", default=None, help="environment (default: CartPole-v1, or the "
                        "preset's)")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "grouping_cpu.json"))
    args = parser.parse_args(argv)
    if args.seeds % args.group:
        parser.error(f"--group {args.group} must divide --seeds {args.seeds}")
    changes = {"total_timesteps": args.total_timesteps,
               **({"env_name": args.env} if args.env else {})}
    if args.preset is None:
        config = PPOConfig(anneal_lr=False, adam_eps=1e-8, **changes)
    else:
        from purejaxppo.presets import build_config

        config = build_config(args.preset, **changes)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    train = make_train(config, group_vmap=False)
    programs = {"plain_vmap": jax.vmap(train), f"groups_of_{args.group}":
                vmap_in_groups(train, args.group)}
    compiled, compile_s = {}, {}
    for name, fn in programs.items():
        start = time.perf_counter()
        compiled[name] = jax.jit(fn).lower(keys).compile(compiler_options())
        compile_s[name] = time.perf_counter() - start
    returns = {}
    for name, fn in compiled.items():  # warm-up; the final returns of each seed
        returns[name] = np.asarray(final_return(jax.block_until_ready(fn(keys)).metrics))
    sps = {name: [] for name in compiled}
    for _ in range(args.repeats):
        for name, fn in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(keys))
            sps[name].append(args.seeds * config.env_steps_per_run / (time.perf_counter() - start))
    for name, values in sps.items():
        print(f"{name:>14}: " + " / ".join(f"{v:,.0f}" for v in values)
              + f" steps/s (median {np.median(values):,.0f}), compile {compile_s[name]:.1f} s; "
              f"final return {np.nanmean(returns[name]):.1f} ± {np.nanstd(returns[name]):.1f}, "
              f"quartiles {np.nanpercentile(returns[name], [25, 50, 75]).round(1).tolist()}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"benchmark": "grouping", "seeds": args.seeds, "group": args.group,
                   "env_steps_per_seed": config.env_steps_per_run, "steps_per_second": sps,
                   "compile_s": compile_s, "env": config.env_name, "preset": args.preset,
                   "final_return": {k: v.tolist() for k, v in returns.items()},
                   "machine": machine_info(), "jax": jax.__version__}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
