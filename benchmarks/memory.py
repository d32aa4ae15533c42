"""Peak resident memory of purejaxppo training runs, one subprocess per measurement.

    python benchmarks/memory.py              # CartPole-v1 1e5,1e6,1e7 + Breakout-MinAtar 1e6,1e7
    python benchmarks/memory.py --env CartPole-v1 --steps 1e6,1e7 --seeds 1,64
    python benchmarks/memory.py --quick      # smoke run: 1e4,1e5 steps, 1 and 2 seeds

Everything `train` carries is of fixed size except the per-update metrics it returns (one row of
`len(Metrics._fields)` float32/int32 scalars per update and seed), so memory should grow with
`total_timesteps` by num_updates x fields x 4 bytes x seeds and by nothing else. This script
checks that: for each environment, seed count and step count it starts a fresh Python process
that builds `make_train(config)` (the environment's `PPOConfig` defaults, `--set` overrides),
compiles `jax.jit(jax.vmap(train))` for the seed keys and runs it once. The child reports

* peak RSS, whole process: max of the two phase peaks below (getrusage ru_maxrss);
* compile-phase peak: ru_maxrss after imports, `make_train` and `.lower(keys).compile()`;
* run-phase peak: the high-water mark is then reset (`echo 5 > /proc/self/clear_refs`, Linux)
  and read again (VmHWM) after the run: the largest RSS while training ran, compiled program,
  libraries and live arrays included, but not the compiler's transient memory;
* run added: run-phase peak minus the RSS just before the run, i.e. what the run itself
  allocated on top of everything already resident. The absolute RSS of a fresh process can vary
  by tens of MB from one process to the next (allocator and compiler-thread timing), which
  swamps small differences in the peaks; run added leaves that out and is much steadier, so it
  is the number to compare with the metrics rows (use `--repeats` for medians of the peaks);
* the metrics rows, by formula (num_updates x fields x 4 bytes x seeds) and as measured (bytes
  of the returned `TrainResult.metrics` arrays);
* on a GPU (or any device whose `memory_stats()` has it) the device's `peak_bytes_in_use`.

The parent also records the child's ru_maxrss from `os.wait4`. With the high-water reset this
covers only the run phase and exit (and any thread that exited earlier), so the child's own
readings are the ones reported. The growth table compares, between consecutive step counts, the
growth of the whole-process peak and of run added with the growth of the metrics rows. Writes
JSON (`--out`, default `benchmarks/results/memory_<platform>.json`, the platform of this
interpreter's default JAX backend).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ENVS = "CartPole-v1,Breakout-MinAtar"
DEFAULT_STEPS = {"CartPole-v1": "1e5,1e6,1e7"}  # other environments: DEFAULT_STEPS_OTHER
DEFAULT_STEPS_OTHER = "1e6,1e7"
DEFAULT_SEEDS = "1,64"
QUICK_STEPS, QUICK_SEEDS = "1e4,1e5", "1,2"
MB = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Worker: one measurement, `python memory.py --worker --spec JSON`.
# ---------------------------------------------------------------------------------------------

def _status_kb(field: str):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_high_water() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_kb() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _device_memory(device):
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001  (not implemented on some backends)
        return None
    if not stats:
        return None
    keys = ("peak_bytes_in_use", "bytes_in_use", "bytes_limit")
    return {k: int(stats[k]) for k in keys if k in stats} or None


def benchmark_config(sets, env: str, steps: int):
    """The measured config: `presets.build_config` of `--set` (`config.parse_override`), the env
    and the steps (imported here: the worker measures memory from before the imports)."""
    from purejaxppo.config import parse_override
    from purejaxppo.presets import build_config

    return build_config(None, **{**dict(parse_override(s) for s in sets), "env_name": env,
                                 "total_timesteps": steps})


def worker_main(spec: dict) -> int:

    import jax
    import numpy as np

    from purejaxppo.metrics import Metrics, final_return
    from purejaxppo.train import make_train

    config = benchmark_config(spec["set"], spec["env"], spec["steps"])
    n = spec["num_seeds"]
    train = make_train(config)
    keys = jax.random.split(jax.random.key(spec["seed"]), n)
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(keys).compile()
    compile_s = time.perf_counter() - start
    compile_peak_kb = _maxrss_kb()
    reset = _reset_high_water()
    rss_before_run_kb = _status_kb("VmRSS")
    start = time.perf_counter()
    result = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start
    run_peak_kb = _status_kb("VmHWM") if reset else None
    rss_end_kb = _status_kb("VmRSS")
    maxrss_end_kb = _maxrss_kb()

    fields = len(Metrics._fields)
    metrics_bytes = sum(int(x.nbytes) for x in jax.tree.leaves(result.metrics))
    result_bytes = sum(int(x.nbytes) for x in jax.tree.leaves(result))
    returns = np.asarray(final_return(result.metrics), np.float64)
    device = jax.devices()[0]
    peak_kb = max(compile_peak_kb, run_peak_kb if run_peak_kb is not None else maxrss_end_kb)
    out = {
        "env": config.env_name, "num_seeds": n, "total_timesteps": config.total_timesteps,
        "num_updates": config.num_updates, "env_steps_per_seed": config.env_steps_per_run,
        "metrics_fields": fields,
        "metrics_rows_bytes": config.num_updates * fields * 4 * n,
        "metrics_bytes_measured": metrics_bytes,
        "train_result_bytes": result_bytes,
        "peak_rss_kb": peak_kb,
        "compile_phase_peak_kb": compile_peak_kb,
        "run_phase_peak_kb": run_peak_kb,
        "high_water_reset": reset,
        "rss_before_run_kb": rss_before_run_kb,
        "run_added_kb": (run_peak_kb - rss_before_run_kb
                         if run_peak_kb is not None and rss_before_run_kb is not None else None),
        "rss_end_kb": rss_end_kb,
        "ru_maxrss_end_kb": maxrss_end_kb,
        "device_memory": _device_memory(device),
        "compile_s": compile_s, "run_s": run_s,
        "final_return_mean": (float(np.nanmean(returns)) if np.isfinite(returns).any()
                              else None),
        "platform": device.platform, "device": str(device),
        "device_kind": getattr(device, "device_kind", None),
        "jax_version": jax.__version__,
        "network": config.network, "hidden_sizes": list(config.hidden_sizes),
        "num_envs": config.num_envs, "num_steps": config.num_steps,
    }
    print(json.dumps(out), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# Parent.
# ---------------------------------------------------------------------------------------------

def run_child(spec: dict, timeout: float) -> dict:
    """Run one measurement; returns the child's JSON plus the parent's `os.wait4` ru_maxrss."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker",
                                 "--spec", json.dumps(spec)], stdout=out, stderr=err, cwd=HERE)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                raise RuntimeError(f"measurement {spec} ran past --timeout {timeout:.0f} s")
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"measurement {spec} failed (exit {proc.returncode}):\n"
                           f"{stderr[-4000:]}{stdout[-2000:]}")
    row = json.loads(lines[-1])
    row["ru_maxrss_wait4_kb"] = usage.ru_maxrss
    return row


