"""Host-side progress for a running (jitted, vmapped) training program.

`ProgressReporter` is the `callback` handed to `make_train`: the program calls it from inside the
scan with `(update_idx, metrics)` through `emit_progress`, unordered: once per report, with the
rows of every vmapped run (seed or sweep setting) batched in `metrics`. It counts environment steps
and keeps each run's latest mean return; it never changes results.

Under `purejaxppo.sweeps` (a `shard_map` over devices) each device's runs call back on the host
that owns the device, so with several processes each process counts its own runs
(`sweeps.local_runs`). To switch progress off (benchmarks), build `make_train` without a callback.
"""

from __future__ import annotations

import math
import threading
import time

from typing import Optional

import numpy as np

DEFAULT_MAX_REPORTS = 200
"""`progress_every` aims at this many progress reports per run."""


def progress_every(num_updates: int, max_reports: int = DEFAULT_MAX_REPORTS) -> int:
    """The `callback_every` that gives at most about `max_reports` reports over `num_updates`.

    Each report is one host callback (batched over vmapped runs by `emit_progress`) that
    interrupts the device program, so a bounded number of reports keeps its cost small.
    """
    if max_reports <= 0:
        raise ValueError(f"max_reports: must be a positive integer, got {max_reports!r}")
    return max(1, -(-num_updates // max_reports))


def expected_calls(num_runs: int, num_updates: int, every: int) -> int:
    """How many run-reports a `make_train(..., callback_every=every)` callback receives over
    `num_runs` vmapped runs of `num_updates` updates: one per run at updates 0, every, 2*every, ...
    (`ProgressReporter.calls` counts these; batched rows count once per run)."""
    return num_runs * (-(-num_updates // every))


def emit_progress(callback, update_idx, metrics) -> None:
    """`jax.debug.callback(callback, update_idx, metrics, ordered=False)`, batched under vmap.

    `jax.debug.callback`'s own vmap rule unrolls: one host call per batch element (per seed), i.e.
    `num_runs` host round trips per report. Under `jax.vmap` (nested or not) this calls `callback`
    once with `metrics` carrying the leading batch axes instead (`update_idx` is never batched in
    `train`; if it is, it is passed batched too). `ProgressReporter` accepts both forms. Inside
    `purejaxppo.sweeps`'s `shard_map` each device makes one call per report with its own runs (one
    per group of runs where they run in groups, `sweeps.vmap_in_groups`).
    """
    import jax
    import jax.numpy as jnp

    @jax.custom_batching.custom_vmap
    def report(idx, row):
        jax.debug.callback(callback, idx, row, ordered=False)
        return idx

    @report.def_vmap
    def report_batched(axis_size, in_batched, idx, row):
        idx_batched, row_batched = in_batched
        row = jax.tree.map(
            lambda x, b: x if b else jnp.broadcast_to(x, (axis_size, *jnp.shape(x))),
            row, row_batched)
        report(idx, row)  # under an outer vmap this rule runs again, adding that axis in front
        return idx, idx_batched

    report(update_idx, metrics)


class ProgressReporter:
    """Counts callback calls from `num_runs` vmapped runs and renders a rich progress bar.

    Args:
      num_runs: how many runs (seeds x settings) execute in the program.
      num_updates: updates per run.
      steps_per_update: environment steps per update (num_envs * num_steps).
      every: the `callback_every` given to `make_train`.
      show: draw the bar (False: only count, e.g. in tests).
      description: the bar's label.
      console: a `rich.console.Console` to draw on (default: rich's, i.e. stdout).
      min_interval: seconds between two updates of the bar by callbacks (the bar's own refresh
        thread redraws it; callbacks only count, so thousands of vmapped runs stay cheap).
    """

    def __init__(self, num_runs: int, num_updates: int, steps_per_update: int, every: int = 1,
                 show: bool = True, description: str = "training", console=None,
                 min_interval: float = 0.1):
        self.console, self.min_interval = console, min_interval
        self._last_refresh = float("-inf")
        self.num_runs, self.num_updates = num_runs, num_updates
        self.steps_per_update, self.every = steps_per_update, every
        self.total_steps = num_runs * num_updates * steps_per_update
        self.calls = 0
        self._base, self._ceiling = 0, self.total_steps  # see `set_done`
        self._clock_base = 0
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
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
                TextColumn("env steps"), TextColumn("{task.fields[sps]}"),
                TextColumn("return {task.fields[ret]}"), TimeElapsedColumn(), transient=False,
                console=self.console)
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
            self._clock_base = self._base  # steps done before this session (a resumed run)
            self.calls = 0

    def set_done(self, updates: int, until: Optional[int] = None) -> None:
        """The host knows every run has done `updates` updates (a chunk ended) and that the next
        chunk runs until update `until` (default: the end): the bar shows `updates` exactly and,
        while the chunk runs, counts its reports but never past `until`."""
        with self._lock:
            self._base = updates * self.num_runs * self.steps_per_update
            stop = self.num_updates if until is None else min(until, self.num_updates)
            self._ceiling = stop * self.num_runs * self.steps_per_update
            self.calls = 0
        if self._progress is not None:
            self._refresh()

    def __call__(self, update_idx, metrics) -> None:
        # One run's row per call under vmap (the batching rule of jax.debug.callback unrolls);
        # a batched row (leading run axes) counts as that many runs.
        returns = np.asarray(metrics.episode_return, dtype=np.float64).reshape(-1)
        with self._lock:
            for ret in returns:
                self.calls += 1
                if not math.isnan(ret):
                    # Runs are not identified under vmap; the latest returns of the most recent
                    # calls stand for the population (a ring buffer of num_runs entries).
                    self._latest[self.calls % self.num_runs] = float(ret)
        if self._progress is not None:
            now = time.perf_counter()
            if now - self._last_refresh >= self.min_interval:
                self._last_refresh = now
                self._refresh()

    @property
    def steps_done(self) -> int:
        counted = self._base + self.calls * self.every * self.steps_per_update
        return min(counted, self._ceiling, self.total_steps)

    @property
    def latest_return(self) -> float:
        with self._lock:
            values = list(self._latest.values())
        return float(np.mean(values)) if values else float("nan")

    def _refresh(self, final: bool = False):
        """Redraw the bar (`final`: at exit) with the steps done, never more."""
        elapsed = max(time.perf_counter() - (self._start or time.perf_counter()), 1e-9)
        steps = self.steps_done
        rate = (steps - self._clock_base) / elapsed
        self._progress.update(self._task, completed=steps, sps=f"{rate:,.0f}/s",
                              ret=f"{self.latest_return:.1f}")
