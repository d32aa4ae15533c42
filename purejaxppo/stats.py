"""Statistics over seeds: interquartile mean, stratified-bootstrap intervals, probability of
improvement, solve thresholds, and `compare_runs` over two run directories.

The estimators are those of Agarwal et al. (2021, "Deep reinforcement learning at the edge of the
statistical precipice", NeurIPS) as implemented in their library `rliable` 1.2.0:

* scores are a `(num_runs, num_tasks)` array, one row per run (seed), one column per task
  (environment); a 1-D `(num_runs,)` array is one task;
* `iqm`: `scipy.stats.trim_mean(scores, 0.25, axis=None)` (rliable's `aggregate_iqm`): over all
  runs and tasks flattened, drop `floor(0.25 * n)` values from each end and average the rest (no
  fractional weighting: n = 8 keeps the middle 4, n = 5 the middle 3, n < 4 keeps every value);
* stratified bootstrap (rliable's `StratifiedBootstrap`): each replicate resamples the runs of
  every task independently, with replacement, keeping each task's run count; with two samples
  (`StratifiedIndependentBootstrap`) each sample is resampled independently;
* percentile intervals (arch's `conf_int(method="percentile")`, rliable's default): the
  `alpha / 2` and `1 - alpha / 2` quantiles of the bootstrap distribution (`np.percentile`,
  linear interpolation);
* `probability_of_improvement`: per task P(X > Y) + 0.5 P(X = Y) over all pairs of runs (the
  Mann-Whitney U statistic / (n_x n_y)), averaged over tasks.

Why not depend on rliable: rliable 1.2.0 requires arch (< 8, which itself requires statsmodels),
scipy, absl-py, seaborn and pandas, mostly for its plots; what purejaxppo needs is the ~60 lines of
numpy below. The tests check these functions against scipy.stats (`trim_mean`, `mannwhitneyu`)
and hand-computed cases. The random numbers differ from rliable's (a seeded numpy `Generator`
instead of numpy's global state), so intervals agree with rliable's in distribution, not digit
for digit: checked once (2026-12-03) against rliable 1.2.0 with arch 7.2.0 in a separate
environment on normal samples of 5 x 1 to 16 x 1 and 8 x 3 runs x tasks, the IQM and probability
of improvement were equal and the interval endpoints agreed to within bootstrap noise (IQM
intervals within 0.4 of ~45 wide; probability-of-improvement intervals within 0.008).

    final = stats.final_returns(run_dir)                   # (num_runs,) per-run final return
    stats.stratified_bootstrap_ci(final, stats.iqm)        # Estimate(value, low, high)
    c = stats.compare_runs("runs/a", "runs/b")             # IQM difference, P(b > a), intervals
    print(stats.format_comparison(c))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

from purejaxppo.config import ConfigError
from purejaxppo.logs import read_metrics
from purejaxppo.metrics import final_return


class Estimate(NamedTuple):
    """A point estimate and its confidence interval `[low, high]`."""

    value: float
    low: float
    high: float


class Threshold(NamedTuple):
    """A return at or above which a run counts as having solved its environment.

    official: True when it is the environment's own definition (gym / Gymnasium
    `reward_threshold`), False when gym defines none and the value is this project's choice."""

    value: float
    source: str
    official: bool


_GYM = "gym / Gymnasium reward_threshold (gymnasium/envs/__init__.py)"

