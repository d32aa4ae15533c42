"""Side-by-side speed of purejaxppo and a published peer, rejax, on the same PPO problem.

    python benchmarks/peers.py                              # CartPole-v1, 500k steps, 1 and 8 seeds
    python benchmarks/peers.py --repeats 7 --pin 1          # measured processes pinned to core 1
    python benchmarks/peers.py --pin 0 --busy               # ... CPU burner on the other core
    python benchmarks/peers.py --update-epochs 1            # both sides: 1 epoch instead of 4
    python benchmarks/peers.py --baseline HEAD~1            # also purejaxppo before a change

rejax (PyPI) still steps gymnax environments through the old five-value API, so it lives in its
own virtual environment with gymnax 0.0.9. The script creates that environment once, from the
pins in `PEER_PINS`, and reuses it (`--peer-venv`, default `~/.cache/purejaxppo/peers/rejax-venv`).

Both sides train the same problem: CartPole-v1, 4 envs x 128 steps, 4 epochs x 4 minibatches,
lr 2.5e-4, gamma 0.99, lambda 0.95, clip 0.2, entropy 0.01, value 0.5, max grad norm 0.5, tanh
2x64 MLP actor and critic, vmapped over `--seeds` seed keys. The map from those settings to
each side's config, and the differences rejax does not expose, are in `HPARAM_MAP` and
`DIFFERENCES` (printed, and written into the JSON). `--update-epochs` changes the epochs on both
sides: timing 1 and 4 epochs splits each side's time into a per-epoch part (the minibatch
updates) and the rest (rollout, GAE, loop).

Each measurement is its own subprocess (rejax's in the peer environment's python, purejaxppo's in
this interpreter), run interleaved: peer, ours, peer, ours, ... `--repeats` times per seed count.
A subprocess builds the train function, compiles `jax.jit(jax.vmap(train))` for the seed keys with
`.lower(keys).compile()` (trace + XLA compile, timed as compile_s, its `.lower` part as trace_s,
after a trivial warm-up compile so that JAX/XLA start-up is not counted; purejaxppo with its
`compiler_options()`, as its own entry points compile, rejax with XLA's defaults unless
`--peer-compiler-options` gives it others), calls it `--warmup`
times (default 1; those times are recorded, not used), then times one more call
(`jax.block_until_ready`) and prints one JSON line: steps/s = env steps of all seeds / seconds,
compile and trace seconds, and the returns per seed.

`--baseline REV` adds a third side, purejaxppo as it was at git revision REV (`git archive`d to
a temporary directory, first on `PYTHONPATH`; the worker checks that it imported that copy),
timed by the same worker in the same order (peer, before, ours, peer, ...): a before/after table
of a change with the peer in the same run.

Returns (not timed; computed after the timed call):
  * ours  final_return: `purejaxppo.metrics.final_return(result.metrics)`, the mean return of the
    training episodes that finished in the last 10 updates;
  * both  eval_return: rejax's own evaluation, the function its `eval_callback` runs
    (`rejax.evaluate.evaluate`: 128 episodes of the final stochastic policy, each to its end or
    500 steps), and the same protocol for ours (`purejaxppo.evaluate`: 128 episodes, sampled
    actions, first episode of each env). rejax's `train` returns nothing else: it records no
    training-episode returns, so eval_return is the only return it can be compared on.
"""

# Only the standard library at module level: the peer's worker runs this file in the peer's venv,
# which has no purejaxppo, and the parent process needs no JAX at all.
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "results", "peers_cpu.json")
DEFAULT_PEER_VENV = os.path.join(os.path.expanduser("~"), ".cache", "purejaxppo", "peers",
                                 "rejax-venv")

PEER = "rejax"
# The peer's environment, as found working (Python 3.11, CPU): rejax needs gymnax's pre-1.0
# five-value step API, i.e. gymnax 0.0.9; jax/jaxlib are pinned to the versions purejaxppo's
# requirements-lock.txt uses, so both sides run the same XLA.
PEER_PINS = (
    "rejax==0.1.3",
    "gymnax==0.0.9",
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "chex==0.1.92",
    "distrax==0.1.9",
    "numpy==2.4.6",
)

