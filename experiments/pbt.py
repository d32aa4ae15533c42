"""PBT against a grid sweep of the same total environment steps (docs/pbt.md).

Both arms train 8 runs of one config for the same steps per run: the grid gives each run a fixed
setting (a log-spaced grid over the explored hyperparameters), PBT starts its 8 members from the
same ranges and exploits/explores every `--ready` updates. Reported per arm: the final return
(episodes finished in the last 10 updates) of the best run and the mean over the 8 runs, and a
deterministic evaluation (`--eval-episodes` episodes) of every run's final policy.

    nice -n 10 .venv/bin/python experiments/pbt.py --env Acrobot-v1 --total-timesteps 200000 \
        --seeds 0 1
    nice -n 10 .venv/bin/python experiments/pbt.py --env MountainCarContinuous-v0 \
        --total-timesteps 100000 --seeds 0

Results go to experiments/results/pbt_<env>.json (seeds added to an earlier record of the same
experiment) and pbt_<env>_seed<s>.png (returns beside the schedules); run directories to
--runs-dir.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import purejaxppo  # noqa: E402
from purejaxppo import presets  # noqa: E402
from purejaxppo.fit import evaluate_run  # noqa: E402
from purejaxppo.logs import write_json  # noqa: E402
from purejaxppo.pbt import PBT, Space, copies, plot_pbt  # noqa: E402

# The explored hyperparameters per env: {field: (low, high, log, grid points)}.
SEARCH = {
    "Acrobot-v1": {"learning_rate": (1e-4, 3e-2, True, 8)},
    "Breakout-MinAtar": {"learning_rate": (1e-4, 1e-2, True, 4),
                         "ent_coef": (1e-3, 3e-2, True, 2)},
    "MountainCarContinuous-v0": {"learning_rate": (3e-4, 3e-3, True, 2),
                                 "ent_coef": (1e-3, 1e-1, True, 2),
                                 "gamma": (0.99, 0.999, False, 2)},
}


def grid_of(search: dict) -> dict:
    """The grid arm: each field's points (log- or linearly spaced) in its range."""
    return {name: (np.geomspace(lo, hi, n) if log else np.linspace(lo, hi, n)).tolist()
            for name, (lo, hi, log, n) in search.items()}


def pbt_of(search: dict, ready: int, population: int) -> PBT:
    """The PBT arm: the same ranges, sampled (log-)uniformly, explore kept inside them."""
    return PBT({name: Space(lo, hi, log=log) for name, (lo, hi, log, _) in search.items()},
               population=population, ready=ready)


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                     if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown"
    return f"{model}, {os.cpu_count()} logical CPUs"


def arm_summary(run, run_dir, episodes: int) -> dict:
    """Best and mean final return over the 8 runs, and their deterministic evaluation."""
    final = run.final_return().reshape(-1)
    evaluated = evaluate_run(run_dir, episodes=episodes).returns.mean(1)
    return {"final_return_per_run": final.tolist(), "final_best": float(np.nanmax(final)),
            "final_mean": float(np.nanmean(final)), "eval_per_run": evaluated.tolist(),
            "eval_best": float(evaluated.max()), "eval_mean": float(evaluated.mean()),
            "run_s": run.run_s, "compile_s": run.compile_s}


def table(out_dir) -> str:
    """A markdown table of every `pbt_<env>.json` in `out_dir`: per arm, mean ± std over seeds
    of the best run's and the 8 runs' mean final return and deterministic evaluation."""
    lines = ["| env (steps per run) | seeds | arm | final, best run | final, mean of runs | "
             "eval, best run | eval, mean of runs |", "|---|---|---|---|---|---|---|"]
    for env in sorted(SEARCH):
        path = os.path.join(out_dir, f"pbt_{env}.json")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            record = json.load(f)
        seeds = sorted(record["seeds"], key=int)
        for arm in ("grid", "pbt"):
            cells = []
            for key in ("final_best", "final_mean", "eval_best", "eval_mean"):
                v = np.asarray([record["seeds"][s][arm][key] for s in seeds])
                cells.append(f"{v.mean():.1f} ± {v.std():.1f}")
            name = "grid (8 fixed settings)" if arm == "grid" else "PBT (8 members)"
            lines.append(f"| {env} ({record['total_timesteps_per_run']:,}) | {', '.join(seeds)} "
                         f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", action="store_true", help="print the results table, run nothing")
    parser.add_argument("--env", choices=sorted(SEARCH))
    parser.add_argument("--total-timesteps", type=int, help="per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--ready", type=int, default=None, help="default: 1/10 of the updates")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--out-dir", default=os.path.join(os.path.dirname(__file__), "results"))
    parser.add_argument("--runs-dir", default="/tmp/purejaxppo_pbt_runs",
                        help="run directories (checkpoints: not kept in the repository)")
    args = parser.parse_args()
    if args.table:
        print(table(args.out_dir))
        return
    if args.env is None or args.total_timesteps is None:
        parser.error("--env and --total-timesteps are required (or --table)")

    from purejaxppo.config import parse_override

    config = presets.for_env(args.env).replace(
        total_timesteps=args.total_timesteps, **dict(parse_override(s) for s in args.set))
    search = SEARCH[args.env]
    grid = grid_of(search)
    population = int(np.prod([len(v) for v in grid.values()]))
    ready = args.ready or max(1, config.num_updates // 10)
    runs_root = os.path.join(args.runs_dir, args.env)
    record = {"env": args.env, "machine": machine(), "config": dataclasses.asdict(config),
              "population": population, "ready": ready, "grid": grid, "search": search,
              "total_timesteps_per_run": config.env_steps_per_run, "seeds": {}}
    path = os.path.join(args.out_dir, f"pbt_{args.env}.json")
    if os.path.isfile(path):  # add seeds to an earlier record of the same experiment
        with open(path) as f:
            earlier = json.load(f)
        if all(earlier.get(k) == json.loads(json.dumps(record[k])) for k in
               ("config", "population", "ready", "grid")):
            record["seeds"] = earlier["seeds"]
    for seed in args.seeds:
        out = {}
        for arm in ("grid", "pbt"):
            run_dir = os.path.join(runs_root, f"{arm}_seed{seed}")
            start = time.time()
            options = (dict(pbt=pbt_of(search, ready, population)) if arm == "pbt"
                       else dict(grid=grid, checkpoint_every=ready))
            run = purejaxppo.fit(config, seed=seed, run_dir=run_dir, overwrite=True,
                                 progress=False, **options)
            out[arm] = arm_summary(run, run_dir, args.eval_episodes)
            out[arm]["wall_s"] = time.time() - start
            if arm == "pbt":
                out[arm]["exploits"] = len(copies(run.pbt))
                out[arm]["final_hparams"] = run.pbt[-1]["hparams"]
                plot_pbt(run_dir, os.path.join(args.out_dir, f"pbt_{args.env}_seed{seed}.png"))
            print(f"{args.env} seed {seed} {arm}: final best {out[arm]['final_best']:.1f}, "
                  f"mean {out[arm]['final_mean']:.1f}; eval best {out[arm]['eval_best']:.1f}, "
                  f"mean {out[arm]['eval_mean']:.1f} ({out[arm]['wall_s']:.0f} s)", flush=True)
        record["seeds"][str(seed)] = out
        write_json(path, record)


if __name__ == "__main__":
    main()
