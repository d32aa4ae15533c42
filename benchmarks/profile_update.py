"""Where the time of a vmapped PPO run goes: the compiled program's loop bodies op by op, the size
and FLOPs of every dot, the machine's dense-GEMM rate at those shapes, and the achieved fraction.

    python benchmarks/profile_update.py                       # CartPole-v1 defaults, 1 and 8 seeds
    python benchmarks/profile_update.py --seeds 8,64 --set hidden_sizes=256,256

For each seed count n, `jax.jit(jax.vmap(make_train(config)))` over n keys is compiled (with
`compiler_options()`, as the library compiles) and its optimised HLO read:

* every `while` body (the rollout step, GAE, the epoch and minibatch loops, ...) with its
  instructions by kind: dot, fusion, copy, transpose, select (top level or inside fusions),
  dynamic slice/update, sort, custom call, other;
* the dots of the two bodies that hold them (the rollout step: forward passes; the minibatch
  step: forward + backward), each with its shape and FLOPs (2 x batch x m x n x k);
* per body, trips per run from the config (rollout: updates x steps; minibatch: updates x
  epochs x minibatches), hence the run's dot FLOPs.

Then the run is timed (best of `--repeats`, compilation excluded), and each distinct dot shape
is timed alone in a jitted loop (`gemm_rate`): GFLOP/s at that shape, and at one large square
GEMM (the machine's practical peak). Reported: achieved GFLOP/s of the run (dot FLOPs / run
time), the time the dots would take at their measured rates (so the share of the run that is
dots, and the rest: elementwise, selects, copies, loop overhead), and achieved / possible.
Prints a table and writes JSON (default benchmarks/results/profile_update_<platform>.json).

`--trace`: one more call under `jax.profiler` (a Perfetto trace; the profiler may keep only part
of a long run), whose per-thunk durations are summed by the loop body each thunk belongs to
(minibatch step, rollout step, update loop, other), and within each body into dots (YNNPACK
fusions and plain dots) and the rest. Shares of the summed thunk time, not of wall time: two
threads run thunks side by side, and the profiler adds its own cost to each thunk.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import platform
import re
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from peers import machine_info  # noqa: E402  (benchmarks/peers.py)
from purejaxppo import ConfigError, compiler_options, make_train  # noqa: E402
from purejaxppo.config import parse_override  # noqa: E402
from purejaxppo.presets import build_config  # noqa: E402

KINDS = ("dot", "fusion", "copy", "transpose", "select", "dynamic-slice",
         "dynamic-update-slice", "sort", "custom-call", "while", "other")
_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (.*?) ([\w\-]+)\((.*)$")
_CALLS = re.compile(r"(?:calls|body|condition|to_apply)=%?([\w.\-]+)")
_SHAPE = re.compile(r"[a-z0-9]+\[([0-9,]*)\]")


def parse_hlo(text: str) -> dict:
    """{computation name: [(name, shape, opcode, rest of line)]} of an HLO module's text."""
    computations, current = {}, None
    for line in text.splitlines():
        if current is None:
            match = _COMPUTATION.match(line)
            if match and "=" not in line.split("{")[0].split("(")[0]:
                current = match.group(1)
                computations[current] = []
            continue
        if line.strip() == "}":
            current = None
            continue
        match = _INSTRUCTION.match(line)
        if match:
            computations[current].append(match.groups())
    return computations


def _dims(shape: str) -> list[int]:
    match = _SHAPE.search(shape)
    return [int(d) for d in match.group(1).split(",") if d] if match else []


def _kind(opcode: str) -> str:
    return opcode if opcode in KINDS else "other"


def census(computations: dict, body: str) -> dict:
    """Instructions of `body` by kind, selects and dots inside its fusions counted too."""
    counts = collections.Counter()
    for name, shape, opcode, rest in computations[body]:
        counts[_kind(opcode)] += 1
        if opcode == "fusion":
            for called in _CALLS.findall(rest):
                inner = collections.Counter(_kind(op) for _, _, op, _ in computations.get(called, []))
                counts["select (in fusions)"] += inner["select"]
                counts["dot (in fusions)"] += inner["dot"]
    return dict(counts)