# The shared problem. Everything both sides are given comes from here.
PROBLEM = {
    "env_name": "CartPole-v1",
    "num_envs": 4,
    "num_steps": 128,
    "update_epochs": 4,
    "num_minibatches": 4,
    "learning_rate": 2.5e-4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_eps": 0.2,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "hidden_sizes": [64, 64],
    "activation": "tanh",
}
EVAL_EPISODES = 128  # what rejax's eval_callback uses

# (setting, purejaxppo PPOConfig, rejax PPO.create(...) key): how each side is told the problem.
HPARAM_MAP = [
    ("environment", "env_name='CartPole-v1' (gymnax 1.0.1, 6-value step)",
     "env='CartPole-v1' (gymnax 0.0.9, 5-value step)"),
    ("env steps per seed", "total_timesteps (rounded down to num_updates x 512)",
     "total_timesteps = eval_freq = num_updates x 512 (so exactly num_updates iterations)"),
    ("parallel envs", "num_envs=4", "num_envs=4"),
    ("rollout length", "num_steps=128", "num_steps=128"),
    ("epochs", "update_epochs=4 (--update-epochs)", "num_epochs=4 (--update-epochs)"),
    ("minibatches", "num_minibatches=4", "num_minibatches=4"),
    ("learning rate", "learning_rate=2.5e-4", "learning_rate=2.5e-4"),
    ("discount", "gamma=0.99", "gamma=0.99"),
    ("GAE lambda", "gae_lambda=0.95", "gae_lambda=0.95"),
    ("policy clip", "clip_eps=0.2", "clip_eps=0.2"),
    ("value clip", "clip_value=True, vf_clip_eps=0.2", "always on, uses clip_eps (0.2)"),
    ("entropy coef", "ent_coef=0.01", "ent_coef=0.01"),
    ("value coef", "vf_coef=0.5", "vf_coef=0.5"),
    ("max grad norm", "max_grad_norm=0.5", "max_grad_norm=0.5"),
    ("network", "hidden_sizes=(64, 64), activation='tanh' (separate actor and critic)",
     "agent_kwargs={'hidden_layer_sizes': (64, 64), 'activation': 'tanh'} "
     "(separate actor, critic)"),
    ("advantage normalisation", "normalize_advantages=True (per minibatch, std + 1e-8)",
     "always on (per minibatch, std + 1e-8)"),
    ("observation / reward normalisation", "normalize_obs=False, normalize_reward=False",
     "normalize_observations=False, normalize_rewards=False"),
    ("LR schedule", "anneal_lr=False (aligned to rejax; --ours-defaults: True)",
     "constant (not configurable)"),
    ("Adam epsilon", "adam_eps=1e-8 (aligned to rejax; --ours-defaults: 1e-5)",
     "1e-8 (optax.adam default, not configurable)"),
    ("evaluation during training", "none", "eval_callback replaced by a no-op in the timed "
     "program, skip_initial_evaluation=True, eval_freq=all steps; evaluated once afterwards"),
]

