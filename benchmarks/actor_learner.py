"""Synchronous PPO, in-jit APPO and the asynchronous actor/learner mode, side by side.

    python benchmarks/actor_learner.py                         # CartPole-v1, 5e5 steps, 1 seed
    python benchmarks/actor_learner.py --seeds 4 --rounds 3 --total-timesteps 200000

Three modes at the same settings (`--set` applies to all), each in a fresh Python process with
two host devices (`--xla_force_host_platform_device_count=2`), rounds interleaved so that machine
drift hits all three:

* ppo:          `jax.jit(jax.vmap(train))`, the default objective and GAE;
* appo_in_jit:  the same program with APPO's learner, `policy_lag=1`, objective "appo", V-trace;
* actor_learner: `purejaxppo.actor_learner.run_actor_learner` with the APPO settings but
                `policy_lag=0` (its lag comes from the threads), actors on device 0, learner on 1.

Each reports env steps/second (all seeds, compilation excluded), compile time and the final return
per seed (mean return of the episodes of the last 10 updates); the actor/learner mode also its lag
histogram. JSON to `--out` (default benchmarks/results/actor_learner_cpu.json) with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
MODES = ("ppo", "appo_in_jit", "actor_learner")
APPO = {"policy_objective": "appo", "advantage_estimator": "vtrace"}


def worker(spec: dict) -> dict:
    """One measurement in this process (two host devices already forced by the parent)."""
    import time

    import jax
    import numpy as np

    from purejaxppo import make_train
    from purejaxppo.actor_learner import run_actor_learner
    from purejaxppo.config import PPOConfig, parse_override
    from purejaxppo.metrics import final_return

    changes = dict(parse_override(s) for s in spec["set"])
    config = PPOConfig(env_name=spec["env"], total_timesteps=spec["total_timesteps"], **changes)
    mode = spec["mode"]
    if mode != "ppo":
        config = config.replace(**APPO, policy_lag=1 if mode == "appo_in_jit" else 0)
    if mode == "actor_learner":
        out = run_actor_learner(config, num_seeds=spec["seeds"])
        return {"sps": out.steps_per_second, "compile_s": out.compile_s,
                "final_return": final_return(out.metrics).tolist(),
                "lag_histogram": np.bincount(out.lag).tolist()}
    keys = jax.random.split(jax.random.key(0), spec["seeds"])
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(make_train(config))).lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    result = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start
    return {"sps": spec["seeds"] * config.env_steps_per_run / run_s, "compile_s": compile_s,
            "final_return": final_return(jax.tree.map(np.asarray, result.metrics)).tolist()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--total-timesteps", type=int, default=500_000)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--out", default=str(HERE / "results" / "actor_learner_cpu.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    from peers import machine_info  # benchmarks/peers.py

    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "PYTHONPATH": str(HERE.parent)}
    runs = {mode: [] for mode in MODES}
    for r in range(args.rounds):
        order = MODES if r % 2 == 0 else MODES[::-1]
        for mode in order:
            spec = {"mode": mode, "env": args.env, "total_timesteps": args.total_timesteps,
                    "seeds": args.seeds, "set": args.set}
            out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                                 env=env, capture_output=True, text=True, check=True)
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
            last = runs[mode][-1]
            print(f"round {r} {mode:>14}: {last['sps']:>10,.0f} steps/s, compile "
                  f"{last['compile_s']:.1f} s, final return "
                  f"{statistics.fmean(last['final_return']):.1f}", flush=True)
    summary = {mode: {"median_sps": statistics.median(x["sps"] for x in rs),
                      "median_compile_s": statistics.median(x["compile_s"] for x in rs)}
               for mode, rs in runs.items()}
    for mode in MODES:
        ratio = summary[mode]["median_sps"] / summary["ppo"]["median_sps"]
        print(f"{mode:>14}: median {summary[mode]['median_sps']:>10,.0f} steps/s "
              f"({ratio:.2f}x ppo)")
    result = {"benchmark": "actor_learner", "machine": machine_info(), "args": vars(args),
              "summary": summary, "runs": runs}
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
