"""Seeds scaling: env steps/second of PPO for 1, 4, 16, 64, 256 seeds against the rollout-only
ceiling, with and without the progress callback.

    python benchmarks/scaling.py                                    # CPU: 1,4,16,64 seeds
    python benchmarks/scaling.py --seeds 1,4,16,64,256,1024,4096    # a GPU
    python benchmarks/scaling.py --env Breakout-MinAtar --seeds 1,4,16,64,256 \\
        --set num_envs=64 --set hidden_sizes=256,256 --total-timesteps 1000000

For each seed count n it measures, all compiled once before timing (compilation excluded):

* sweep_sps: env steps/second of `purejaxppo.sweeps.compile_sweep` over one setting x n seeds,
  i.e. the sharded program `purejaxppo sweep` runs (all local devices), results gathered to host;
* progress_sps: the same with `ProgressReporter` as callback (drawing to an in-memory console),
  reporting every `--progress-every` updates (default 5, what the CLI uses on a default 500k-step
  CartPole run); progress_overhead = run time with / without progress - 1, and
  progress_us_per_call = the extra time per host callback (one per seed per report);
* ceiling_sps: the rollout-only program of `benchmarks/throughput.py` (`make_ceiling`: env step +
  network forward + action sampling over the same num_updates x num_steps x num_envs, no GAE, no
  update), `jax.jit(jax.vmap(...))` over the n seeds;
* ratio = sweep_sps / ceiling_sps.

The programs run interleaved (ceiling, sweep, progress, ceiling, ...) `--repeats` times; the best
run of each gives the headline (medians recorded too). Writes JSON and a PNG plot (matplotlib) into
`benchmarks/results/` (`scaling_<platform>.json/.png` unless `--out` says otherwise).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import platform
import statistics
import sys
import time

import jax

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from throughput import compile_vmapped, make_ceiling, parse_run_args  # noqa: E402  (benchmarks/throughput.py)

from purejaxppo.config import ConfigError, PPOConfig  # noqa: E402
from purejaxppo.progress import ProgressReporter, expected_calls  # noqa: E402
from purejaxppo.sweeps import compile_sweep, run_mesh  # noqa: E402
from purejaxppo.train import make_train  # noqa: E402


def _timed(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def _sweep_program(config: PPOConfig, keys, reporter=None, every: int = 1):
    """Compiled `sweep` of the config's default setting over `keys`; returns (run, compile_s)."""
    train = make_train(config, callback=reporter, callback_every=every)
    start = time.perf_counter()
    compiled = compile_sweep(train, keys, config.hparams(), mesh=run_mesh(jax.local_devices()))
    return compiled, time.perf_counter() - start


def _ceiling_program(config: PPOConfig, keys):
    compiled, compile_s = compile_vmapped(make_ceiling(config), keys)  # as throughput.py compiles it
    return (lambda: compiled(keys)), compile_s


def measure(config: PPOConfig, num_seeds: int, repeats: int, progress: bool, every: int,
            seed: int = 0) -> dict:
    """Best-of-`repeats` steps/second of the sweep, sweep + progress and ceiling programs."""
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    programs, compile_s = {}, {}
    programs["ceiling"], compile_s["ceiling"] = _ceiling_program(config, keys)
    programs["sweep"], compile_s["sweep"] = _sweep_program(config, keys)
    reporter = None
    if progress:
        reporter = ProgressReporter(num_seeds, config.num_updates, config.batch_size, every,
                                    show=True, console=_null_console())
        programs["progress"], compile_s["progress"] = _sweep_program(config, keys, reporter,
                                                                     every)
    times = {name: [] for name in programs}
    with reporter if reporter is not None else _nothing():
        for name, fn in programs.items():  # warm-up
            _timed(fn)
        for _ in range(repeats):
            for name, fn in programs.items():
                times[name].append(_timed(fn))
    steps = num_seeds * config.env_steps_per_run
    row = {"num_seeds": num_seeds, "env_steps_per_seed": config.env_steps_per_run,
           "num_updates": config.num_updates, "env_steps": steps, "compile_s": compile_s,
           "run_s": times}
    for name, ts in times.items():
        row[f"{name}_sps"] = steps / min(ts)
        row[f"{name}_sps_median"] = steps / statistics.median(ts)
    row["ratio"] = row["sweep_sps"] / row["ceiling_sps"]
    row["ratio_median"] = row["sweep_sps_median"] / row["ceiling_sps_median"]
    if progress:
        row["progress_overhead"] = min(times["progress"]) / min(times["sweep"]) - 1.0
        row["progress_overhead_median"] = (statistics.median(times["progress"])
                                           / statistics.median(times["sweep"]) - 1.0)
        row["progress_every"] = every
        # Host callbacks per program run (one per seed per report), expected and counted.
        row["progress_calls_per_run"] = expected_calls(num_seeds, config.num_updates, every)
        row["progress_calls_counted_per_run"] = reporter.calls / (repeats + 1)
        row["progress_us_per_call"] = ((min(times["progress"]) - min(times["sweep"]))
                                       / row["progress_calls_per_run"] * 1e6)
    return row


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _null_console():
    from rich.console import Console

    return Console(file=io.StringIO(), force_terminal=True, width=120)


