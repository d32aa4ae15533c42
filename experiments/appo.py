"""APPO's learning figures: APPO against PPO at the PPO presets' budgets, and a policy-lag sweep.

    .venv/bin/python experiments/appo.py learning              # CartPole-v1, Acrobot-v1
    .venv/bin/python experiments/appo.py lag                   # CartPole-v1, L in 0,1,4,16
    .venv/bin/python experiments/appo.py minatar               # Breakout-MinAtar, 1e7, 4 seeds
    .venv/bin/python experiments/appo.py table                 # the tables of what is there

`learning`: each env's PPO preset, and the same preset with APPO's learner (the `appo` preset's
learner settings: objective "appo", V-trace, policy_lag 1, circular buffer N=4, K=2, target
refreshed every 8 updates), `--num-seeds` seeds from base key `--seed` (default 1, the project's
report seeds: the `appo` preset was not tuned on any). `lag`: CartPole-v1 with APPO's learner at
policy lag L in `--lags`, with V-trace and without it (`advantage_estimator="gae"`: ρ = c = 1,
no correction of the lag in the value targets and advantages). `minatar`: Breakout-MinAtar at
the `minatar` preset's 1e7 steps, PPO against APPO's learner, 4 seeds, with the network of
`--network` (default "mlp", gymnax-blines' published network: the CNN costs about 70 minutes per
arm on 2 CPU cores). Every run is one compiled program
vmapped over the seeds; final return = mean return of the episodes of the last 10 updates, per
seed; IQM with a 95 % stratified-bootstrap interval (`purejaxppo.stats`); "solved" = the
threshold of `stats.SOLVED_THRESHOLDS`; "steps to 450" = the first update at which the mean over
seeds of the update's episode return reaches 450 (RLlib's APPO example: "450 within about 4M
steps" on CartPole). JSON per run in experiments/results/appo/, tables in appo.md there.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
import time

import jax
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peers import machine_info  # noqa: E402
from purejaxppo import final_return, make_train, presets, stats  # noqa: E402
from purejaxppo.logs import json_safe  # noqa: E402

OUT = pathlib.Path(__file__).parent / "results" / "appo"
APPO_FIELDS = ("policy_objective", "advantage_estimator", "policy_lag", "buffer_num_batches",
               "buffer_iterations_per_batch", "target_update_every", "tau",
               "behaviour_ratio_clip")
ENV_PRESETS = {"CartPole-v1": "cartpole", "Acrobot-v1": "acrobot"}
TUNE_SEEDS = (0,)  # base keys the PPO presets were tuned on
BOOTSTRAP_REPS = 2000


def appo_learner() -> dict:
    """The `appo` preset's learner settings (the fields APPO adds to PPO)."""
    appo = presets.get("appo")
    return {name: getattr(appo, name) for name in APPO_FIELDS}


def ppo_and_appo(base) -> tuple:
    """The two arms of a comparison: ("ppo", the preset), ("appo", it with APPO's learner)."""
    return ("ppo", base), ("appo", base.replace(**appo_learner()))


def train(config, num_seeds: int, seed: int) -> dict:
    """One compiled vmapped run; the record (final return per seed, curve, timing)."""
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(make_train(config))).lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    metrics = jax.tree.map(np.asarray, jax.block_until_ready(compiled(keys)).metrics)
    run_s = time.perf_counter() - start
    final = final_return(metrics)
    curve = np.nanmean(np.asarray(metrics.episode_return, np.float64), axis=0)
    reached = np.flatnonzero(curve >= 450.0)
    return {"env": config.env_name, "num_seeds": num_seeds, "seed": seed,
            "tune_seeds": list(TUNE_SEEDS), "final_return_per_seed": final.tolist(),
            "final_return_mean": float(np.nanmean(final)),
            "final_return_std": float(np.nanstd(final)),
            "steps_to_450": (int((reached[0] + 1) * config.batch_size) if reached.size
                             else None),
            "mean_curve": json_safe(curve), "batch_size": config.batch_size,
            "config": {k: v for k, v in vars(config).items()}, "compile_s": compile_s,
            "run_s": run_s, "steps_per_second": num_seeds * config.env_steps_per_run / run_s,
            "machine": machine_info(), "jax": jax.__version__,
            "date": datetime.date.today().isoformat()}


def save(name: str, record: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(record, indent=1))
    print(f"{name}: final {record['final_return_mean']:.1f} ± {record['final_return_std']:.1f} "
          f"({record['num_seeds']} seeds), steps to 450: {record['steps_to_450']}, "
          f"{record['steps_per_second']:,.0f} steps/s, compile {record['compile_s']:.1f} s",
          flush=True)