# Solve thresholds where a source exists. Gym's definition is an average return over 100
# consecutive episodes; here it is applied to each run's final return (`final_returns`: the mean
# return of the episodes finished in the last `window` updates, actions sampled). Every other
# environment (MinAtar, bsuite, the other misc envs) has none: gym does not register them, and
# bsuite scores its experiments on its own scales (e.g. regret), not by a solve threshold.
SOLVED_THRESHOLDS: dict[str, Threshold] = {
    "CartPole-v1": Threshold(475.0, _GYM, True),
    "Acrobot-v1": Threshold(-100.0, _GYM, True),
    "MountainCar-v0": Threshold(-110.0, _GYM, True),
    "MountainCarContinuous-v0": Threshold(90.0, _GYM, True),
    "Pendulum-v1": Threshold(
        -200.0, "project's choice: gym defines none; -200 is gymnax-blines' published PPO return "
                "at 1e6 steps", False),
    "FrozenLake-misc": Threshold(
        0.70, f"{_GYM} of FrozenLake-v1 (4x4, slippery, 100 steps, optimum 0.74), the env "
              "gymnax's FrozenLake-misc reproduces", True),
}


def as_scores(scores, name: str = "scores") -> np.ndarray:
    """`scores` as a float64 `(num_runs, num_tasks)` array: a 1-D `(num_runs,)` array is one task.
    Raises ConfigError (naming `name`) unless it is non-empty, 1-D or 2-D, and finite."""
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.size == 0:
        raise ConfigError(f"{name}: expected a non-empty (num_runs,) or (num_runs, num_tasks) "
                          f"array, got shape {np.shape(scores)}")
    if not np.isfinite(array).all():
        runs = sorted({int(r) for r in np.argwhere(~np.isfinite(array))[:, 0]})
        raise ConfigError(f"{name}: runs {runs} are not finite (NaN: no episode finished?)")
    return array


def iqm(scores) -> float:
    """Interquartile mean of `scores` (any shape, flattened over runs and tasks): drop
    `floor(n / 4)` values from each end of the sorted values and average the rest; equal to
    `scipy.stats.trim_mean(scores, 0.25, axis=None)` and rliable's `aggregate_iqm`."""
    values = np.sort(as_scores(np.ravel(scores)).ravel())
    cut = int(0.25 * values.size)
    return float(values[cut:values.size - cut].mean())


def iqm_difference(a, b) -> float:
    """`iqm(b) - iqm(a)`: how much higher b's interquartile mean is than a's."""
    return iqm(b) - iqm(a)


def probability_of_improvement(x, y) -> float:
    """P(X > Y) + 0.5 P(X = Y) for a run X of `x` and a run Y of `y` of the same task, averaged
    over tasks. x: `(num_runs_x, num_tasks)` (or `(num_runs_x,)`), y: `(num_runs_y, num_tasks)`.
    Per task it is the Mann-Whitney U statistic of x over y divided by `num_runs_x * num_runs_y`
    (rliable's `probability_of_improvement`); 1 when every x beats every y, 0.5 for x = y."""
    x, y = as_scores(x, "x"), as_scores(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ConfigError(f"x, y: different numbers of tasks ({x.shape[1]} and {y.shape[1]})")
    pairs_x, pairs_y = x[:, None, :], y[None, :, :]  # (num_runs_x, num_runs_y, num_tasks)
    per_task = (pairs_x > pairs_y).mean(axis=(0, 1)) + 0.5 * (pairs_x == pairs_y).mean(axis=(0, 1))
    return float(per_task.mean())


def solved_fraction(scores, threshold: float) -> float:
    """Fraction of the runs (over all tasks) whose score is at least `threshold`."""
    return float((as_scores(scores) >= threshold).mean())


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}: must be a positive integer, got {value!r}")


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha: must be in (0, 1), got {alpha!r}")


def stratified_bootstrap(samples: Sequence, statistic: Callable[..., float], reps: int = 2000,
                         seed: int = 0) -> np.ndarray:
    """The bootstrap distribution `(reps,)` of `statistic(*samples)`.

    samples: arrays `(num_runs_i, num_tasks)` (or `(num_runs_i,)`), e.g. `(scores,)` or
    `(scores_a, scores_b)`. In each replicate every sample's runs are resampled with replacement
    within each task independently (stratified by task; the samples independently of each other),
    and `statistic` is called on the resampled arrays, each `(num_runs_i, num_tasks)`."""
    _check_positive_int("reps", reps)
    arrays = [as_scores(s, f"samples[{i}]") for i, s in enumerate(samples)]
    rng = np.random.default_rng(seed)
    distribution = np.empty(reps)
    for r in range(reps):
        resampled = [np.take_along_axis(a, rng.integers(0, a.shape[0], size=a.shape), axis=0)
                     for a in arrays]
        distribution[r] = statistic(*resampled)
    return distribution


