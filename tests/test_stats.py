"""purejaxppo.stats: IQM, stratified bootstrap, probability of improvement, solved fraction and
compare_runs, against hand-computed cases and scipy.stats (no training: run directories are
written with the logs module)."""

import json
import pathlib
import runpy
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.stats

from purejaxppo import ConfigError, stats
from purejaxppo.logs import MetricsLog

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------- IQM
@pytest.mark.parametrize("scores, expected", [
    ([1.0, 2.0, 3.0, 4.0], 2.5),                      # drop 1 each end: (2 + 3) / 2
    ([1.0, 2.0, 3.0, 4.0, 100.0], 3.0),               # floor(5 / 4) = 1 each end: (2 + 3 + 4) / 3
    ([5.0, 1.0, 9.0, 3.0, 7.0, 100.0, -50.0, 2.0], 4.25),  # sorted -50 1 | 2 3 5 7 | 9 100
    ([3.0, 1.0, 2.0], 2.0),                           # n < 4: nothing dropped, the mean
    ([7.0], 7.0),
    ([[1.0, 2.0], [3.0, 40.0]], 2.5),                 # flattened over runs and tasks
    ([0, 0, 0, 0, 0, 10, 20, 30, 1000, 1000], (0 + 0 + 0 + 10 + 20 + 30) / 6),  # floor(2.5) = 2
])
def test_iqm_hand_computed(scores, expected):
    assert stats.iqm(scores) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n", range(1, 14))