DIFFERENCES = [
    "Optimiser: rejax trains actor and critic with two optimisers (optax.chain(clip(max_grad_norm)"
    ", adam)), two backward passes per minibatch, actor then critic, so the gradient norm is "
    "clipped per network; purejaxppo takes one gradient of the summed loss "
    "(policy + vf_coef*value - ent_coef*entropy) and clips its global norm over both networks.",
    "Initialisation: rejax uses flax's default Dense init (lecun_normal kernels, zero biases) in "
    "every layer; purejaxppo uses orthogonal init (gain sqrt(2) hidden, 0.01 policy head, 1.0 "
    "value head). Not configurable on either side.",
    "Time limits: rejax treats CartPole's 500-step truncation as termination (gymnax 0.0.9's "
    "`done`, no bootstrap); purejaxppo bootstraps from V(final observation) on truncation "
    "(gymnax 1.x terminated/truncated). Not configurable on either side.",
    "Environment code: rejax steps gymnax 0.0.9's CartPole; purejaxppo gymnax 1.0.1's through "
    "purejaxppo.envs (auto-reset with final_observation), with its CPU fast paths "
    "(fast_paths='auto').",
    "Bookkeeping inside the timed program: purejaxppo records its per-update metrics (episode "
    "returns/lengths/counts, losses, entropy, KL, clip fraction, explained variance, grad norm, "
    "LR; purejaxppo.metrics.Metrics) and a divergence check; rejax records nothing (its only "
    "output, evaluation, is switched off while timing).",
    "LR annealing and Adam epsilon: rejax has neither switch (constant LR, eps 1e-8), so by "
    "default purejaxppo is run with anneal_lr=False, adam_eps=1e-8; --ours-defaults runs "
    "purejaxppo's own defaults (annealing to 0, eps 1e-5) instead.",
    "Returns: rejax's train returns only its evaluations; see eval_return. purejaxppo's "
    "final_return (training episodes of the last 10 updates) has no rejax counterpart.",
]


# ---------------------------------------------------------------------------------------------
# Workers: one measurement each, run as `python peers.py --worker SIDE --spec JSON`.
# ---------------------------------------------------------------------------------------------

def _finite_or_none(values):
    return [float(v) if math.isfinite(float(v)) else None for v in values]


def _versions(names):
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _time_program(jax, fn, keys, warmup: int, compiler_options=None):
    """Compile `jit(vmap(fn))` for `keys`, run it `warmup` times, then time one more call.
    Returns `(output, (compile_s, trace_s), warmup_s, run_s)`: compile_s is trace_s (tracing
    and lowering to StableHLO, Python) plus XLA's compilation of the lowered program."""
    jax.jit(lambda x: x + 1).lower(0).compile()  # JAX/XLA start-up, not part of compile_s
    start = time.perf_counter()
    lowered = jax.jit(jax.vmap(fn), compiler_options=compiler_options or None).lower(keys)
    trace_s = time.perf_counter() - start
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    warmup_s = []
    for _ in range(warmup):
        start = time.perf_counter()
        jax.block_until_ready(compiled(keys))
        warmup_s.append(time.perf_counter() - start)
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    return out, (compile_s, trace_s), warmup_s, time.perf_counter() - start


def _worker_ours(spec: dict) -> dict:
    import jax
    import numpy as np

    import purejaxppo
    from purejaxppo import PPOConfig, compiler_options, final_return, make_trainer

    fields = dict(spec["ours_config"])
    fields["hidden_sizes"] = tuple(fields["hidden_sizes"])
    config = PPOConfig(**fields)
    trainer = make_trainer(config)
    n = spec["num_seeds"]
    keys = jax.random.split(jax.random.key(spec["seed"]), n)
    options = compiler_options()  # as purejaxppo's own entry points compile
    result, (compile_s, trace_s), warmup_s, run_s = _time_program(jax, trainer.train, keys,
                                                                   spec["warmup"], options)

    updates = np.asarray(result.metrics.episode_return).shape[-1]
    steps_per_seed = updates * config.batch_size
    out = {"final_return": _finite_or_none(np.asarray(final_return(result.metrics))),
           "final_return_kind": "mean return of training episodes finished in the last 10 "
                                "updates (purejaxppo.metrics.final_return)"}
    try:  # same protocol as rejax's evaluation; optional, the evaluator API may move
        from purejaxppo.evaluate import make_evaluator

        evaluator = make_evaluator(trainer, num_episodes=EVAL_EPISODES, deterministic=False)
        eval_keys = jax.random.split(jax.random.key(spec["seed"] + 1), n)
        ev = evaluator(result.params, result.obs_stats, eval_keys)
        out["eval_return"] = _finite_or_none(np.asarray(ev.returns).mean(-1))
    except Exception as err:  # noqa: BLE001
        out["eval_return"], out["eval_error"] = None, f"{type(err).__name__}: {err}"
    out.update(package=os.path.dirname(os.path.abspath(purejaxppo.__file__)),
               steps_per_seed=steps_per_seed, compiler_options=options, compile_s=compile_s,
               trace_s=trace_s,
               warmup_s=warmup_s, run_s=run_s, versions=_versions(["purejaxppo", "jax", "jaxlib", "flax", "optax",
                                                "gymnax", "numpy"]),
               device=str(jax.devices()[0]))
    return out