def dots(computations: dict, body: str) -> list[dict]:
    """The dots of `body` (top level and in its fusions): operand/result shapes and FLOPs."""
    shapes = {}
    for comp in computations.values():
        for name, shape, _, _ in comp:
            shapes[name] = shape
    out = []

    def visit(comp_name):
        for name, shape, opcode, rest in computations.get(comp_name, []):
            if opcode == "dot":
                operands = re.findall(r"%([\w.\-]+)", rest.split(")")[0])
                lhs = _dims(shapes.get(operands[0], "")) if operands else []
                contracting = re.search(r"lhs_contracting_dims=\{([0-9,]*)\}", rest)
                k = int(np.prod([lhs[int(i)] for i in contracting.group(1).split(",") if i])) \
                    if contracting and lhs else 0
                result = _dims(shape)
                out.append({"result": result, "lhs": lhs,
                            "rhs": _dims(shapes.get(operands[1], "")) if len(operands) > 1 else [],
                            "k": k, "flops": 2 * int(np.prod(result)) * k})
            elif opcode == "fusion":
                for called in _CALLS.findall(rest):
                    visit(called)

    visit(body)
    return out


def loop_bodies(computations: dict) -> list[str]:
    """Names of every `while` body in the module."""
    bodies = []
    for comp in computations.values():
        for _, _, opcode, rest in comp:
            if opcode == "while":
                match = re.search(r"body=%?([\w.\-]+)", rest)
                if match:
                    bodies.append(match.group(1))
    return bodies


def gemm_rate(lhs_shape, rhs_shape, batch_dims: int, iters: int = 200) -> float:
    """GFLOP/s of one jitted dot at these shapes (leading `batch_dims` batched), timed over
    `iters` dependent repetitions in one program (best of 3)."""
    a = jnp.ones(lhs_shape, jnp.float32)
    b = jnp.ones(rhs_shape, jnp.float32) * 1e-3
    contract = (len(lhs_shape) - 1,), (batch_dims,)
    batch = tuple(range(batch_dims)), tuple(range(batch_dims))

    @jax.jit
    def loop(a, b):
        def body(i, acc):
            x = a + acc[..., :1] * 1e-9  # depends on the last result: no hoisting
            out = jax.lax.dot_general(x, b, (contract, batch))
            return acc + out.sum(axis=-1, keepdims=True).mean() * 0
        return jax.lax.fori_loop(0, iters, body, jnp.zeros(lhs_shape[:-1] + (1,), jnp.float32))

    jax.block_until_ready(loop(a, b))
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(loop(a, b))
        best = min(best, time.perf_counter() - start)
    m = int(np.prod(lhs_shape[:-1]))
    flops = 2 * m * lhs_shape[-1] * rhs_shape[-1] * iters
    return flops / best / 1e9


def _operand_shapes(dot: dict):
    """(lhs, rhs, batch dims) to time a dot of this result shape and contraction: batch dims
    are the result's leading dims beyond a 2-D matmul."""
    result, k = dot["result"], dot["k"]
    if len(result) < 2:
        return None
    batch, m, n = result[:-2], result[-2], result[-1]
    return (tuple(batch) + (m, k)), (tuple(batch) + (k, n)), len(batch)


def thunk_shares(compiled, keys, computations: dict, roles: dict) -> dict:
    """Run `compiled(keys)` once under the profiler; summed thunk time per loop-body role, and
    the dots' part of each."""
    import tempfile

    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
        jax.block_until_ready(compiled(keys))
        jax.profiler.stop_trace()
        path = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"),
                                recursive=True))[-1]
        with gzip.open(path) as f:
            events = json.load(f)["traceEvents"]
    owner, is_dot = {}, set()
    for body, instructions in computations.items():
        for name, _, opcode, rest in instructions:
            owner[name] = roles.get(body, "other")
            if opcode == "dot" or "__ynn_fusion" in rest:
                is_dot.add(name)
    total, dots_us = collections.Counter(), collections.Counter()
    for event in events:
        role = owner.get(event.get("name")) if event.get("ph") == "X" else None
        if role is not None:
            total[role] += event.get("dur", 0)
            if event["name"] in is_dot:
                dots_us[role] += event.get("dur", 0)
    all_us = sum(total.values()) or 1
    return {role: {"share_of_thunk_time": us / all_us, "dots_share_within": dots_us[role] / us}
            for role, us in total.items() if us}


