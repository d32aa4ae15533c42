"""The returns table: each preset trained at its budget over many seeds, beside published PPO.

    .venv/bin/python experiments/returns.py --envs CartPole-v1,Acrobot-v1     # train, then table
    .venv/bin/python experiments/returns.py --family misc --exclude Pong-misc # a family, less one
    .venv/bin/python experiments/returns.py --table                           # only the table

Each env is trained with its preset (`purejaxppo.presets`, at the preset's `total_timesteps`) as
one compiled program vmapped over `--num-seeds` seeds (`jax.random.split(jax.random.key(--seed),
num_seeds)`), then every seed's final
policy is evaluated deterministically (the distribution's mode, observation statistics frozen)
for `--eval-episodes` episodes. Per env it writes `results/returns/<env>.json` (config, machine,
final return per seed, evaluation per seed, per-update mean return per seed) and `<env>.png`
(learning curves, mean ± std over seeds, published figure dashed). Every run then rebuilds
`results/returns.json`, `results/returns.md` and the PNGs from all per-env files present, so envs can be run one at a time (MinAtar
takes over an hour per game on a 2-core CPU).

Final return = mean return of the episodes finished in the last 10 updates (README's definition),
per seed; the first table shows mean ± std over seeds, the second (`interval_table`) also the
interquartile mean (IQM) with its 95 % stratified-bootstrap interval and the fraction of seeds at
or above the solve threshold (`purejaxppo.stats`; thresholds and their sources in
`stats.SOLVED_THRESHOLDS`). The published numbers (from the project's reference notes) were all
produced with time limits treated as terminal; purejaxppo bootstraps through time limits.

Seeds: the presets were tuned with base key 0 (`TUNE_SEEDS`: experiments/tune_presets.sh runs
`purejaxppo sweep` at its default `--seed 0`), so the tables report on base key `REPORT_SEED`
(the default `--seed`), chosen before the runs; every JSON records both (`tune_seeds`,
`report_seeds`), and a `--seed` in `TUNE_SEEDS` needs `--allow-tuning-seed`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import pathlib
import sys
import time
from typing import NamedTuple

import jax
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks.peers.machine_info

from benchmarks.peers import machine_info  # noqa: E402
from purejaxppo import final_return, make_trainer, presets, stats  # noqa: E402
from purejaxppo.evaluate import make_evaluator  # noqa: E402
from purejaxppo.logs import curve_over_runs, json_safe  # noqa: E402

RESULTS = pathlib.Path(__file__).parent / "results"


class Target(NamedTuple):
    """One row of the table: an env, the preset that trains it, and the best published PPO."""

    env: str
    preset: str
    family: str
    published: str  # the best published PPO return at the same budget, as published ("" if none)
    source: str  # where it comes from, and its budget
    budget: int | None = None  # the published budget where the preset's total_timesteps differs


TARGETS = (
    Target("CartPole-v1", "cartpole", "classic", "~490–500 / 490 ± 6",
           "PureJaxRL ppo.py plots / CleanRL docs, 5e5"),
    Target("Acrobot-v1", "acrobot", "classic", "−79", "gymnax-blines, 5e5"),
    Target("MountainCar-v0", "mountaincar", "classic", "−118", "gymnax-blines (64 epochs), 2.5e5"),
    Target("Pendulum-v1", "pendulum", "classic", "−200", "gymnax-blines, 1e6"),
    Target("MountainCarContinuous-v0", "mountaincar-continuous", "classic",
           "~0 (unsolved)", "gymnax-blines, 2.5e5 (SB3 rl-zoo: 88 ± 3 at 2e4, tuned, deterministic)"),
    Target("Breakout-MinAtar", "minatar", "minatar", "43", "gymnax-blines (lr 1e-3, MLP), 1e7"),
    Target("SpaceInvaders-MinAtar", "minatar", "minatar", "~170",
           "PureJaxRL brax_minatar notebook, 1e7"),
    Target("Asterix-MinAtar", "minatar", "minatar", "18", "gymnax-blines (lr 1e-3), 1e7"),
    Target("Freeway-MinAtar", "minatar", "minatar", "59", "gymnax-blines, 1e7"),
    Target("Seaquest-MinAtar", "minatar", "minatar", "", "none found"),
    Target("Catch-bsuite", "bsuite", "bsuite", "1.0", "gymnax-blines, 1e5"),
    Target("DeepSea-bsuite", "bsuite", "bsuite", "0.0 (PPO fails)", "gymnax-blines, 1.5e5",
           budget=150_000),
    Target("MemoryChain-bsuite", "memorychain", "bsuite", "", "none found"),
    Target("UmbrellaChain-bsuite", "bsuite", "bsuite", "", "none found"),
    Target("DiscountingChain-bsuite", "bsuite", "bsuite", "", "none found"),
    Target("SimpleBandit-bsuite", "bsuite", "bsuite", "", "none found"),
    Target("FourRooms-misc", "misc", "misc", "", "none found"),
    Target("MetaMaze-misc", "misc", "misc", "", "none found"),
    Target("PointRobot-misc", "misc", "misc", "", "none found"),
    Target("BernoulliBandit-misc", "misc", "misc", "", "none found"),
    Target("GaussianBandit-misc", "misc", "misc", "", "none found"),
    Target("Reacher-misc", "misc", "misc", "", "none found"),
    Target("Swimmer-misc", "misc", "misc", "", "none found"),
    Target("Pong-misc", "pong", "misc", "", "none found"),
    Target("FrozenLake-misc", "misc", "misc", "", "none found"),
)
# MNISTBandit-bsuite is left out: making it downloads a data set, and these machines are offline.
TARGET_OF = {t.env: t for t in TARGETS}
FAMILIES = sorted({t.family for t in TARGETS})
DEFAULT_NUM_SEEDS = 16
DEFAULT_SEEDS = {"minatar": 8}  # families that cannot afford 16 seeds on a 2-core CPU
TUNE_SEEDS = (0,)  # base keys the presets were tuned on (experiments/tune_presets.sh)
REPORT_SEED = 1  # base key of the reported runs: disjoint from TUNE_SEEDS, fixed before the runs
# Envs whose preset was chosen by looking at their own runs at TUNE_SEEDS (tune_presets.sh, and the
# CNN-vs-MLP / GRU-vs-MLP comparisons of experiments/README.md); a row of any other env at a
# TUNE_SEEDS key is on seeds no choice was made on (e.g. the minatar preset's CNN was chosen on
# Breakout-MinAtar alone).
TUNED_ENVS = frozenset({"Acrobot-v1", "MountainCar-v0", "Pendulum-v1", "MountainCarContinuous-v0",
                        "Breakout-MinAtar", "MemoryChain-bsuite", "Pong-misc"})
BOOTSTRAP_REPS = 2000


def train_and_evaluate(target: Target, num_seeds: int, seed: int, eval_episodes: int,
                       total_timesteps: int | None = None) -> dict:
    """Train `target`'s preset over `num_seeds` seeds (at `total_timesteps`, else the target's
    published budget, else the preset's), evaluate each final policy; the record."""
    changes = {"env_name": target.env}
    if (total_timesteps or target.budget) is not None:
        changes["total_timesteps"] = total_timesteps or target.budget
    config = presets.get(target.preset, **changes)
    trainer = make_trainer(config)
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(trainer.train)).lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    result = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start

    evaluator = make_evaluator(trainer, num_episodes=eval_episodes, deterministic=True)
    eval_keys = jax.random.split(jax.random.key(seed + 1), num_seeds)
    evaluation = evaluator(result.params, result.obs_stats, eval_keys)
    eval_per_seed = np.asarray(evaluation.returns, np.float64).mean(-1)

    metrics = jax.tree.map(np.asarray, result.metrics)
    final = final_return(metrics)
    curves = np.asarray(metrics.episode_return, np.float64)
    return _record(target, config, final, num_seeds=num_seeds, seed=seed) | {
        "eval_episodes": eval_episodes,
        "eval_return_mean": float(eval_per_seed.mean()),
        "eval_return_std": float(eval_per_seed.std()),
        "eval_return_per_seed": eval_per_seed.tolist(),
        "compile_s": compile_s, "run_s": run_s,
        "steps_per_second": num_seeds * config.env_steps_per_run / run_s,
        "machine": machine_info(), "device": str(jax.devices()[0]), "jax": jax.__version__,
        "date": datetime.date.today().isoformat(),
        "env_steps": ((np.arange(config.num_updates) + 1) * config.batch_size).tolist(),
        "episode_return": json_safe(np.asarray(curves, np.float64)),  # (seeds, updates)
    }


