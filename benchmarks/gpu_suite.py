"""The accelerator benchmark suite in one run: seeds scaling of CartPole-v1 from 1 to 4096 seeds and
of Breakout-MinAtar (CNN) at 1 and 64 seeds, each with `fast_paths` "auto" and "off", compile times
included; one JSON out. Started by `benchmarks/gpu_suite.sh` (which see); sized to finish in under
8 minutes on one GPU.

    python benchmarks/gpu_suite.py [--out DIR] [--size full|tiny]

Each part is a `benchmarks/scaling.py` measurement (the sharded `sweep` program against the
rollout-only ceiling, programs interleaved, best of `repeats`, compilation timed apart) run in this
process, written to DIR/<part>.json; DIR/gpu_suite.json gathers every row with its part, the
device, the wall time of each part and of the whole. `--size tiny` is the test suite's CPU smoke
run: the same parts at a few updates and 2 seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import scaling  # noqa: E402  (benchmarks/scaling.py)

BREAKOUT = ["--env", "Breakout-MinAtar", "--set", "network=cnn"]

# (part name, scaling.py arguments) per size. Full: CartPole at scaling.py's default 32,768 steps
# per seed (64 updates of 4 x 128), Breakout at the `minatar` preset's 64 x 128 batch, 8 updates.
SIZES = {
    "full": {
        "repeats": 3,
        "cartpole": ["--seeds", "1,4,16,64,256,1024,4096", "--total-timesteps", "32768"],
        "breakout": BREAKOUT + ["--seeds", "1,64", "--set", "num_envs=64",
                                "--total-timesteps", "65536"],
    },
    "tiny": {
        "repeats": 1,
        "cartpole": ["--seeds", "2", "--set", "num_steps=16", "--total-timesteps", "128"],
        "breakout": BREAKOUT + ["--seeds", "2", "--set", "num_envs=4", "--set", "num_steps=8",
                                "--total-timesteps", "64"],
    },
}
FAST_PATHS = ("auto", "off")


def parts(size: str) -> list[tuple[str, list[str]]]:
    """The suite's measurements: (name, scaling.py argv without --out/--repeats)."""
    spec = SIZES[size]
    return [(f"{env}_fast_{fast}", spec[env] + ["--set", f"fast_paths={fast}", "--no-progress"])
            for env in ("cartpole", "breakout") for fast in FAST_PATHS]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(HERE, "results", "gpu_suite"),
                        help="output directory (default benchmarks/results/gpu_suite)")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    summary = {"benchmark": "gpu_suite", "size": args.size, "parts": {}, "rows": []}
    for name, part_args in parts(args.size):
        print(f"== {name}", flush=True)
        path = os.path.join(args.out, f"{name}.json")
        part_start = time.perf_counter()
        code = scaling.main(part_args + ["--repeats", str(SIZES[args.size]["repeats"]),
                                         "--out", path])
        if code:
            print(f"error: part {name} failed (exit {code})", file=sys.stderr)
            return code
        with open(path) as f:
            result = json.load(f)
        summary["parts"][name] = {"wall_s": time.perf_counter() - part_start, "json": path,
                                  "env": result["config"]["env_name"],
                                  "fast_paths": result["config"]["fast_paths"]}
        for key in ("device_label", "platform", "jax_version", "git"):
            summary[key] = result[key]
        summary["rows"] += [{"part": name, "env": result["config"]["env_name"],
                             "fast_paths": result["config"]["fast_paths"],
                             "seeds": row["num_seeds"], "sweep_sps": row["sweep_sps"],
                             "ceiling_sps": row["ceiling_sps"], "ratio": row["ratio"],
                             "compile_s": row["compile_s"]} for row in result["results"]]
    summary["wall_s"] = time.perf_counter() - start
    with open(os.path.join(args.out, "gpu_suite.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"\n{summary['device_label']}, jax {summary['jax_version']}: "
          f"{summary['wall_s']:.0f} s in all")
    print(f"{'env':<18} {'fast_paths':<10} {'seeds':>5} {'steps/s':>14} {'ceiling':>14} "
          f"{'compile s':>9}")
    for row in summary["rows"]:
        print(f"{row['env']:<18} {row['fast_paths']:<10} {row['seeds']:>5} "
              f"{row['sweep_sps']:>14,.0f} {row['ceiling_sps']:>14,.0f} "
              f"{row['compile_s']['sweep']:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
