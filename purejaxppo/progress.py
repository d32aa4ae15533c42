"""Host-side progress for a running (jitted, vmapped) training program.

`ProgressReporter` is the `callback` handed to `make_train`: the program calls it from inside the
scan with `(update_idx, metrics_row)`, once per seed (or sweep setting) under vmap, unordered.
It counts environment steps and keeps each run's latest mean return; it never changes results.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np


class ProgressReporter:
    """Counts callback calls from `num_runs` vmapped runs and renders a rich progress bar.

    Args:
      num_runs: how many runs (seeds x settings) execute in the program.
      num_updates: updates per run.
      steps_per_update: environment steps per update (num_envs * num_steps).
      every: the `callback_every` given to `make_train`.
      show: draw the bar (False: only count, e.g. in tests).
    """

    def __init__(self, num_runs: int, num_updates: int, steps_per_update: int, every: int = 1,
                 show: bool = True, description: str = "training"):
        self.num_runs, self.num_updates = num_runs, num_updates
        self.steps_per_update, self.every = steps_per_update, every
        self.total_steps = num_runs * num_updates * steps_per_update
        self.calls = 0
        self._latest: dict[int, float] = {}
        self._lock = threading.Lock()
        self._start = None
        self._progress = None
        self._task = None
        self.show = show
        self.description = description

    # Context manager: starts and stops the live display.
    def __enter__(self):
        self._start = time.perf_counter()
        if self.show:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn)
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("env steps"), TextColumn("{task.fields[sps]}"),
                TextColumn("return {task.fields[ret]}"), TimeElapsedColumn(), transient=False)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total_steps,
                                                 sps="-", ret="-")
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._refresh(final=True)
            self._progress.stop()
        return False

    def restart_clock(self):
        """Call when compilation is done so steps/second counts only running time."""
        with self._lock:
            self._start = time.perf_counter()
            self.calls = 0

    def __call__(self, update_idx, metrics) -> None:
        ret = float(np.asarray(metrics.episode_return))
        with self._lock:
            self.calls += 1
            if not math.isnan(ret):
                # Runs are not identified under vmap; the latest returns of the most recent calls
                # stand for the population (a ring buffer of num_runs entries).
                self._latest[self.calls % self.num_runs] = ret
        if self._progress is not None:
            self._refresh()

    @property
    def steps_done(self) -> int:
        return min(self.calls * self.every * self.steps_per_update, self.total_steps)

    @property
    def latest_return(self) -> float:
        with self._lock:
            values = list(self._latest.values())
        return float(np.mean(values)) if values else float("nan")

    def _refresh(self, final: bool = False):
        elapsed = max(time.perf_counter() - (self._start or time.perf_counter()), 1e-9)
        steps = self.total_steps if final else self.steps_done
        self._progress.update(self._task, completed=steps, sps=f"{steps / elapsed:,.0f}/s",
                              ret=f"{self.latest_return:.1f}")