def import_curves(target: Target, path: pathlib.Path) -> dict:
    """A record from an earlier `learning_curves.py` run of exactly `target`'s preset (no
    deterministic evaluation: those runs did not keep the final parameters). Fields the earlier
    file lacks (added to PPOConfig since) must be at their defaults, which reproduce the run."""
    from purejaxppo import PPOConfig

    run = json.loads(path.read_text())
    config = presets.get(target.preset, env_name=target.env,
                         total_timesteps=target.budget or run["config"]["total_timesteps"])
    defaults = vars(PPOConfig())
    mismatched = [name for name, value in vars(config).items()
                  if (json.loads(json.dumps(value)) != run["config"][name]
                      if name in run["config"] else value != defaults[name])]
    if run["env"] != target.env or mismatched:
        raise SystemExit(f"--import-curves {path}: not a run of preset {target.preset!r} on "
                         f"{target.env} (differs in: {', '.join(mismatched) or 'env'})")
    final = np.asarray([np.nan if v is None else v for v in run["final_return_per_seed"]])
    return _record(target, config, final, num_seeds=run["num_seeds"], seed=run["seed"]) | {
        "eval_episodes": 0, "eval_return_mean": None, "eval_return_std": None,
        "eval_return_per_seed": None,
        "compile_s": run["compile_s"], "run_s": run["run_s"],
        "steps_per_second": run["steps_per_second"],
        # learning_curves.py did not record the CPU; experiments/README.md names the machine.
        "machine": {"cpu_model": None, "see": "experiments/README.md"},
        "device": run["device"], "jax": run["jax"], "date": None,
        "imported_from": str(path.relative_to(ROOT) if path.is_absolute() else path),
        "env_steps": run["env_steps"], "episode_return": run["episode_return"],
    }


