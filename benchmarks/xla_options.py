"""XLA compile options against `purejaxppo.compiler_options()`: the same vmapped PPO run compiled
several ways in one process, timed interleaved, compared pair by pair.

    python benchmarks/xla_options.py                      # 8 seeds, the options below
    python benchmarks/xla_options.py --seeds 1 --option xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT

Each `--option KEY=VALUE` (repeatable; default: `DEFAULT_OPTIONS`) is one variant: the library's
`compiler_options()` plus that XLA debug option, passed to `jax.jit(..., compiler_options=...)`
(no `XLA_FLAGS`, so every variant lives in the same process and sees the same machine state).
CartPole-v1 as `benchmarks/peers.py` sets it, `jax.jit(jax.vmap(make_train(config)))` over
`--seeds` keys. After one warm-up call each, `--rounds` rounds time every variant once, the order
reversed every other round; reported per variant: median env steps/s, the median over rounds of
its speed over the baseline's in the same round, and the final return (training episodes of the
last 10 updates, mean over seeds: the options may change rounding, hence results). JSON to
benchmarks/results/xla_options_<platform>.json.
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

from peers import machine_info  # noqa: E402  (benchmarks/peers.py)
from purejaxppo import PPOConfig, compiler_options, final_return, make_train  # noqa: E402

DEFAULT_OPTIONS = (
    "xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT",  # dots fused with neighbours
    "xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY_SLINKY",
    "xla_cpu_enable_concurrency_optimized_scheduler=false",  # on by default
)


def _parse(value: str):
    """An option's value as XLA wants it: true/false and numbers typed, anything else a string."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--total-timesteps", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--option", action="append", default=None, metavar="KEY=VALUE")
    parser.add_argument("--out", default=os.path.join(
        HERE, "results", f"xla_options_{jax.default_backend()}.json"))
    args = parser.parse_args(argv)
    variants = {"compiler_options()": compiler_options()}
    for item in args.option or DEFAULT_OPTIONS:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--option: KEY=VALUE expected, got {item!r}")
        variants[item] = {**compiler_options(), key: _parse(value)}
    config = PPOConfig(total_timesteps=args.total_timesteps, anneal_lr=False, adam_eps=1e-8)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    train = make_train(config)
    compiled, returns = {}, {}
    for name, options in variants.items():
        compiled[name] = jax.jit(jax.vmap(train), compiler_options=options).lower(keys).compile()
        result = jax.block_until_ready(compiled[name](keys))  # warm-up
        returns[name] = float(np.nanmean(np.asarray(final_return(result.metrics))))
    names = list(compiled)
    sps = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            jax.block_until_ready(compiled[name](keys))
            sps[name].append(args.seeds * config.env_steps_per_run / (time.perf_counter() - start))
    rows = []
    for name in names:
        paired = float(np.median(np.array(sps[name]) / np.array(sps[names[0]])))
        rows.append({"variant": name, "options": variants[name], "sps": sps[name],
                     "sps_median": float(np.median(sps[name])), "paired_ratio": paired,
                     "final_return": returns[name]})
        print(f"{name:80s} {np.median(sps[name]):10,.0f} steps/s  x{paired:.3f}  "
              f"final return {returns[name]:.1f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"benchmark": "xla_options", "seeds": args.seeds,
                   "env_steps_per_seed": config.env_steps_per_run, "rounds": args.rounds,
                   "machine": machine_info(), "jax": jax.__version__, "results": rows}, f,
                  indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