def test_iqm_equals_scipy_trim_mean(n):
    x = np.random.default_rng(n).normal(size=n) * 10
    assert stats.iqm(x) == pytest.approx(scipy.stats.trim_mean(x, 0.25), rel=1e-12, abs=1e-12)
    grid = np.random.default_rng(n + 100).normal(size=(n, 3))
    assert stats.iqm(grid) == pytest.approx(scipy.stats.trim_mean(grid, 0.25, axis=None),
                                            rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("bad", [[], [1.0, np.nan]])
def test_iqm_rejects_empty_and_nan(bad):
    with pytest.raises(ConfigError, match="scores"):
        stats.iqm(bad)


def test_as_scores_shapes():
    assert stats.as_scores([1.0, 2.0, 3.0]).shape == (3, 1)
    assert stats.as_scores(np.zeros((4, 2))).shape == (4, 2)
    with pytest.raises(ConfigError, match=r"final: .*shape \(2, 2, 2\)"):
        stats.as_scores(np.ones((2, 2, 2)), "final")
    with pytest.raises(ConfigError, match=r"final: runs \[1\] are not finite"):
        stats.as_scores([[1.0, 2.0], [np.inf, 3.0]], "final")


def test_iqm_difference():
    assert stats.iqm_difference([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(25 - 2.5)


# ---------------------------------------------------------------- probability of improvement
def test_probability_of_improvement_disjoint_and_identical():
    assert stats.probability_of_improvement([3.0, 4.0, 5.0], [1.0, 2.0]) == 1.0
    assert stats.probability_of_improvement([1.0, 2.0], [3.0, 4.0, 5.0]) == 0.0
    assert stats.probability_of_improvement([1.0, 2.0, 2.0], [1.0, 2.0, 2.0]) == 0.5


def test_probability_of_improvement_hand_computed():
    # x=1 beats only y=0; x=3 beats all three: 4 of 6 pairs.
    assert stats.probability_of_improvement([1.0, 3.0], [2.0, 2.0, 0.0]) == pytest.approx(4 / 6)
    # x=[1,2,3] vs y=[2]: 3 > 2, 2 = 2 (half), 1 < 2: (1 + 0.5) / 3.
    assert stats.probability_of_improvement([1.0, 2.0, 3.0], [2.0]) == pytest.approx(0.5)
    # Two tasks averaged: task 0 disjoint (1), task 1 the reverse (0).
    x = np.array([[10.0, 0.0], [11.0, 1.0]])
    y = np.array([[0.0, 10.0], [1.0, 11.0]])
    assert stats.probability_of_improvement(x, y) == pytest.approx(0.5)
    assert stats.probability_of_improvement(x[:, :1], y[:, :1]) == 1.0


def test_probability_of_improvement_equals_mann_whitney_u():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, size=(7, 4)).astype(float)  # ties on purpose
    y = rng.integers(0, 6, size=(5, 4)).astype(float)
    per_task = [scipy.stats.mannwhitneyu(x[:, t], y[:, t], alternative="greater").statistic
                / (7 * 5) for t in range(4)]
    assert stats.probability_of_improvement(x, y) == pytest.approx(np.mean(per_task), rel=1e-12)


def test_probability_of_improvement_task_mismatch():
    with pytest.raises(ConfigError, match="tasks"):
        stats.probability_of_improvement(np.zeros((3, 2)), np.zeros((3, 3)))


# ----------------------------------------------------------------------------- solved fraction
def test_solved_fraction_and_thresholds():
    assert stats.solved_fraction([480.0, 475.0, 474.9, 200.0], 475.0) == 0.5  # >= counts
    assert stats.solved_fraction([-105.0, -200.0, -110.0], -110.0) == pytest.approx(2 / 3)
    gym = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "MountainCar-v0": -110.0,
           "MountainCarContinuous-v0": 90.0}
    for env, value in gym.items():
        assert stats.SOLVED_THRESHOLDS[env] == (value, stats.SOLVED_THRESHOLDS[env].source, True)
    assert not stats.SOLVED_THRESHOLDS["Pendulum-v1"].official
    assert "project's choice" in stats.SOLVED_THRESHOLDS["Pendulum-v1"].source
    assert "Breakout-MinAtar" not in stats.SOLVED_THRESHOLDS


# ------------------------------------------------------------------------ stratified bootstrap
def test_bootstrap_of_constant_sample_is_degenerate():
    estimate = stats.stratified_bootstrap_ci(np.full(9, 3.5), stats.iqm, reps=200)
    assert estimate == (3.5, 3.5, 3.5)


def test_bootstrap_is_stratified_by_task():
    # Task 0 all 0, task 1 all 100: resampling within tasks keeps 6 + 6 values, so the overall
    # mean is 50 in every replicate; resampling runs across tasks would not.
    scores = np.stack([np.zeros(6), np.full(6, 100.0)], axis=1)
    distribution = stats.stratified_bootstrap((scores,), np.mean, reps=300)
    np.testing.assert_array_equal(distribution, 50.0)
    # Within a task the runs are resampled: the mean of a varying task does vary.
    scores[:, 1] = np.arange(6.0)
    distribution = stats.stratified_bootstrap((scores,), lambda s: s[:, 1].mean(), reps=300)
    assert distribution.std() > 0.3


def test_bootstrap_distribution_of_the_mean_matches_theory():
    # The bootstrap distribution of a sample mean has mean x.mean() and variance var(x) / n
    # (ddof = 0): an independent check of resampling with replacement.
    x = np.random.default_rng(7).normal(2.0, 3.0, size=25)
    distribution = stats.stratified_bootstrap((x,), np.mean, reps=20000, seed=1)
    assert distribution.mean() == pytest.approx(x.mean(), abs=0.02)
    assert distribution.std() == pytest.approx(x.std() / np.sqrt(25), rel=0.03)


def test_bootstrap_ci_covers_the_true_mean_about_95_percent():
    rng = np.random.default_rng(0)
    covered, widths = [], []
    for trial in range(200):
        x = rng.normal(1.0, 2.0, size=30)
        est = stats.stratified_bootstrap_ci(x, np.mean, reps=400, seed=trial)
        assert est.low <= est.value <= est.high
        covered.append(est.low <= 1.0 <= est.high)
        widths.append(est.high - est.low)
    assert 0.88 <= np.mean(covered) <= 0.99
    # Normal theory: 2 * 1.96 * sigma / sqrt(n) = 1.43.
    assert np.mean(widths) == pytest.approx(2 * 1.96 * 2.0 / np.sqrt(30), rel=0.1)


def test_bootstrap_ci_alpha_seed_and_percentiles():
    x = np.random.default_rng(5).normal(size=20)
    est = stats.stratified_bootstrap_ci(x, stats.iqm, reps=500, seed=4)
    assert est == stats.stratified_bootstrap_ci(x, stats.iqm, reps=500, seed=4)  # deterministic
    assert est != stats.stratified_bootstrap_ci(x, stats.iqm, reps=500, seed=5)
    distribution = stats.stratified_bootstrap((x,), stats.iqm, reps=500, seed=4)
    assert (est.low, est.high) == tuple(np.percentile(distribution, [2.5, 97.5]))
    narrow = stats.stratified_bootstrap_ci(x, stats.iqm, reps=500, alpha=0.5, seed=4)
    assert est.low < narrow.low < narrow.high < est.high
    assert est.value == narrow.value == stats.iqm(x)


@pytest.mark.parametrize("kwargs, field", [({"reps": 0}, "reps"), ({"reps": 2.5}, "reps"),
                                           ({"alpha": 0.0}, "alpha"), ({"alpha": 1.0}, "alpha")])
def test_bootstrap_ci_rejects_bad_arguments(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        stats.stratified_bootstrap_ci([1.0, 2.0], **kwargs)


def test_two_sample_bootstrap_ci():
    a, b = [1.0, 2.0, 3.0], [10.0, 11.0, 12.0, 13.0]
    poi = stats.two_sample_bootstrap_ci(b, a, stats.probability_of_improvement, reps=300)
    assert poi == (1.0, 1.0, 1.0)  # every resample stays disjoint
    assert stats.two_sample_bootstrap_ci(a, b, stats.probability_of_improvement,
                                         reps=300) == (0.0, 0.0, 0.0)
    same = stats.two_sample_bootstrap_ci(a, a, stats.probability_of_improvement, reps=300)
    assert same.value == 0.5 and same.low < 0.5 < same.high
    diff = stats.two_sample_bootstrap_ci(a, b, stats.iqm_difference, reps=300)
    assert diff.value == pytest.approx(11.5 - 2.0)
    # Resampled, iqm(b) (mean of the middle 2 of 4) lies in [10, 13], iqm(a) (mean of 3) in [1, 3].
    assert 7.0 <= diff.low <= diff.value <= diff.high <= 12.0


# -------------------------------------------------------------------------------- compare_runs
def write_run(run_dir, final_per_run, num_updates=12, window=10, env="CartPole-v1"):
    """A run directory whose runs each return `final_per_run[r]` in every update of the last
    `window` updates (one episode per update) and 1e6 before them, with config.json."""
    final = np.asarray(final_per_run, np.float64)
    returns = np.repeat(final[:, None], num_updates, axis=1)
    returns[:, :num_updates - window] = 1e6
    counts = np.ones_like(returns, dtype=np.int64)
    log = MetricsLog(run_dir, 64)
    log.append({"episode_return": returns, "episode_length": returns,
                "num_episodes": counts}, first_update=0)
    if env:
        (run_dir / "config.json").write_text(json.dumps({"env_name": env}))
    return run_dir


def test_final_returns_weighted_over_the_window(tmp_path):
    run_dir = write_run(tmp_path / "a", [10.0, 20.0])
    np.testing.assert_array_equal(stats.final_returns(run_dir), [10.0, 20.0])
    assert stats.final_returns(run_dir, window=12)[0] == pytest.approx((2e6 + 100) / 12)
    # A run with 3 episodes of return 40 and one of 10 in its window: (120 + 10) / 4.
    log = MetricsLog(tmp_path / "w", 64)
    log.append({"episode_return": [[np.nan, 10.0, 40.0]], "num_episodes": [[0, 1, 3]]}, 0)
    assert stats.final_returns(tmp_path / "w", window=2)[0] == pytest.approx(130 / 4)


def test_compare_runs(tmp_path):
    a = write_run(tmp_path / "a", [10.0, 20.0, 30.0, 40.0])
    b = write_run(tmp_path / "b", [50.0, 60.0, 70.0, 80.0, 90.0])
    c = stats.compare_runs(a, b, reps=300)
    assert (c.num_runs_a, c.num_runs_b, c.env) == (4, 5, "CartPole-v1")
    assert c.final_b == (50.0, 60.0, 70.0, 80.0, 90.0)
    assert c.iqm_a.value == 25.0 and c.iqm_b.value == 70.0
    assert c.iqm_difference.value == 45.0
    assert c.iqm_difference.low > 0
    assert c.probability_of_improvement == (1.0, 1.0, 1.0)
    assert 10.0 <= c.iqm_a.low <= 25.0 <= c.iqm_a.high <= 40.0
    reverse = stats.compare_runs(b, a, reps=300)
    assert reverse.probability_of_improvement == (0.0, 0.0, 0.0)
    assert reverse.iqm_difference.value == -45.0
    same = stats.compare_runs(a, a, reps=300)
    assert same.iqm_difference.value == 0.0 and same.probability_of_improvement.value == 0.5
    assert c == stats.compare_runs(a, b, reps=300)  # deterministic given the seed

    text = stats.format_comparison(c)
    assert "CartPole-v1" in text and str(a) in text and str(b) in text
    assert "IQM 25.0 [" in text and "IQM 70.0 [" in text
    assert "IQM difference (B - A): +45.0 [" in text
    assert "P(B > A): 1.00 [1.00, 1.00]" in text
    assert "95 % CI" in text and "last 10 updates" in text and "300 replicates" in text


def test_compare_runs_errors(tmp_path):
    a = write_run(tmp_path / "a", [1.0, 2.0])
    with pytest.raises(ConfigError, match="nowhere"):
        stats.compare_runs(a, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty.*no metrics log"):
        stats.compare_runs(tmp_path / "empty", a)
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "metrics.jsonl").write_text("")
    with pytest.raises(ConfigError, match="blank.*no rows"):
        stats.compare_runs(a, tmp_path / "blank")
    other = write_run(tmp_path / "other", [1.0, 2.0], env="Acrobot-v1")
    with pytest.raises(ConfigError, match="different envs"):
        stats.compare_runs(a, other)
    log = MetricsLog(tmp_path / "quiet", 64)
    log.append({"episode_return": [[5.0, np.nan, np.nan], [1.0, 2.0, 3.0]],
                "num_episodes": [[1, 0, 0], [1, 1, 1]]}, 0)
    with pytest.raises(ConfigError, match=r"quiet: runs \[0\] finished no episode in the last 2"):
        stats.compare_runs(a, tmp_path / "quiet", window=2)
    with pytest.raises(ConfigError, match="window"):
        stats.compare_runs(a, a, window=0)
    with pytest.raises(ConfigError, match="reps"):
        stats.compare_runs(a, a, reps=0)


# ------------------------------------------------------------- experiments/returns.py's tables
def load_returns_script() -> SimpleNamespace:
    """experiments/returns.py's globals (it is a script, not a module of the package)."""
    return SimpleNamespace(**runpy.run_path(str(ROOT / "experiments" / "returns.py")))


def test_returns_interval_table():
    returns = load_returns_script()
    assert returns.REPORT_SEED not in returns.TUNE_SEEDS
    summary = returns.seed_statistics("MountainCar-v0", [-105.0, -200.0, None, -100.0, -120.0])
    # Scored seeds sorted: -200 -120 -105 -100; IQM = (-120 - 105) / 2; 2 of 4 reach -110.
    assert summary["num_seeds_scored"] == 4
    assert summary["final_return_iqm"] == -112.5
    assert summary["solved_fraction"] == 0.5 and summary["solved_threshold"] == -110.0
    low, high = summary["final_return_iqm_ci95"]
    assert -200.0 <= low <= -112.5 <= high <= -100.0
    row = {"env": "MountainCar-v0", "num_seeds": 5, "seed": returns.REPORT_SEED,
           "final_return_per_seed": [-105.0, -200.0, None, -100.0, -120.0],
           "final_return_mean": -131.25, "final_return_std": 40.0, "published": "−118"}
    text = returns.interval_table([row, dict(row, env="Seaquest-MinAtar", seed=0),
                                   dict(row, env="Breakout-MinAtar", seed=0)])
    assert (f"| MountainCar-v0 | 4 of 5 | {returns.REPORT_SEED} | −131.2 ± 40.0 | −112.5 ["
            in text)
    assert "| 2/4 (≥ −110) | −118 |" in text
    # The minatar preset's CNN was chosen on Breakout's key-0 runs, never on Seaquest's.
    assert "| Seaquest-MinAtar | 4 of 5 | 0 (not tuned on this env) |" in text
    assert "| Breakout-MinAtar | 4 of 5 | 0 (tuning) |" in text
    assert text.rstrip().endswith("| — | −118 |")  # no threshold for MinAtar


def test_robust_select_ranks_by_the_25th_percentile_seed():
    """experiments/robust_select.py: p25 by linear interpolation (hand-computed), NaN = worst,
    ties broken by the minimum; a setting with one failed seed loses to a steadier one."""
    select = SimpleNamespace(**runpy.run_path(str(ROOT / "experiments" / "robust_select.py")))
    # Sorted -200, -120, -110, -100, -100: p25 at position 1 -> -120; min -200; mean -126.
    assert select.robust_score(np.array([-100.0, -200.0, -110.0, -120.0, -100.0])) == (
        -120.0, -200.0, -126.0)
    # 4 seeds: position 0.75 between -130 and -120 -> -122.5.
    assert select.robust_score(np.array([-120.0, -130.0, -110.0, -105.0]))[0] == -122.5
    assert select.robust_score(np.array([np.nan, 1.0, 2.0, 3.0]))[:2] == (-np.inf, -np.inf)
    values = np.random.default_rng(0).normal(size=9)
    assert select.robust_score(values)[0] == pytest.approx(np.percentile(values, 25))
    summary = {"config": {"env_name": "MountainCar-v0", "ent_coef": 0.0},
               "rows": [{"hparams": {"ent_coef": 0.003},
                         "final_return_per_seed": [-200.0, -200.0, -100.0, -100.0, -100.0]},
                        {"hparams": {"ent_coef": 0.03},
                         "final_return_per_seed": [-130.0, -125.0, -120.0, -120.0, -115.0]}]}
    settings = select.settings_of(summary)
    best = max(settings, key=lambda s: select.robust_score(s.per_seed))
    assert best.fields["ent_coef"] == 0.03 and best.fields["env_name"] == "MountainCar-v0"
    assert "solved 0/5" in select.row_text(best, ["ent_coef"], -110.0)