def _record(target: Target, config, final: np.ndarray, *, num_seeds: int, seed: int) -> dict:
    """The fields every record has, however it was made: what ran, its final return per seed
    (NaN where a seed finished no episode in the window), and the published figure."""
    return {
        "env": target.env, "preset": target.preset, "family": target.family,
        "budget": config.env_steps_per_run, "num_seeds": num_seeds, "seed": seed,
        "tune_seeds": list(TUNE_SEEDS), "report_seeds": [seed],
        "final_return_mean": float(np.nanmean(final)), "final_return_std": float(np.nanstd(final)),
        "final_return_per_seed": json_safe(np.asarray(final, np.float64)),
        **seed_statistics(target.env, final),
        "published": target.published, "source": target.source,
        "config": dict(vars(config)),
    }


def seed_statistics(env: str, final) -> dict:
    """IQM of the per-seed final returns with its 95 % stratified-bootstrap interval, and the
    fraction of seeds solving `env` (None without a threshold), over the seeds that finished an
    episode in the window (`num_seeds_scored`; the others are NaN / null)."""
    values = np.asarray([np.nan if v is None else v for v in final], np.float64)
    values = values[np.isfinite(values)]
    threshold = stats.SOLVED_THRESHOLDS.get(env)
    estimate = (stats.stratified_bootstrap_ci(values, stats.iqm, reps=BOOTSTRAP_REPS)
                if values.size else None)
    return {
        "num_seeds_scored": int(values.size),
        "final_return_iqm": None if estimate is None else estimate.value,
        "final_return_iqm_ci95": None if estimate is None else [estimate.low, estimate.high],
        "bootstrap_reps": BOOTSTRAP_REPS,
        "solved_threshold": threshold.value if threshold else None,
        "solved_threshold_source": threshold.source if threshold else "none",
        "solved_fraction": (stats.solved_fraction(values, threshold.value)
                            if threshold and values.size else None),
    }