def percentile_interval(distribution, alpha: float = 0.05) -> tuple[float, float]:
    """The `alpha / 2` and `1 - alpha / 2` percentiles of a bootstrap distribution `(reps,)`: the
    `1 - alpha` percentile interval."""
    _check_alpha(alpha)
    low, high = np.percentile(distribution, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def stratified_bootstrap_ci(scores_by_task, statistic: Callable[[np.ndarray], float] = iqm,
                            reps: int = 2000, alpha: float = 0.05, seed: int = 0) -> Estimate:
    """`statistic(scores_by_task)` with its `1 - alpha` stratified-bootstrap percentile interval.
    scores_by_task: `(num_runs, num_tasks)` (or `(num_runs,)`: one task); statistic maps such an
    array to a number (default: `iqm`). A sample of identical scores gives `low == high`."""
    _check_alpha(alpha)
    distribution = stratified_bootstrap((scores_by_task,), statistic, reps, seed)
    return Estimate(float(statistic(as_scores(scores_by_task))),
                    *percentile_interval(distribution, alpha))


def two_sample_bootstrap_ci(x, y, statistic: Callable[[np.ndarray, np.ndarray], float],
                            reps: int = 2000, alpha: float = 0.05, seed: int = 0) -> Estimate:
    """`statistic(x, y)` with its `1 - alpha` percentile interval, x and y (`(num_runs_x,
    num_tasks)`, `(num_runs_y, num_tasks)`) resampled independently, each stratified by task.
    E.g. `statistic=iqm_difference` or `probability_of_improvement`."""
    _check_alpha(alpha)
    distribution = stratified_bootstrap((x, y), statistic, reps, seed)
    return Estimate(float(statistic(as_scores(x, "x"), as_scores(y, "y"))),
                    *percentile_interval(distribution, alpha))


def final_returns(run_dir, window: int = 10) -> np.ndarray:
    """Per-run final return `(num_runs,)` of a run directory's metrics log (`metrics.jsonl` or
    `.csv`, as `purejaxppo train --checkpoint-dir DIR` writes it): the mean return of the
    episodes finished in its last `window` updates (`purejaxppo.metrics.final_return`).
    Raises ConfigError naming the path when the directory or its log is missing or empty, or
    when a run finished no episode in the window."""
    _check_positive_int("window", window)
    path = Path(run_dir)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such run directory")
    try:
        data = read_metrics(path)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"{path}: no metrics log to read ({err})") from None
    missing = [f for f in ("episode_return", "num_episodes") if f not in data]
    if missing:
        raise ConfigError(f"{path}: the metrics log has no {', '.join(missing)}")
    final = final_return(SimpleNamespace(**data), window=window)
    unscored = np.flatnonzero(~np.isfinite(final)).tolist()
    if unscored:
        raise ConfigError(f"{path}: runs {unscored} finished no episode in the last {window} "
                          f"updates; use a larger window")
    return final


def _env_name(run_dir) -> str | None:
    """`env_name` from `run_dir/config.json`, None without one."""
    config = Path(run_dir) / "config.json"
    return json.loads(config.read_text()).get("env_name") if config.exists() else None


class Comparison(NamedTuple):
    """Two run directories compared on their per-run final returns (see `compare_runs`)."""

    run_dir_a: str
    run_dir_b: str
    env: str | None  # from the runs' config.json, when present
    num_runs_a: int
    num_runs_b: int
    final_a: tuple[float, ...]  # per-run final return of a
    final_b: tuple[float, ...]
    iqm_a: Estimate
    iqm_b: Estimate
    iqm_difference: Estimate  # iqm(b) - iqm(a)
    probability_of_improvement: Estimate  # P(a run of b beats a run of a), ties count half
    window: int
    reps: int
    alpha: float
    seed: int