def run_learning(args) -> None:
    for env in args.envs.split(","):
        for algo, config in ppo_and_appo(presets.get(ENV_PRESETS[env], env_name=env)):
            save(f"learning_{env}_{algo}", train(config, args.num_seeds, args.seed))


def run_minatar(args) -> None:
    base = presets.get("minatar", env_name="Breakout-MinAtar", network=args.network)
    for algo, config in ppo_and_appo(base):
        save(f"minatar_Breakout-MinAtar_{args.network}_{algo}",
             train(config, args.num_seeds, args.seed))


def run_lag(args) -> None:
    base = presets.get("cartpole").replace(**appo_learner())
    for lag in (int(v) for v in args.lags.split(",")):
        for estimator in ("vtrace", "gae"):
            config = base.replace(policy_lag=lag, advantage_estimator=estimator)
            save(f"lag_{lag}_{estimator}", train(config, args.num_seeds, args.seed))


def row(record: dict, label: str) -> str:
    finals = np.asarray(record["final_return_per_seed"], np.float64)
    estimate = stats.stratified_bootstrap_ci(finals, reps=BOOTSTRAP_REPS)
    threshold = stats.SOLVED_THRESHOLDS.get(record["env"])
    solved = (f"{stats.solved_fraction(finals, threshold.value):.0%}" if threshold else "–")
    steps = record["steps_to_450"]
    return (f"| {label} | {record['final_return_mean']:.1f} ± {record['final_return_std']:.1f} | "
            f"{estimate.value:.1f} [{estimate.low:.1f}, {estimate.high:.1f}] | {solved} | "
            f"{'–' if steps is None else f'{steps:,}'} | {record['steps_per_second']:,.0f} |")


def tables() -> str:
    """Markdown tables of every record in experiments/results/appo/."""
    records = {p.stem: json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))}
    head = ("| run | final return (mean ± std) | IQM [95 % CI] | solved | steps to 450 | "
            "steps/s |\n|---|---|---|---|---|---|")
    parts = []
    learning = [k for k in records if k.startswith("learning_")]
    if learning:
        parts += ["### APPO against PPO (PPO presets' budgets)", head]
        parts += [row(records[k], k.removeprefix("learning_").replace("_", " ")) for k in learning]
    minatar = [k for k in records if k.startswith("minatar_")]
    if minatar:
        parts += ["", "### APPO against PPO on MinAtar (1e7 steps)", head]
        parts += [row(records[k], k.removeprefix("minatar_").replace("_", " ")
                      + f" ({records[k]['num_seeds']} seeds)") for k in minatar]
    lag = sorted((k for k in records if k.startswith("lag_")),
                 key=lambda k: (int(k.split("_")[1]), k.split("_")[2] != "vtrace"))
    if lag:
        parts += ["", "### Policy lag on CartPole-v1 (APPO's learner)", head]
        parts += [row(records[k], f"L = {k.split('_')[1]}, "
                      f"{'V-trace' if k.endswith('vtrace') else 'no correction (gae)'}")
                  for k in lag]
    any_record = next(iter(records.values()), None)
    if any_record:
        dates = sorted({r["date"] for r in records.values()})
        parts += ["", f"Seeds: base key {any_record['seed']}, 8 seeds unless the row says "
                  f"(tuning used base key {TUNE_SEEDS[0]}); machine: "
                  f"{any_record['machine'].get('cpu_model')}, {', '.join(dates)}. steps/s were "
                  "measured with other jobs sharing the cores: not a speed comparison."]
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", choices=("learning", "lag", "minatar", "table"))
    parser.add_argument("--envs", default="CartPole-v1,Acrobot-v1")
    parser.add_argument("--lags", default="0,1,4,16")
    parser.add_argument("--num-seeds", type=int, default=None,
                        help="seeds per run (default 8; 4 for minatar)")
    parser.add_argument("--network", default="mlp", choices=("mlp", "cnn"),
                        help="minatar: the network of both arms")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.num_seeds is None:
        args.num_seeds = 4 if args.study == "minatar" else 8
    if args.seed in TUNE_SEEDS and args.study != "table":
        parser.error(f"--seed {args.seed} is a tuning seed of the PPO presets; report on others")
    if args.study == "learning":
        run_learning(args)
    elif args.study == "lag":
        run_lag(args)
    elif args.study == "minatar":
        run_minatar(args)
    text = tables()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "appo.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