def plot(result: dict, path: str) -> None:
    """Steps/second vs seeds (log-log) for sweep, sweep + progress and ceiling, plus the ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["results"]
    seeds = [r["num_seeds"] for r in rows]
    fig, (ax, ax_ratio) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax.plot(seeds, [r["ceiling_sps"] for r in rows], "o--", label="rollout-only ceiling")
    ax.plot(seeds, [r["sweep_sps"] for r in rows], "o-", label="PPO (sweep, no progress)")
    if "progress_sps" in rows[0]:
        ax.plot(seeds, [r["progress_sps"] for r in rows], "x:", label="PPO + progress bar")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("seeds (vmapped runs)")
    ax.set_ylabel("env steps / second (all seeds)")
    ax.set_title(f"{result['config']['env_name']} on {result['device_label']}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax_ratio.plot(seeds, [r["ratio"] for r in rows], "o-")
    ax_ratio.set_xscale("log", base=2)
    ax_ratio.set_ylim(0, 1.05)
    ax_ratio.set_xlabel("seeds")
    ax_ratio.set_ylabel("PPO / rollout-only ceiling")
    ax_ratio.grid(True, alpha=0.3)
    budgets = sorted({r["env_steps_per_seed"] for r in rows}, reverse=True)
    ax_ratio.set_title("env steps per seed: " + ", ".join(f"{b:,}" for b in budgets), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def device_label() -> str:
    device = jax.local_devices()[0]
    kind = getattr(device, "device_kind", "") or device.platform
    count = jax.local_device_count()
    if device.platform == "cpu":
        return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"
    return f"{count} x {kind}" if count > 1 else kind


def _git_state() -> str | None:
    import subprocess

    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, text=True,
                             capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                               text=True, capture_output=True, timeout=10).stdout.strip()
        return f"{rev}{'+dirty' if dirty else ''}" if rev else None
    except Exception:  # pragma: no cover
        return None


def make_parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default=None, help="gymnax environment name (default CartPole-v1)")
    parser.add_argument("--seeds", default="1,4,16,64", help="comma-separated seed counts")
    parser.add_argument("--total-timesteps", type=int, default=32_768,
                        help="env steps per seed (default 32,768: 64 updates of 4 x 128)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each program")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any PPOConfig field, e.g. --set num_envs=8")
    parser.add_argument("--max-steps-per-run", type=int, default=None,
                        help="cap on env steps of one program run (all seeds): seed counts above "
                        "max/total-timesteps get fewer steps per seed, to bound the wall time")
    parser.add_argument("--no-progress", action="store_true",
                        help="skip the progress-callback measurement")
    parser.add_argument("--progress-every", type=int, default=5,
                        help="updates between progress reports (default 5: what `purejaxppo "
                        "sweep`/`train` use on a default 500k-step CartPole run, 976 updates)")
    parser.add_argument("--out", default=None,
                        help="JSON path (default benchmarks/results/scaling_<platform>.json); "
                        "the plot goes next to it as .png")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    try:
        config, seed_counts = parse_run_args(args)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    device = jax.local_devices()[0]
    out = args.out or os.path.join(HERE, "results", f"scaling_{device.platform}.json")
    label = device_label()
    print(f"{config.env_name}: {config.num_envs} envs x {config.num_steps} steps, "
          f"{config.env_steps_per_run:,} steps/seed ({config.num_updates} updates); {label}, "
          f"{jax.local_device_count()} device(s), jax {jax.__version__}; best of {args.repeats}")
    header = (f"{'seeds':>5}  {'steps/seed':>10}  {'sweep sps':>12}  {'ceiling sps':>12}  {'ratio':>6}  "
              f"{'+progress sps':>13}  {'overhead':>8}  {'compile s':>9}")
    print(header)
    print("-" * len(header))
    rows = []
    for n in seed_counts:
        run_config = config
        if args.max_steps_per_run is not None and n * config.env_steps_per_run > args.max_steps_per_run:
            per_seed = max(config.batch_size, args.max_steps_per_run // n)
            run_config = config.replace(total_timesteps=per_seed)
        row = measure(run_config, n, args.repeats, progress=not args.no_progress,
                      every=args.progress_every)
        rows.append(row)
        progress = (f"{row['progress_sps']:>13,.0f}  {row['progress_overhead']:>+8.1%}"
                    if "progress_sps" in row else f"{'-':>13}  {'-':>8}")
        print(f"{n:>5}  {row['env_steps_per_seed']:>10,}  {row['sweep_sps']:>12,.0f}  "
              f"{row['ceiling_sps']:>12,.0f}  {row['ratio']:>6.3f}  {progress}  "
              f"{row['compile_s']['sweep']:>9.1f}", flush=True)

    result = {
        "benchmark": "scaling",
        "platform": device.platform,
        "device": str(device),
        "device_kind": getattr(device, "device_kind", None),
        "device_label": label,
        "local_device_count": jax.local_device_count(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "jax_version": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "git": _git_state(),
        "repeats": args.repeats,
        "max_steps_per_run": args.max_steps_per_run,
        "progress_every": None if args.no_progress else args.progress_every,
        "timing": "best of repeats (medians also given); ceiling, sweep and sweep+progress runs "
                  "interleaved; compilation excluded",
        "env_steps_per_seed": config.env_steps_per_run,  # rows may have fewer, see each row
        "num_updates": config.num_updates,
        "config": dataclasses.asdict(config),
        "results": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    png = os.path.splitext(out)[0] + ".png"
    plot(result, png)
    print(f"wrote {out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