def compare_runs(run_dir_a, run_dir_b, window: int = 10, reps: int = 2000, seed: int = 0,
                 alpha: float = 0.05) -> Comparison:
    """Compare two run directories (e.g. two configurations, each trained over several seeds)
    on their per-run final returns (`final_returns(run_dir, window)`): the IQM of each, the IQM
    difference b - a and the probability of improvement of b over a, each with its `1 - alpha`
    stratified-bootstrap percentile interval (`reps` replicates; the four intervals use numpy
    seeds `seed` .. `seed + 3`). Raises
    ConfigError for a missing or empty run directory (naming it) or runs of different envs."""
    _check_positive_int("reps", reps)
    _check_alpha(alpha)
    final_a, final_b = final_returns(run_dir_a, window), final_returns(run_dir_b, window)
    env_a, env_b = _env_name(run_dir_a), _env_name(run_dir_b)
    if env_a and env_b and env_a != env_b:
        raise ConfigError(f"{run_dir_a}, {run_dir_b}: runs of different envs ({env_a} and "
                          f"{env_b}); returns of different envs are not comparable")
    return Comparison(
        run_dir_a=str(run_dir_a), run_dir_b=str(run_dir_b), env=env_a or env_b,
        num_runs_a=len(final_a), num_runs_b=len(final_b),
        final_a=tuple(final_a.tolist()), final_b=tuple(final_b.tolist()),
        iqm_a=stratified_bootstrap_ci(final_a, iqm, reps, alpha, seed),
        iqm_b=stratified_bootstrap_ci(final_b, iqm, reps, alpha, seed + 1),
        iqm_difference=two_sample_bootstrap_ci(final_a, final_b, iqm_difference, reps, alpha,
                                               seed + 2),
        probability_of_improvement=two_sample_bootstrap_ci(
            final_b, final_a, probability_of_improvement, reps, alpha, seed + 3),
        window=window, reps=reps, alpha=alpha, seed=seed)


def format_estimate(estimate: Estimate, digits: int = 1, sign: bool = False) -> str:
    """`"12.3 [10.1, 14.0]"` (`sign`: `"+12.3 [...]"`); `digits` decimals."""
    value = f"{estimate.value:+.{digits}f}" if sign else f"{estimate.value:.{digits}f}"
    return f"{value} [{estimate.low:.{digits}f}, {estimate.high:.{digits}f}]"


def format_comparison(c: Comparison) -> str:
    """A few lines for a terminal: each run directory's IQM, the IQM difference and the
    probability of improvement, with their intervals, and how they were computed."""
    spread = max(abs(v) for v in c.final_a + c.final_b)
    digits = 2 if spread < 10 else 1
    level = f"{100 * (1 - c.alpha):g} % CI"
    width = max(len(c.run_dir_a), len(c.run_dir_b))
    lines = [f"{c.env}:" if c.env else "",
             f"  A {c.run_dir_a:<{width}}  {c.num_runs_a:>3} runs  IQM "
             f"{format_estimate(c.iqm_a, digits)}",
             f"  B {c.run_dir_b:<{width}}  {c.num_runs_b:>3} runs  IQM "
             f"{format_estimate(c.iqm_b, digits)}",
             f"  IQM difference (B - A): {format_estimate(c.iqm_difference, digits, sign=True)}",
             f"  P(B > A): {format_estimate(c.probability_of_improvement, 2)}",
             f"Final return per run: mean return of the episodes finished in the last {c.window} "
             f"updates. Intervals: {level}, stratified bootstrap, {c.reps} replicates "
             f"(percentile), seed {c.seed}. IQM: 25 % trimmed mean over runs."]
    return "\n".join(line for line in lines if line)
