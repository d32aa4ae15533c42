"""Compile time of the run API (what `purejaxppo train` compiles: one chunk program per run) next
to plain `jax.jit(jax.vmap(make_train(config)))` of the same config, side by side.

    python benchmarks/compile_time.py --seeds 8 --rounds 3 --json compile_time.json

Each measurement runs in a fresh process (no in-process compilation cache), the sides alternate
round by round (plain, fit, fit+progress, plain, ...) so that a machine's drift hits all sides.
Per side: `compile_s` (plain: `lower(keys).compile()`; fit: the chunk program, as `purejaxppo
train` prints it) and `setup_s` (from the call to the first update: for fit also building the
trainer, the size check, the init program and placing the runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

SIDES = ("plain", "fit", "fit+progress")


def worker(side: str, num_seeds: int, total_timesteps) -> dict:
    """One measurement of `side` in this process."""
    import threading

    import jax

    import purejaxppo as pjp
    from purejaxppo import presets
    from purejaxppo.fast_paths import compiler_options

    changes = {} if total_timesteps is None else {"total_timesteps": total_timesteps}
    config = presets.build_config(None, **changes)
    jax.jit(lambda x: x + 1).lower(0).compile()  # JAX/XLA start-up, not part of either side
    start = time.perf_counter()
    if side == "plain":
        keys = jax.random.split(jax.random.key(0), num_seeds)
        options = compiler_options()
        jax.jit(jax.vmap(pjp.make_train(config)), compiler_options=options or None).lower(
            keys).compile()
        compile_s = setup_s = time.perf_counter() - start
        chunks = 1
    else:
        stop = threading.Event()
        stop.set()  # one chunk, then stop: the run's time is not measured here
        run = pjp.fit(config, num_seeds=num_seeds, progress=side == "fit+progress", stop=stop)
        compile_s, setup_s = run.compile_s, time.perf_counter() - start - run.run_s
        chunks = -(-config.num_updates // run.updates_done)
    return {"side": side, "compile_s": compile_s, "setup_s": setup_s,
            "num_updates": config.num_updates, "chunks": chunks}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--total-timesteps", type=int, default=None,
                        help="default: PPOConfig's (CartPole-v1 defaults)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", default=None, choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.seeds, args.total_timesteps)))
        return 0
    rows = []
    for r in range(args.rounds):
        for side in SIDES:
            cmd = [sys.executable, __file__, "--worker", side, "--seeds", str(args.seeds)]
            if args.total_timesteps is not None:
                cmd += ["--total-timesteps", str(args.total_timesteps)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = {**json.loads(out.stdout.strip().splitlines()[-1]), "round": r}
            rows.append(row)
            print(f"round {r} {side:13s} compile {row['compile_s']:6.2f} s  setup "
                  f"{row['setup_s']:6.2f} s", flush=True)
    summary = {side: {k: statistics.median(row[k] for row in rows if row["side"] == side)
                      for k in ("compile_s", "setup_s")} for side in SIDES}
    for side in SIDES[1:]:
        for k in ("compile_s", "setup_s"):
            summary[side][f"{k}_vs_plain"] = summary[side][k] / summary["plain"]["compile_s"]
    print(json.dumps(summary, indent=1))
    if args.json:
        from peers import machine_info  # benchmarks/peers.py, beside this script

        with open(args.json, "w") as f:
            json.dump({"machine": machine_info(), "rows": rows, "median": summary,
                       "seeds": args.seeds}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