def plot(record: dict, path: pathlib.Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = np.array([[np.nan if v is None else v for v in row]
                       for row in record["episode_return"]])
    # Only updates where some seed finished an episode (Freeway's take 2,500 steps).
    steps, mean, std = curve_over_runs(record["env_steps"], curves)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, mean, label="purejaxppo (mean ± std over seeds)")
    ax.fill_between(steps, mean - std, mean + std, alpha=0.3)
    published = _published_value(record["published"])
    if published is not None:
        ax.axhline(published, color="gray", linestyle="--",
                   label=f"published PPO ({record['published']}; time limits terminal)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set(xlabel="environment steps", ylabel="episode return (training)",
           title=f"{record['env']}, preset {record['preset']!r}, {record['num_seeds']} seeds: "
                 f"{record['final_return_mean']:.1f} ± {record['final_return_std']:.1f}")
    ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _published_value(text: str) -> float | None:
    """The number a published figure starts with ("~170" -> 170, "−79" -> -79), else None."""
    token = text.replace("~", "").replace("−", "-").split(" ")[0] if text else ""
    try:
        return float(token)
    except ValueError:
        return None


def _budget(steps: int) -> str:
    exponent = int(math.floor(math.log10(steps)))
    mantissa = steps / 10 ** exponent
    return f"{mantissa:.3g}e{exponent}"


