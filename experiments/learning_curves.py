"""Learning curves over many seeds, any gymnax env: one compiled vmapped run, JSON + PNG.

    .venv/bin/python experiments/learning_curves.py --env CartPole-v1 --num-seeds 16
    .venv/bin/python experiments/learning_curves.py --env Acrobot-v1 --num-seeds 8 \
        --set num_envs=16 --set num_steps=32 --set learning_rate=5e-4

Writes experiments/results/<env>_curves.json (per-update mean return per seed, final returns)
and a PNG of mean ± std over seeds against environment steps.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import numpy as np

from purejaxppo import PPOConfig, final_return, make_train
from purejaxppo.config import parse_override
from purejaxppo.logs import curve_over_runs, json_safe


DIAGNOSTICS = ("approx_kl", "kl", "kl_coef", "epochs", "clip_fraction", "entropy",
               "explained_variance")


def run(config: PPOConfig, num_seeds: int, seed: int):
    """Train `num_seeds` seeds in one call; returns (metrics as numpy, compile s, run s)."""
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(make_train(config))).lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    result = jax.block_until_ready(compiled(keys))
    return jax.tree.map(np.asarray, result.metrics), compile_s, time.perf_counter() - start


def plot(path, steps, returns, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, mean, std = curve_over_runs(steps, returns)  # updates with a finished episode
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, mean)
    ax.fill_between(steps, mean - std, mean + std, alpha=0.3)
    ax.set(xlabel="environment steps", ylabel="episode return", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--num-seeds", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--total-timesteps", type=int, default=500_000)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--tag", default="", help="added to the output name, e.g. cnn / mlp")
    parser.add_argument("--out-dir", default=str(pathlib.Path(__file__).parent / "results"))
    args = parser.parse_args()

    config = PPOConfig(env_name=args.env, total_timesteps=args.total_timesteps,
                       **dict(parse_override(s) for s in args.set))
    metrics, compile_s, run_s = run(config, args.num_seeds, args.seed)
    final = final_return(metrics)
    steps = (np.arange(config.num_updates) + 1) * config.batch_size
    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{args.env}{'_' + args.tag if args.tag else ''}_curves"
    record = {
        "env": args.env, "tag": args.tag, "num_seeds": args.num_seeds, "seed": args.seed,
        "device": str(jax.devices()[0]), "jax": jax.__version__,
        "compile_s": compile_s, "run_s": run_s,
        "steps_per_second": args.num_seeds * config.env_steps_per_run / run_s,
        "final_return_mean": float(np.nanmean(final)), "final_return_std": float(np.nanstd(final)),
        "final_return_per_seed": final.tolist(), "env_steps": steps.tolist(),
        "episode_return": json_safe(np.asarray(metrics.episode_return, np.float64)),
        "config": {k: v for k, v in vars(config).items()},
        # Per update, mean over seeds, of the diagnostics (KL, β, epochs taken, losses, ...).
        "diagnostics": {name: np.nanmean(getattr(metrics, name), axis=0).tolist()
                        for name in DIAGNOSTICS},
    }
    stem.with_suffix(".json").write_text(json.dumps(record))
    plot(stem.with_suffix(".png"), steps, metrics.episode_return,
         f"{args.env} {args.tag}: {args.num_seeds} seeds, final {record['final_return_mean']:.1f} ± "
         f"{record['final_return_std']:.1f}")
    print(f"{args.env}: final return {record['final_return_mean']:.1f} ± "
          f"{record['final_return_std']:.1f} over {args.num_seeds} seeds; "
          f"{record['steps_per_second']:,.0f} steps/s, compile {compile_s:.1f} s -> {stem}.json/.png")


if __name__ == "__main__":
    main()