def _worker_rejax(spec: dict) -> dict:
    import jax
    import numpy as np
    from rejax import PPO

    p = spec["problem"]
    steps = spec["steps_per_seed"]  # a whole number of iterations of num_envs x num_steps
    algo = PPO.create(
        env=p["env_name"],
        total_timesteps=steps,
        eval_freq=steps,  # one (outer) evaluation iteration containing all training iterations
        skip_initial_evaluation=True,
        num_envs=p["num_envs"],
        num_steps=p["num_steps"],
        num_epochs=p["update_epochs"],
        num_minibatches=p["num_minibatches"],
        learning_rate=p["learning_rate"],
        gamma=p["gamma"],
        gae_lambda=p["gae_lambda"],
        clip_eps=p["clip_eps"],
        ent_coef=p["ent_coef"],
        vf_coef=p["vf_coef"],
        max_grad_norm=p["max_grad_norm"],
        normalize_observations=False,
        normalize_rewards=False,
        agent_kwargs={"activation": p["activation"],
                      "hidden_layer_sizes": list(p["hidden_sizes"])},
    )
    evaluate = algo.eval_callback  # rejax's own: 128 episodes of the stochastic policy
    timed = algo.replace(eval_callback=lambda algo, ts, rng: ())  # no evaluation while timed
    n = spec["num_seeds"]
    keys = jax.random.split(jax.random.key(spec["seed"]), n)
    options = spec.get("peer_compiler_options") or {}
    (ts, _), (compile_s, trace_s), warmup_s, run_s = _time_program(jax, timed.train, keys,
                                                                    spec["warmup"], options)

    global_step = np.asarray(ts.global_step)
    if not np.all(global_step == steps):
        raise RuntimeError(f"rejax took {global_step.tolist()} env steps, expected {steps}")
    lengths, returns = jax.jit(jax.vmap(lambda s: evaluate(algo, s, s.rng)))(ts)
    return {"final_return": None,
            "final_return_kind": "n/a: rejax's train returns no training-episode returns",
            "eval_return": _finite_or_none(np.asarray(returns).mean(-1)),
            "eval_mean_length": _finite_or_none(np.asarray(lengths).mean(-1)),
            "steps_per_seed": int(global_step[0]), "compiler_options": options,
            "compile_s": compile_s, "trace_s": trace_s,
            "warmup_s": warmup_s, "run_s": run_s,
            "versions": _versions(["rejax", "jax", "jaxlib", "flax", "optax", "gymnax",
                                   "distrax", "chex", "numpy"]),
            "device": str(jax.devices()[0])}


def worker_main(side: str, spec: dict) -> int:
    out = (_worker_ours if side == "ours" else _worker_rejax)(spec)
    n = spec["num_seeds"]
    out.update(side=side, num_seeds=n, env_steps=n * out["steps_per_seed"],
               sps=n * out["steps_per_seed"] / out["run_s"],
               compile_method="jax.jit(jax.vmap(train)).lower(keys).compile() "
                              "(trace + XLA compile)",
               affinity=sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else None,
               eval_return_kind=f"{EVAL_EPISODES} episodes of the final policy, sampled actions, "
                                f"each to its end or the 500-step limit (not timed)")
    print(json.dumps(out), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# Parent: peer environment, interleaved subprocesses, table and JSON.
# ---------------------------------------------------------------------------------------------

def _venv_python(venv: str) -> str:
    return os.path.join(venv, "Scripts" if os.name == "nt" else "bin", "python")


def ensure_peer_venv(venv: str, reinstall: bool = False) -> str:
    """The peer venv's python; created (`python -m venv`, `pip install PEER_PINS`) when missing,
    when its recorded pins differ from `PEER_PINS`, or with `reinstall`."""
    marker = os.path.join(venv, "purejaxppo-peer.json")
    python = _venv_python(venv)
    want = {"pins": list(PEER_PINS), "python": platform.python_version()}
    if not reinstall and os.path.exists(marker) and os.path.exists(python):
        with open(marker) as f:
            if json.load(f) == want:
                return python
    print(f"creating the {PEER} environment in {venv}: {' '.join(PEER_PINS)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
    pip = subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check",
                          *PEER_PINS], capture_output=True, text=True)
    if pip.returncode != 0:
        raise RuntimeError(f"pip install into {venv} failed:\n{pip.stdout[-3000:]}"
                           f"{pip.stderr[-3000:]}")
    subprocess.run([python, "-c", "import rejax, gymnax, jax"], check=True)
    with open(marker, "w") as f:
        json.dump(want, f)
    return python