def profile(config, num_seeds: int, repeats: int, trace: bool = False) -> dict:
    keys = jax.random.split(jax.random.key(0), num_seeds)
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(make_train(config))).lower(keys).compile(compiler_options())
    compile_s = time.perf_counter() - start
    computations = parse_hlo(compiled.as_text())
    bodies = [b for b in loop_bodies(computations) if b in computations]
    per_body = {b: dots(computations, b) for b in bodies}
    # Most dots: the minibatch step (forward + backward); next: the rollout step (forward
    # passes); next: the update loop's own body (the bootstrap value's forward, once per update).
    with_dots = sorted((b for b in bodies if per_body[b]), key=lambda b: -len(per_body[b]))
    roles = dict(zip(with_dots, ("minibatch step", "rollout step", "update loop")))
    per_role = {"minibatch step": config.num_updates * config.update_epochs
                * config.num_minibatches, "rollout step": config.num_updates * config.num_steps,
                "update loop": config.num_updates}
    trips = {b: per_role[role] for b, role in roles.items()}
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        jax.block_until_ready(compiled(keys))
        times.append(time.perf_counter() - start)
    run_s = min(times[1:])
    rates, dot_time, dot_flops = {}, 0.0, 0
    for body, n_trips in trips.items():
        for dot in per_body[body]:
            shapes = _operand_shapes(dot)
            if shapes is None or dot["k"] == 0:
                continue
            key = str(shapes)
            if key not in rates:
                rates[key] = gemm_rate(*shapes)
            dot_flops += dot["flops"] * n_trips
            dot_time += dot["flops"] * n_trips / (rates[key] * 1e9)
    shares = thunk_shares(compiled, keys, computations, roles) if trace else None
    return {
        "num_seeds": num_seeds, "compile_s": compile_s, "run_s": run_s,
        "thunk_time_by_body": shares,
        "env_steps_per_second": num_seeds * config.env_steps_per_run / run_s,
        "bodies": [{"name": b, "role": roles.get(b, "other"), "trips_per_run": trips.get(b),
                    "census": census(computations, b),
                    "dots": per_body[b]} for b in bodies],
        "dot_gflop_per_run": dot_flops / 1e9,
        "achieved_gflops": dot_flops / run_s / 1e9,
        "dot_time_at_measured_rates_s": dot_time,
        "dot_share_of_run": dot_time / run_s,
        "gemm_rates_gflops": rates,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", default="1,8")
    parser.add_argument("--total-timesteps", type=int, default=65_536)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--peak-size", type=int, default=1024,
                        help="side of the square GEMM timed as the machine's practical peak")
    parser.add_argument("--trace", action="store_true",
                        help="also split one profiled call's thunk time by loop body")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    try:
        config = build_config(None, env_name=args.env, total_timesteps=args.total_timesteps,
                              **dict(parse_override(s) for s in args.set))
        seeds = [int(s) for s in args.seeds.split(",")]
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    peak = gemm_rate((args.peak_size, args.peak_size), (args.peak_size, args.peak_size), 0,
                     iters=20)
    machine = machine_info()
    cpu = machine.get("cpu_model") or platform.processor()
    print(f"{config.env_name}, {config.env_steps_per_run:,} steps/seed; {cpu}; "
          f"{jax.devices()[0].platform}; square GEMM {args.peak_size}: {peak:.1f} GFLOP/s")
    rows = []
    for n in seeds:
        row = profile(config, n, args.repeats, args.trace)
        rows.append(row)
        print(f"\n{n} seed(s): {row['env_steps_per_second']:,.0f} env steps/s, compile "
              f"{row['compile_s']:.1f} s; dots {row['dot_gflop_per_run']:.2f} GFLOP per run, "
              f"achieved {row['achieved_gflops']:.2f} GFLOP/s = {row['achieved_gflops'] / peak:.1%} "
              f"of the square-GEMM rate; at their own shapes' rates the dots take "
              f"{row['dot_share_of_run']:.0%} of the run")
        for body in row["bodies"]:
            if body["role"] == "other" and not body["dots"]:
                continue
            shapes = collections.Counter(
                f"{'x'.join(map(str, d['result']))} (k={d['k']})" for d in body["dots"])
            print(f"  {body['role']:<15} x{body['trips_per_run']}: {body['census']}")
            print(f"    dots: {dict(shapes)}")
        for role, share in (row["thunk_time_by_body"] or {}).items():
            print(f"  profiled thunk time, {role}: {share['share_of_thunk_time']:.0%} "
                  f"(dots {share['dots_share_within']:.0%} of it)")
    result = {"benchmark": "profile_update", "cpu": cpu, "machine": machine, "platform": jax.devices()[0].platform,
              "jax": jax.__version__, "config": {k: str(v) for k, v in vars(config).items()},
              "square_gemm_gflops": peak, "peak_size": args.peak_size, "rows": rows}
    out = args.out or os.path.join(HERE, "results",
                                   f"profile_update_{jax.devices()[0].platform}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
