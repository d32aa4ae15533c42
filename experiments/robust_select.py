"""Rank the settings of `purejaxppo sweep --json` files by their 25th-percentile seed.

    .venv/bin/python experiments/robust_select.py sweep_a.json sweep_b.json ...

The selection rule for re-tuned presets (experiments/tune_presets.sh): the setting whose
25th-percentile seed's final return is highest wins (ties: the higher minimum, then the higher
mean), so that a setting which leaves a quarter of its seeds unsolved loses to one that solves
them a little more slowly. Per setting it prints the mean, the 25th percentile (numpy's linear
interpolation over the seeds' final returns), the minimum, and the fraction of seeds at or above
the env's solve threshold (`purejaxppo.stats.SOLVED_THRESHOLDS`), with the fields that differ
across all the settings (traced --grid values and static config fields alike).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import NamedTuple

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from purejaxppo import stats  # noqa: E402


class Setting(NamedTuple):
    """One swept setting: its fields (static config and traced hparams) and per-seed returns."""

    fields: dict
    per_seed: np.ndarray  # (num_seeds,) final returns, NaN where no episode finished


def settings_of(summary: dict) -> list[Setting]:
    """The settings of one `purejaxppo sweep --json` summary (config fields overridden by each
    row's traced hyperparameters)."""
    static = {k: v for k, v in summary["config"].items()}
    return [Setting({**static, **row["hparams"]},
                    np.asarray([np.nan if v is None else v for v in row["final_return_per_seed"]],
                               np.float64))
            for row in summary["rows"]]


def robust_score(per_seed: np.ndarray) -> tuple[float, float, float]:
    """The selection key: (25th percentile, minimum, mean) of the per-seed final returns; a seed
    that finished no episode in the window (NaN) counts as the worst."""
    values = np.sort(np.where(np.isnan(per_seed), -np.inf, per_seed))
    position = 0.25 * (values.size - 1)  # numpy's "linear" percentile, -inf kept exact
    low, high = values[int(np.floor(position))], values[int(np.ceil(position))]
    p25 = low if low == high or np.isinf(low) else low + (position % 1) * (high - low)
    return (float(p25), float(values[0]), float(values.mean()))


def row_text(setting: Setting, varied: list[str], threshold) -> str:
    """One line: the varied fields, mean, p25, min, solved fraction."""
    p25, low, mean = robust_score(setting.per_seed)
    solved = ("—" if threshold is None else
              f"{int((setting.per_seed >= threshold).sum())}/{setting.per_seed.size}")
    fields = " ".join(f"{k}={setting.fields[k]}" for k in varied)
    return f"{fields:60s} mean {mean:9.1f}  p25 {p25:9.1f}  min {low:9.1f}  solved {solved}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", type=pathlib.Path, help="purejaxppo sweep --json files")
    args = parser.parse_args()
    summaries = [json.loads(p.read_text()) for p in args.json]
    envs = {s["env"] for s in summaries}
    if len(envs) != 1:
        parser.error(f"the files are sweeps of different envs: {sorted(envs)}")
    settings = [s for summary in summaries for s in settings_of(summary)]
    varied = [k for k in settings[0].fields
              if len({json.dumps(s.fields[k]) for s in settings}) > 1]
    threshold = stats.SOLVED_THRESHOLDS.get(envs.pop())
    ranked = sorted(settings, key=lambda s: robust_score(s.per_seed), reverse=True)
    for setting in ranked:
        print(row_text(setting, varied, None if threshold is None else threshold.value))


if __name__ == "__main__":
    main()
