"""Old commit against new: training speed of two source trees, interleaved on one machine.

    python benchmarks/commits.py                          # HEAD against the working tree
    python benchmarks/commits.py --old HEAD~3 --new HEAD --seeds 1,8 --rounds 4
    python benchmarks/commits.py --env Breakout-MinAtar --preset minatar --total-timesteps 100000

The rule for a change to the hot path: time it against the commit before it, interleaved, on
the same machine, before it lands. Each tree (`git archive` of a revision, or the working tree's
tracked and untracked-but-not-ignored files) is copied into a temporary directory; every
measurement is a fresh Python process with that tree first on `PYTHONPATH`, which compiles
`jax.jit(jax.vmap(train))` for the seed keys (with the tree's `purejaxppo.compiler_options()`
where it has them, as its own entry points compile), runs it once to warm up and then `--repeats` timed
times (env steps/second of the best run; compilation excluded and reported apart). Rounds
alternate which side goes first (old-new, new-old, ...) so that a drift in machine speed hits
both. The table gives, per seed count, each side's median and the median, min and max of the
paired ratio new/old; the JSON (`--out`) holds every timing, the machine and both revisions.
Only ratios from one invocation compare: absolute figures differ between machines by 2x or more.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
WORKTREE = "WORKTREE"
DEFAULT_OUT = HERE / "results" / "commits_cpu.json"


# ---------------------------------------------------------------------------------------------
# Worker: one measurement, `python commits.py --worker SPEC_JSON`, with the tree on PYTHONPATH.
# ---------------------------------------------------------------------------------------------

def make_config(config_args: dict):
    """The benchmarked config: `presets.build_config(preset, **changes)` with `--set` parsed by
    `config.parse_override`; a tree older than those (an "old" revision) through its CLI."""
    try:
        from purejaxppo.config import parse_override
        from purejaxppo.presets import build_config
    except ImportError:
        from purejaxppo.cli import build_config as cli_build_config

        return cli_build_config(argparse.Namespace(**config_args))
    changes = dict(parse_override(s) for s in config_args["set"])
    changes.update({k: v for k, v in (("env_name", config_args["env"]), (
        "total_timesteps", config_args["total_timesteps"])) if v is not None})
    return build_config(config_args["preset"], **changes)


def worker(spec: dict) -> dict:
    import jax
    import numpy as np

    import purejaxppo
    from purejaxppo import final_return, make_train

    config = make_config(spec["config_args"])
    # Compiled as the tree's own entry points compile (trees from before 2026-12-02: defaults).
    options = getattr(purejaxppo, "compiler_options", dict)()
    keys = jax.random.split(jax.random.key(spec["seed"]), spec["num_seeds"])
    jax.jit(lambda x: x + 1).lower(0).compile()  # JAX/XLA start-up, not part of compile_s
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(make_train(config)), compiler_options=options or None).lower(
        keys).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(keys))  # warm-up
    run_s = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        result = jax.block_until_ready(compiled(keys))
        run_s.append(time.perf_counter() - start)
    steps = spec["num_seeds"] * config.env_steps_per_run
    return {"package": os.path.dirname(purejaxppo.__file__), "compiler_options": options,
            "compile_s": compile_s,
            "run_s": run_s, "env_steps": steps, "sps": steps / min(run_s),
            "final_return": [float(x) for x in np.asarray(final_return(result.metrics))]}


# ---------------------------------------------------------------------------------------------
# Parent: trees, interleaved workers, table and JSON.
# ---------------------------------------------------------------------------------------------

def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def materialise(revision: str, target: pathlib.Path) -> str:
    """Copy the source tree of `revision` (or of the working tree, `WORKTREE`) into `target`;
    return a description (commit hash, plus "+ uncommitted changes" for a dirty working tree)."""
    target.mkdir(parents=True)
    if revision == WORKTREE:
        files = _git("ls-files", "-co", "--exclude-standard", "-z").split("\0")
        files = [f for f in files if f and (ROOT / f).is_file()]
        tar = subprocess.run(["tar", "cf", "-", "--null", "-T", "-"], cwd=ROOT, check=True,
                             input="\0".join(files).encode(), capture_output=True).stdout
        subprocess.run(["tar", "xf", "-"], cwd=target, check=True, input=tar)
        dirty = bool(_git("status", "--porcelain"))
        return _git("rev-parse", "HEAD") + (" + uncommitted changes" if dirty else "")
    commit = _git("rev-parse", "--verify", revision + "^{commit}")
    tar = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "xf", "-"], cwd=target, check=True, input=tar)
    return commit


def run_worker(tree: pathlib.Path, spec: dict, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker",
                           json.dumps(spec)], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker in {tree} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-4000:]}")
    out = json.loads(lines[-1])
    if pathlib.Path(out["package"]).resolve() != (tree / "purejaxppo").resolve():
        raise RuntimeError(f"worker imported purejaxppo from {out['package']}, not from {tree}")
    return out


def summarise(old: list[float], new: list[float]) -> dict:
    ratios = [n / o for o, n in zip(old, new)]
    return {"old_median_sps": statistics.median(old), "new_median_sps": statistics.median(new),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios)}


def format_table(rows: dict) -> str:
    lines = ["| seeds | old steps/s (median) | new steps/s (median) | new/old paired: median "
             "(min-max) | old compile s | new compile s |",
             "|---:|---:|---:|---|---:|---:|"]
    for seeds, row in rows.items():
        s = row["summary"]
        lines.append(f"| {seeds} | {s['old_median_sps']:,.0f} | {s['new_median_sps']:,.0f} | "
                     f"{s['ratio_median']:.3f} ({s['ratio_min']:.3f}-{s['ratio_max']:.3f}) | "
                     f"{statistics.median(r['compile_s'] for r in row['old']):.2f} | "
                     f"{statistics.median(r['compile_s'] for r in row['new']):.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", default="HEAD", help="revision to compare against (HEAD)")
    parser.add_argument("--new", default=WORKTREE,
                        help=f"revision to measure, or {WORKTREE} (default): the working tree")
    parser.add_argument("--seeds", default="1,8", help="comma-separated seed counts (1,8)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="old/new pairs per seed count, sides alternating first (4)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed runs per process after one warm-up; best counts (2)")
    parser.add_argument("--seed", type=int, default=0, help="base PRNG key (0)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per process")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON output path")
    parser.add_argument("--env", help="gymnax environment (default: PPOConfig's, CartPole-v1)")
    parser.add_argument("--preset", help="start from this preset (purejaxppo.presets)")
    parser.add_argument("--total-timesteps", type=int, default=500_000,
                        help="env steps per seed (500000)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a PPOConfig field (repeatable)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    try:
        seed_counts = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    if any(n <= 0 for n in seed_counts) or args.rounds <= 0 or args.repeats <= 0:
        parser.error("--seeds, --rounds and --repeats must be positive")
    config_args = {"env": args.env, "preset": args.preset,
                   "total_timesteps": args.total_timesteps, "set": args.set}
    from purejaxppo.config import ConfigError
    try:
        make_config(config_args)  # the arguments must make a config before timing
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    from peers import machine_info, write_report

    with tempfile.TemporaryDirectory(prefix="purejaxppo-commits-") as tmp:
        trees = {side: pathlib.Path(tmp) / side for side in ("old", "new")}
        described = {side: materialise(rev, trees[side])
                     for side, rev in (("old", args.old), ("new", args.new))}
        for side in ("old", "new"):
            print(f"{side}: {described[side]}", flush=True)
        rows = {}
        for n in seed_counts:
            spec = {"config_args": config_args, "num_seeds": n, "seed": args.seed,
                    "repeats": args.repeats}
            row = {"old": [], "new": []}
            for r in range(args.rounds):
                for side in (("old", "new") if r % 2 == 0 else ("new", "old")):
                    out = run_worker(trees[side], spec, args.timeout)
                    row[side].append(out)
                    print(f"seeds {n} round {r} {side}: {out['sps']:,.0f} steps/s "
                          f"(compile {out['compile_s']:.2f} s)", flush=True)
            row["summary"] = summarise([o["sps"] for o in row["old"]],
                                       [o["sps"] for o in row["new"]])
            rows[n] = row
    table = format_table(rows)
    print(table)
    report = {"machine": machine_info(), "old": {"revision": args.old, "commit": described["old"]},
              "new": {"revision": args.new, "commit": described["new"]},
              "config_args": config_args, "rounds": args.rounds, "repeats": args.repeats,
              "seed": args.seed, "rows": {str(n): row for n, row in rows.items()},
              "table": table}
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