def _figure(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "not measured"
    digits = 2 if abs(mean) < 10 else 1
    return f"{mean:.{digits}f} ± {std:.{digits}f}".replace("-", "−")


def _iqm_figure(summary: dict) -> str:
    """"IQM [low, high]" of `seed_statistics`, digits as `_figure`."""
    if summary["final_return_iqm"] is None:
        return "—"
    digits = 2 if abs(summary["final_return_iqm"]) < 10 else 1
    low, high = summary["final_return_iqm_ci95"]
    return (f"{summary['final_return_iqm']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
            .replace("-", "−"))


def _solved_figure(summary: dict) -> str:
    """"k/n (≥ threshold)", or "—" where the env has no solve threshold."""
    if summary["solved_fraction"] is None:
        return "—"
    solved = round(summary["solved_fraction"] * summary["num_seeds_scored"])
    return f"{solved}/{summary['num_seeds_scored']} (≥ {summary['solved_threshold']:g})".replace(
        "-", "−")


def table(records: list[dict]) -> str:
    """The markdown table (one row per env, in TARGETS order)."""
    lines = ["| env | preset | budget | seeds | ours: final return | ours: deterministic eval "
             "| published PPO | source |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for record in records:
        lines.append(
            f"| {record['env']} | {record['preset']} | {_budget(record['budget'])} "
            f"| {record['num_seeds']} "
            f"| {_figure(record['final_return_mean'], record['final_return_std'])} "
            f"| {_figure(record['eval_return_mean'], record['eval_return_std'])} "
            f"| {record['published'] or '—'} | {record['source']} |")
    return "\n".join(lines) + "\n"


def _seeds_figure(num_seeds: int, summary: dict) -> str:
    """"n", or "k of n" when only k seeds finished an episode in the window."""
    scored = summary["num_seeds_scored"]
    return str(num_seeds) if scored == num_seeds else f"{scored} of {num_seeds}"


def _key_note(env: str, seed: int) -> str:
    """" (tuning)" for a base key the preset was tuned on with runs of `env` itself, " (not tuned
    on this env)" for a tuning key of an env no choice looked at, else ""."""
    if seed not in TUNE_SEEDS:
        return ""
    return " (tuning)" if env in TUNED_ENVS else " (not tuned on this env)"


def interval_table(records: list[dict]) -> str:
    """The interval estimates (one row per env, in TARGETS order): seeds and base key, whether
    the presets were tuned on that key, mean ± std, IQM with its 95 % CI and the fraction solved of
    each env's final returns, beside the published figure. IQM, interval and solved fraction are
    recomputed from each record's per-seed returns (records written before them lack them)."""
    lines = ["| env | seeds | base key | ours: final return | ours: IQM [95 % CI] | solved "
             "| published PPO |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for record in records:
        summary = seed_statistics(record["env"], record["final_return_per_seed"])
        tuned = _key_note(record["env"], record["seed"])
        lines.append(
            f"| {record['env']} | {_seeds_figure(record['num_seeds'], summary)} "
            f"| {record['seed']}{tuned} "
            f"| {_figure(record['final_return_mean'], record['final_return_std'])} "
            f"| {_iqm_figure(summary)} | {_solved_figure(summary)} "
            f"| {record['published'] or '—'} |")
    return "\n".join(lines) + "\n"


def rebuild(out_dir: pathlib.Path) -> list[dict]:
    """Collect every per-env record into returns.json and returns.md (TARGETS order)."""
    records = []
    for target in TARGETS:
        path = out_dir / "returns" / f"{target.env}.json"
        if path.exists():
            records.append(json.loads(path.read_text()))
            plot(records[-1], path.with_suffix(".png"))
    summary = [{k: v for k, v in r.items() if k not in ("episode_return", "env_steps")}
               for r in records]
    (out_dir / "returns.json").write_text(json.dumps(summary, indent=1) + "\n")
    machines = sorted({r["machine"]["cpu_model"] for r in records if r["machine"]["cpu_model"]})
    tuned = sorted({r["env"] for r in records
                    if r["seed"] in TUNE_SEEDS and r["env"] in TUNED_ENVS})
    untuned = sorted({r["env"] for r in records
                      if r["seed"] in TUNE_SEEDS and r["env"] not in TUNED_ENVS})
    thresholds = "; ".join(
        [", ".join(f"{env} {t.value:g}" for env, t in stats.SOLVED_THRESHOLDS.items()
                   if t.official) + " (gym / Gymnasium reward_threshold)"]
        + [f"{env} {t.value:g} ({t.source})" for env, t in stats.SOLVED_THRESHOLDS.items()
           if not t.official])
    header = ("Final return: mean ± std over seeds of each seed's mean return of the episodes "
              "finished in the last 10 updates (training, sampled actions). IQM: the 25 % "
              "trimmed mean over seeds, with its 95 % stratified-bootstrap percentile interval "
              f"({BOOTSTRAP_REPS} replicates; purejaxppo.stats). Solved: seeds whose final return "
              f"reaches the threshold: {thresholds}; other envs have none. Deterministic eval: "
              "each seed's final policy, mode actions, mean over its evaluation episodes; mean ± "
              "std over seeds. Published numbers treated time limits as terminal; ours bootstrap "
              f"through them. Seeds: jax.random.split(key(base key), seeds); presets tuned on "
              f"base key(s) {', '.join(map(str, TUNE_SEEDS))}"
              + (f"; rows on tuning seeds: {', '.join(tuned)}" if tuned else "")
              + (f"; rows at a tuning key for envs no choice looked at: {', '.join(untuned)}"
                 if untuned else "") +
              f". Machine(s): {', '.join(machines)}.\n\n")
    (out_dir / "returns.md").write_text(header + table(records) + "\n" + interval_table(records))
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="", help="comma-separated env names (default: all)")
    parser.add_argument("--family", choices=FAMILIES, action="append", default=[])
    parser.add_argument("--exclude", default="", help="comma-separated env names to leave out")
    parser.add_argument("--num-seeds", type=int, default=None,
                        help=f"seeds per env (default {DEFAULT_NUM_SEEDS}; MinAtar "
                             f"{DEFAULT_SEEDS['minatar']})")
    parser.add_argument("--seed", type=int, default=REPORT_SEED,
                        help=f"base PRNG key of the reported seeds (default {REPORT_SEED}; the "
                             f"presets were tuned on {', '.join(map(str, TUNE_SEEDS))})")
    parser.add_argument("--allow-tuning-seed", action="store_true",
                        help="allow a --seed the presets were tuned on (TUNE_SEEDS)")
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--total-timesteps", type=int, default=None,
                        help="override the preset's budget (the table then says so in 'budget')")
    parser.add_argument("--table", action="store_true", help="only rebuild the table")
    parser.add_argument("--import-curves", type=pathlib.Path, metavar="JSON",
                        help="instead of training the one env in --envs, take this earlier "
                             "learning_curves.py run of exactly its preset")
    parser.add_argument("--out-dir", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args()

    envs = [e for e in args.envs.split(",") if e]
    excluded = [e for e in args.exclude.split(",") if e]
    unknown = [e for e in envs + excluded if e not in TARGET_OF]
    if unknown:
        parser.error(f"--envs/--exclude: unknown {', '.join(unknown)}; known: "
                     f"{', '.join(TARGET_OF)}")
    if args.num_seeds is not None and args.num_seeds < 1:
        parser.error("--num-seeds: must be at least 1")
    if args.seed in TUNE_SEEDS and not args.allow_tuning_seed and not args.table:
        parser.error(f"--seed {args.seed}: the presets were tuned on base key(s) "
                     f"{', '.join(map(str, TUNE_SEEDS))}; report on fresh seeds (default "
                     f"{REPORT_SEED}) or pass --allow-tuning-seed")
    selected = [t for t in TARGETS if t.env in envs or t.family in args.family]
    if not selected and not args.table:
        selected = list(TARGETS)
    selected = [t for t in selected if t.env not in excluded]
    (args.out_dir / "returns").mkdir(parents=True, exist_ok=True)
    if args.import_curves:
        if len(envs) != 1:
            parser.error("--import-curves: name exactly one env with --envs")
        record = import_curves(TARGET_OF[envs[0]], args.import_curves)
        stem = args.out_dir / "returns" / envs[0]
        stem.with_suffix(".json").write_text(json.dumps(record))
        selected = []
    for target in ([] if args.table else selected):
        num_seeds = args.num_seeds or DEFAULT_SEEDS.get(target.family, DEFAULT_NUM_SEEDS)
        record = train_and_evaluate(target, num_seeds, args.seed, args.eval_episodes,
                                    args.total_timesteps)
        stem = args.out_dir / "returns" / target.env
        stem.with_suffix(".json").write_text(json.dumps(record))
        print(f"{target.env}: final {_figure(record['final_return_mean'], record['final_return_std'])}"
              f", IQM {_iqm_figure(record)}, solved {_solved_figure(record)}"
              f", eval {_figure(record['eval_return_mean'], record['eval_return_std'])} over "
              f"{num_seeds} seeds at {_budget(record['budget'])} steps; "
              f"{record['steps_per_second']:,.0f} steps/s, compile {record['compile_s']:.1f} s, "
              f"run {record['run_s']:.0f} s", flush=True)
    records = rebuild(args.out_dir)
    print(table(records))
    print(interval_table(records))


if __name__ == "__main__":
    main()