def _pip_freeze(python: str) -> list[str]:
    out = subprocess.run([python, "-m", "pip", "freeze", "--disable-pip-version-check"],
                         capture_output=True, text=True)
    return out.stdout.split() if out.returncode == 0 else []


def machine_info() -> dict:
    info = {"machine": platform.machine(), "system": platform.platform(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "cpus_usable": (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                            else None)}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu_model"] = fields.get("Model name")
        for key in ("CPU(s)", "Thread(s) per core", "Core(s) per socket", "Socket(s)",
                    "Hypervisor vendor"):
            if key in fields:
                info["lscpu " + key] = fields[key]
    except OSError:
        pass
    if not info.get("cpu_model"):
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        info["cpu_model"] = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
    return info


def write_report(path: str, report: dict) -> None:
    """Write `report` as JSON to `path` (creating its directory) and say where."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {path}")


def _affinity(cores):
    if cores is None:
        return None
    return lambda: os.sched_setaffinity(0, cores)


def run_worker(python: str, side: str, spec: dict, cores, timeout: float,
               env: dict | None = None) -> dict:
    """One measurement in a subprocess (pinned to `cores`, with `env` added to the environment)."""
    cmd = [python, os.path.abspath(__file__), "--worker", side, "--spec", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_affinity(cores), cwd=HERE,
                          env={**os.environ, **(env or {})})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{side} worker failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-4000:]}{proc.stdout[-2000:]}")
    return json.loads(lines[-1])


def start_burner(cores):
    """A CPU-burning process (a Python busy loop) pinned to `cores`."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=_affinity(cores))


def _mean_std(values):
    values = [v for v in values or [] if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.pstdev(values)


def summarise(runs: list[dict]) -> dict:
    run_s = [r["run_s"] for r in runs]
    sps = [r["sps"] for r in runs]
    first = runs[0]  # same seed keys in every repeat: returns are identical up to float noise
    final = _mean_std(first.get("final_return"))
    ev = _mean_std(first.get("eval_return"))
    return {
        "sps_median": statistics.median(sps),
        "sps_best": max(sps),
        "run_s": run_s,
        "spread_max_over_min": max(run_s) / min(run_s),
        "compile_s": [r["compile_s"] for r in runs],
        "compile_s_median": statistics.median(r["compile_s"] for r in runs),
        "trace_s_median": statistics.median(r["trace_s"] for r in runs),
        "final_return_mean": final[0], "final_return_std": final[1],
        "eval_return_mean": ev[0], "eval_return_std": ev[1],
        "runs": runs,
    }


def _fmt_return(mean, std):
    return "n/a" if mean is None else f"{mean:.1f} ± {std:.1f}"


def format_table(rows: list[dict]) -> str:
    before = any("before" in row for row in rows)
    header = ["seeds", "ours sps median", "ours sps best", f"{PEER} sps median",
              f"{PEER} sps best", "ratio (medians, ours/peer)", *(
                  ["before sps median", "before/peer", "ours/before"] if before else []),
              "spread max/min ours",
              f"spread max/min {PEER}", "compile s ours (trace)", f"compile s {PEER} (trace)",
              "ours final return (train, last 10 upd.)", "ours eval return",
              f"{PEER} eval return"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        o, p = row["ours"], row["peer"]
        cells = [str(row["num_seeds"]), f"{o['sps_median']:,.0f}", f"{o['sps_best']:,.0f}",
                 f"{p['sps_median']:,.0f}", f"{p['sps_best']:,.0f}",
                 f"{row['ratio_of_medians']:.2f}", *([
                     f"{row['before']['sps_median']:,.0f}",
                     f"{row['ratio_before_over_peer']:.2f}",
                     f"{row['ratio_ours_over_before']:.2f}"] if before else []),
                 f"{o['spread_max_over_min']:.3f}",
                 f"{p['spread_max_over_min']:.3f}",
                 f"{o['compile_s_median']:.2f} ({o['trace_s_median']:.2f})",
                 f"{p['compile_s_median']:.2f} ({p['trace_s_median']:.2f})",
                 _fmt_return(o["final_return_mean"], o["final_return_std"]),
                 _fmt_return(o["eval_return_mean"], o["eval_return_std"]),
                 _fmt_return(p["eval_return_mean"], p["eval_return_std"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _parse_cores(text):
    if text is None:
        return None
    return {int(c) for c in text.split(",") if c.strip()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,8",
                        help="comma-separated seed counts, each measured separately (default 1,8)")
    parser.add_argument("--total-timesteps", type=int, default=500_000,
                        help="env steps per seed, rounded down to whole updates of 4 x 128 "
                             "(default 500000 -> 976 updates, 499,712 steps)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="measurements (subprocesses) per side and seed count (default 5)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="warm-up calls before the timed one, per subprocess (default 1; "
                             "their times are recorded, not used)")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed of the seed keys")
    parser.add_argument("--update-epochs", type=int, default=PROBLEM["update_epochs"],
                        help="epochs per update on both sides (default "
                             f"{PROBLEM['update_epochs']})")
    parser.add_argument("--ours-defaults", action="store_true",
                        help="run purejaxppo with its own defaults (anneal_lr=True, "
                             "adam_eps=1e-5) instead of aligning them to what rejax does")
    parser.add_argument("--peer-compiler-options", type=json.loads, default={}, metavar="JSON",
                        help=f"XLA compile options for {PEER}'s program, e.g. "
                             "'{\"xla_backend_optimization_level\": 1}' (what purejaxppo "
                             "compiles with on CPU; default: none, XLA's defaults)")
    parser.add_argument("--peer-venv", default=DEFAULT_PEER_VENV,
                        help=f"the {PEER} virtual environment (created when missing; "
                             f"default {DEFAULT_PEER_VENV})")
    parser.add_argument("--reinstall-peer", action="store_true",
                        help="recreate the peer environment")
    parser.add_argument("--pin", default=None, metavar="CORES",
                        help="pin every measured subprocess to these cores, e.g. 1 or 0,1")
    parser.add_argument("--busy", action="store_true",
                        help="run a CPU-burning process on a core outside --pin during the "
                             "measurements (without --pin: measure on the first usable core, "
                             "burn the next)")
    parser.add_argument("--env", action="append", default=[], metavar="VAR=VALUE",
                        help="set this environment variable in every measured subprocess, both "
                             "sides, e.g. PJRT_NPROC=1 (the size of XLA:CPU's thread pool; "
                             "default: the number of usable cores)")
    parser.add_argument("--timeout", type=float, default=3600,
                        help="seconds allowed per subprocess (default 3600)")
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="also time purejaxppo at this git revision (a third side, "
                             "'before'), interleaved with the other two")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON output path")
    parser.add_argument("--worker", choices=["ours", PEER], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.worker, json.loads(args.spec))

    try:
        seed_counts = [int(s) for s in args.seeds.split(",") if s.strip()]
        if not seed_counts or any(n <= 0 for n in seed_counts):
            raise ValueError(f"--seeds: positive integers expected, got {args.seeds!r}")
        if args.repeats <= 0 or args.warmup < 0:
            raise ValueError("--repeats must be positive and --warmup >= 0")
        if args.update_epochs <= 0:
            raise ValueError(f"--update-epochs: must be positive, got {args.update_epochs}")
        problem = dict(PROBLEM, update_epochs=args.update_epochs)
        batch = problem["num_envs"] * problem["num_steps"]
        num_updates = args.total_timesteps // batch
        if num_updates < 1:
            raise ValueError(f"--total-timesteps: at least one update ({batch} steps) needed")
        pin = _parse_cores(args.pin)
        extra_env = {}
        for item in args.env:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise ValueError(f"--env: VAR=VALUE expected, got {item!r}")
            extra_env[name] = value
        usable = sorted(os.sched_getaffinity(0))
        burn = None
        if args.busy:
            if pin is None:
                if len(usable) < 2:
                    raise ValueError("--busy needs at least two usable cores")
                pin = {usable[0]}
            others = [c for c in usable if c not in pin]
            if not others:
                raise ValueError("--busy: no usable core left outside --pin for the burner")
            burn = {others[0]}
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    steps_per_seed = num_updates * batch
    ours_config = dict(problem)
    ours_config.update(total_timesteps=args.total_timesteps, vf_clip_eps=problem["clip_eps"],
                       clip_value=True, normalize_advantages=True, normalize_obs=False,
                       normalize_reward=False)
    if not args.ours_defaults:
        ours_config.update(anneal_lr=False, adam_eps=1e-8)

    baseline = None
    if args.baseline is not None:  # purejaxppo at that revision, in a temporary directory
        import tempfile

        from commits import materialise  # benchmarks/commits.py

        scratch = tempfile.TemporaryDirectory(prefix="peers-baseline-")
        tree = os.path.join(scratch.name, "before")
        baseline = {"revision": args.baseline,
                    "commit": materialise(args.baseline, pathlib.Path(tree)),
                    "tree": tree}
        print(f"before: purejaxppo at {args.baseline} = {baseline['commit']}")
    peer_python = ensure_peer_venv(args.peer_venv, args.reinstall_peer)
    machine = machine_info()
    print(f"{problem['env_name']}: {problem['num_envs']} envs x {problem['num_steps']} steps, "
          f"{problem['update_epochs']} epochs x {problem['num_minibatches']} minibatches, "
          f"{num_updates} updates = {steps_per_seed:,} steps/seed; {args.repeats} repeats "
          f"interleaved ({PEER}, ours, ...), warm-up calls {args.warmup}")
    print(f"machine: {machine.get('cpu_model')}, {machine['cpu_count']} cpus "
          f"({machine['cpus_usable']} usable); measured on cores "
          f"{sorted(pin) if pin else 'any'}; burner: {sorted(burn) if burn else 'none'}; "
          f"environment added: {extra_env or 'none'}")
    print(f"{PEER} environment {args.peer_venv}: {', '.join(PEER_PINS)}")
    print("settings (purejaxppo | rejax):")
    for name, ours, peer in HPARAM_MAP:
        print(f"  {name}: {ours} | {peer}")
    print("differences rejax does not expose:")
    for diff in DIFFERENCES:
        print(f"  - {diff}")
    sys.stdout.flush()

    burner = start_burner(burn) if burn else None
    rows = []
    try:
        for n in seed_counts:
            sides = [(PEER, "peer", peer_python, extra_env)]
            if baseline:
                sides.append(("ours", "before", sys.executable,
                              {**extra_env, "PYTHONPATH": baseline["tree"]}))
            sides.append(("ours", "ours", sys.executable, extra_env))
            runs = {name: [] for _, name, _, _ in sides}
            for rep in range(args.repeats):
                for worker, name, python, env in sides:
                    spec = {"num_seeds": n, "seed": args.seed, "warmup": args.warmup,
                            "problem": problem, "steps_per_seed": steps_per_seed,
                            "ours_config": ours_config,
                            "peer_compiler_options": args.peer_compiler_options}
                    r = run_worker(python, worker, spec, pin, args.timeout, env)
                    if r["steps_per_seed"] != steps_per_seed:
                        raise RuntimeError(f"{name}: {r['steps_per_seed']} steps per seed, "
                                           f"expected {steps_per_seed}")
                    if name == "before" and os.path.realpath(r["package"]) != os.path.realpath(
                            os.path.join(baseline["tree"], "purejaxppo")):
                        raise RuntimeError(f"before: imported purejaxppo from {r['package']}")
                    runs[name].append(r)
                    side = PEER if name == "peer" else name
                    print(f"  seeds {n} repeat {rep + 1}/{args.repeats} {side:>6}: "
                          f"{r['sps']:>12,.0f} steps/s  run {r['run_s']:.2f} s  "
                          f"compile {r['compile_s']:.2f} s (trace {r['trace_s']:.2f} s)",
                          flush=True)
            ours, peer = summarise(runs["ours"]), summarise(runs["peer"])
            row = {"num_seeds": n, "ours": ours, "peer": peer,
                   "ratio_of_medians": ours["sps_median"] / peer["sps_median"]}
            if baseline:
                before = summarise(runs["before"])
                row.update(before=before,
                           ratio_before_over_peer=before["sps_median"] / peer["sps_median"],
                           ratio_ours_over_before=ours["sps_median"] / before["sps_median"])
            rows.append(row)
    finally:
        if burner is not None:
            burner.terminate()
            burner.wait()

    print()
    print(format_table(rows))
    first_ours, first_peer = rows[0]["ours"]["runs"][0], rows[0]["peer"]["runs"][0]
    result = {
        "benchmark": "peers",
        "peer": PEER,
        "machine": machine,
        "ours_versions": first_ours["versions"],
        "peer_versions": first_peer["versions"],
        "peer_pins": list(PEER_PINS),
        "peer_pip_freeze": _pip_freeze(peer_python),
        "peer_venv": os.path.abspath(args.peer_venv),
        "device": {"ours": first_ours["device"], "peer": first_peer["device"]},
        "pinned_cores": sorted(pin) if pin else None,
        "busy": bool(burn),
        "burner_cores": sorted(burn) if burn else None,
        "environment_added": extra_env,
        "repeats": args.repeats,
        "warmup_calls": args.warmup,
        "order": (f"per seed count: {PEER}, {'before, ' if baseline else ''}ours, {PEER}, ... "
                  f"(one subprocess each)"),
        "baseline": None if baseline is None else {k: baseline[k] for k in ("revision", "commit")},
        "timing": ("compile_s: jax.jit(jax.vmap(train)).lower(keys).compile() (trace + XLA "
                   "compile), after a trivial warm-up compile; trace_s: its .lower(keys) part "
                   "(tracing and lowering, Python); run_s: one call after "
                   "`warmup` calls, jax.block_until_ready; sps = num_seeds * steps_per_seed / "
                   "run_s; *_median / *_best over repeats; spread_max_over_min = max(run_s) / "
                   "min(run_s); ratio_of_medians = ours sps_median / peer sps_median"),
        "returns": ("final_return (ours only): purejaxppo.metrics.final_return, training "
                    "episodes of the last 10 updates; eval_return (both): 128 episodes of the "
                    "final policy with sampled actions, rejax's own eval_callback function and "
                    "purejaxppo.evaluate, not timed; mean ± std over seeds of the first repeat"),
        "problem": problem,
        "num_updates": num_updates,
        "env_steps_per_seed": steps_per_seed,
        "ours_config": ours_config,
        "ours_aligned_to_peer": not args.ours_defaults,
        "peer_compiler_options": args.peer_compiler_options,
        "hparam_map": [{"setting": s, "purejaxppo": o, PEER: p} for s, o, p in HPARAM_MAP],
        "differences": DIFFERENCES,
        "results": rows,
    }
    if first_ours["versions"].get("jax") != first_peer["versions"].get("jax"):
        print(f"note: jax differs: ours {first_ours['versions'].get('jax')}, "
              f"{PEER} {first_peer['versions'].get('jax')}")
    write_report(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