def _parse_list(text: str, what: str, parse) -> list:
    try:
        values = [parse(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what}: cannot parse {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"{what}: positive numbers expected, got {text!r}")
    return values


def _steps(text: str) -> int:
    value = float(text)
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


def _sci(n: int) -> str:
    """1e+07 -> '1e7' where that is exact, else the plain integer."""
    text = f"{n:.0e}"
    return text.replace("e+0", "e").replace("e+", "e") if float(text) == n else str(n)


def _mb(kb):
    return None if kb is None else kb / 1024


def _f(value, spec=".1f"):
    return "n/a" if value is None else format(value, spec)


def format_rows(rows: list[dict]) -> str:
    header = ["env", "seeds", "steps", "updates", "peak RSS MB", "compile-phase MB",
              "run added MB", "metrics rows MB", "metrics measured MB", "device peak MB",
              "compile s", "run s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        device_peak = (r.get("device_memory") or {}).get("peak_bytes_in_use")
        cells = [r["env"], str(r["num_seeds"]), _sci(r["total_timesteps"]),
                 str(r["num_updates"]), _f(_mb(r["peak_rss_kb"])),
                 _f(_mb(r["compile_phase_peak_kb"])), _f(_mb(r["run_added_kb"]), ".2f"),
                 _f(r["metrics_rows_bytes"] / MB, ".2f"),
                 _f(r["metrics_bytes_measured"] / MB, ".2f"),
                 _f(None if device_peak is None else device_peak / MB),
                 _f(r["compile_s"]), _f(r["run_s"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def growth_rows(rows: list[dict]) -> list[dict]:
    """Between consecutive step counts of each (env, seeds): growth of the peaks and of the
    metrics rows, in MiB."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["env"], r["num_seeds"]), []).append(r)
    out = []
    for (env, seeds), group in groups.items():
        group = sorted(group, key=lambda r: r["total_timesteps"])
        for a, b in zip(group, group[1:]):
            def delta(key):
                if a.get(key) is None or b.get(key) is None:
                    return None
                return (b[key] - a[key]) / 1024

            d_metrics = (b["metrics_rows_bytes"] - a["metrics_rows_bytes"]) / MB
            d_added = delta("run_added_kb")
            out.append({
                "env": env, "num_seeds": seeds,
                "from_steps": a["total_timesteps"], "to_steps": b["total_timesteps"],
                "peak_rss_growth_mb": delta("peak_rss_kb"),
                "run_phase_peak_growth_mb": delta("run_phase_peak_kb"),
                "run_added_growth_mb": d_added,
                "metrics_rows_growth_mb": d_metrics,
                "run_added_excess_mb": None if d_added is None else d_added - d_metrics,
            })
    return out


def format_growth(growth: list[dict]) -> str:
    header = ["env", "seeds", "steps", "peak RSS growth MB", "run added growth MB",
              "metrics rows growth MB", "run added growth - metrics rows MB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for g in growth:
        cells = [g["env"], str(g["num_seeds"]),
                 f"{_sci(g['from_steps'])} -> {_sci(g['to_steps'])}",
                 _f(g["peak_rss_growth_mb"]), _f(g["run_added_growth_mb"], ".2f"),
                 _f(g["metrics_rows_growth_mb"], ".2f"), _f(g["run_added_excess_mb"], ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _median_row(reps: list[dict]) -> dict:
    """The first repeat with every memory reading replaced by the median over repeats."""
    row = dict(reps[0])
    for key in ("peak_rss_kb", "compile_phase_peak_kb", "run_phase_peak_kb", "rss_before_run_kb",
                "run_added_kb", "rss_end_kb",
                "ru_maxrss_end_kb", "ru_maxrss_wait4_kb", "compile_s", "run_s"):
        values = [r[key] for r in reps if r.get(key) is not None]
        row[key] = statistics.median(values) if values else None
    row["repeats"] = reps
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default=DEFAULT_ENVS,
                        help=f"comma-separated gymnax environments (default {DEFAULT_ENVS})")
    parser.add_argument("--steps", default=None,
                        help="comma-separated total_timesteps per seed, for every --env "
                             "(default: 1e5,1e6,1e7 for CartPole-v1, 1e6,1e7 otherwise)")
    parser.add_argument("--seeds", default=None,
                        help=f"comma-separated seed counts (default {DEFAULT_SEEDS})")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: --steps {QUICK_STEPS} --seeds {QUICK_SEEDS} unless "
                             f"given")
    parser.add_argument("--repeats", type=int, default=1,
                        help="subprocesses per measurement; medians are reported (default 1)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a PPOConfig field for every run, e.g. --set num_envs=8")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed of the seed keys")
    parser.add_argument("--timeout", type=float, default=7200,
                        help="seconds allowed per subprocess (default 7200)")
    parser.add_argument("--out", default=None, help="JSON output path")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(json.loads(args.spec))

    import jax  # noqa: E402  (the parent only validates configs and names the platform)

    from purejaxppo.config import ConfigError
    from purejaxppo.train import make_train

    try:
        envs = [e.strip() for e in args.env.split(",") if e.strip()]
        if not envs:
            raise ValueError("--env: at least one environment expected")
        seeds = _parse_list(args.seeds or (QUICK_SEEDS if args.quick else DEFAULT_SEEDS),
                            "--seeds", int)
        if args.repeats <= 0:
            raise ValueError(f"--repeats: must be positive, got {args.repeats}")
        plan = []
        for env in envs:
            text = args.steps or (QUICK_STEPS if args.quick
                                  else DEFAULT_STEPS.get(env, DEFAULT_STEPS_OTHER))
            for steps in _parse_list(text, "--steps", _steps):
                make_train(benchmark_config(args.set, env, steps))
                plan.extend((env, n, steps) for n in seeds)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    backend = jax.default_backend()
    out_path = args.out or os.path.join(HERE, "results", f"memory_{backend}.json")
    print(f"{len(plan)} measurements x {args.repeats}, one subprocess each; {backend} "
          f"({os.cpu_count()} cpus), jax {jax.__version__}", flush=True)
    rows = []
    for env, n, steps in plan:
        spec = {"env": env, "num_seeds": n, "steps": steps, "set": args.set, "seed": args.seed}
        reps = [run_child(spec, args.timeout) for _ in range(args.repeats)]
        row = _median_row(reps)
        rows.append(row)
        print(f"  {env} seeds {n} steps {_sci(steps)}: peak RSS {_mb(row['peak_rss_kb']):.1f} MB "
              f"(compile phase {_f(_mb(row['compile_phase_peak_kb']))}, run phase "
              f"{_f(_mb(row['run_phase_peak_kb']))}, run added "
              f"{_f(_mb(row['run_added_kb']), '.2f')}), metrics rows "
              f"{row['metrics_rows_bytes'] / MB:.2f} MB, run {row['run_s']:.1f} s", flush=True)

    growth = growth_rows(rows)
    print()
    print(format_rows(rows))
    print()
    print(format_growth(growth))
    result = {
        "benchmark": "memory",
        "platform": backend,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "jax_version": jax.__version__,
        "repeats": args.repeats,
        "overrides": args.set,
        "method": ("one fresh subprocess per measurement: make_train, jit(vmap(train))"
                   ".lower(keys).compile(), one run; peak_rss_kb = max(compile_phase_peak_kb, "
                   "run_phase_peak_kb); compile_phase_peak_kb = getrusage(RUSAGE_SELF)"
                   ".ru_maxrss after compiling; run_phase_peak_kb = VmHWM after the run, the "
                   "high-water mark having been reset after compiling (/proc/self/clear_refs "
                   "5); run_added_kb = run_phase_peak_kb - rss_before_run_kb (VmRSS just "
                   "before the run); ru_maxrss_wait4_kb = the parent's os.wait4 rusage of "
                   "the child (covers "
                   "the run phase and exit, after the reset); metrics_rows_bytes = num_updates "
                   "x len(Metrics._fields) x 4 x seeds; with --repeats, medians"),
        "results": rows,
        "growth": growth,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {out_path}")
    return 0


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


if __name__ == "__main__":
    sys.exit(main())
