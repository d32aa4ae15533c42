"""Per-update metric logs on disk: JSON lines or CSV, optional TensorBoard, learning-curve plots.

Training runs in chunks (updates `k .. k+n-1`); each chunk's `Metrics` (every field
`(num_runs, n)` on the host) is appended as one row per (run, update), in update order and, within
an update, run order. `read_metrics` turns a log back into `(num_runs, num_updates)` arrays.

Row keys / columns: `run`, `update` (0-based), `env_steps` (env steps *per run* done by the end of
that update: `(update + 1) * env_steps_per_update`), then every metric field. A value that is
NaN or ±Inf (e.g. `episode_return` of an update in which no episode finished) is written as JSON
`null` / an empty CSV cell and read back as NaN. Floats are written exactly (as the float64 of the
value), integers as integers.

    log = MetricsLog(run_dir, config.batch_size)          # or fmt="csv"
    log.append(result.metrics, first_update=k)            # after each chunk
    data = read_metrics(run_dir)                          # {"episode_return": (runs, updates), ...}
    plot_run(run_dir)                                     # run_dir/learning_curve.png

Resuming from a checkpoint that holds `k` updates: `MetricsLog(run_dir, ..., resume_from=k)`
drops the rows of updates >= k that were logged after that checkpoint was written, so the resumed
run appends from update k without duplicates.

A checkpoint records the log it saw (`log_fingerprint`: rows and a digest); `check_metrics_log`
checks a log against a checkpoint before a resume and raises `LogError` naming the file and the
first bad line (missing, truncated, garbage, rows out of order, different content).

matplotlib and tensorboardX are imported only when used.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from purejaxppo.config import ConfigError

FORMATS = ("jsonl", "csv")


class LogError(ConfigError):
    """A metrics log is missing, damaged, or not the one a checkpoint was saved with."""

INDEX_COLUMNS = ("run", "update", "env_steps")

# TensorBoard tags (CleanRL's namespaces); a field not listed here is logged as `charts/<field>`.
TB_TAGS = {
    "episode_return": "charts/episode_return",
    "episode_length": "charts/episode_length",
    "num_episodes": "charts/num_episodes",
    "learning_rate": "charts/learning_rate",
    "kl_coef": "charts/kl_coef",
    "epochs": "charts/epochs",
    "minibatch_steps": "charts/minibatch_steps",
    "policy_loss": "losses/policy_loss",
    "value_loss": "losses/value_loss",
    "entropy": "losses/entropy",
    "approx_kl": "losses/approx_kl",
    "kl": "losses/kl",
    "clip_fraction": "losses/clip_fraction",
    "explained_variance": "losses/explained_variance",
    "grad_norm": "losses/grad_norm",
}


def log_path(run_dir, fmt: str = "jsonl") -> Path:
    """`run_dir/metrics.jsonl` or `run_dir/metrics.csv`."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {FORMATS}, got {fmt!r}")
    return Path(run_dir) / f"metrics.{fmt}"


def metrics_arrays(metrics) -> dict[str, np.ndarray]:
    """A `Metrics` (any NamedTuple) or a mapping of field -> array, as `{field: (num_runs, n)}`
    numpy arrays. Every field must have the same shape `(..., n)`: leading axes (settings x
    seeds of a sweep) are flattened, row-major, into runs; a 1-D field `(n,)` is one run."""
    items = metrics._asdict() if hasattr(metrics, "_asdict") else metrics
    if not isinstance(items, Mapping) or not items:
        raise TypeError("metrics: expected a Metrics NamedTuple or a non-empty mapping of arrays")
    arrays = {str(name): np.asarray(value) for name, value in items.items()}
    shapes = {name: a.shape for name, a in arrays.items()}
    shape = next(iter(shapes.values()))
    if any(s != shape for s in shapes.values()):
        raise ValueError(f"metrics: every field must have the same shape, got {shapes}")
    if len(shape) == 0:
        raise ValueError("metrics: fields must have an update axis, got scalars")
    reserved = sorted(set(arrays) & set(INDEX_COLUMNS))
    if reserved:
        raise ValueError(f"metrics: field names {reserved} are reserved for the log's index")
    return {name: a.reshape(-1, shape[-1]) for name, a in arrays.items()}


def json_safe(value):
    """`value` with every non-finite float (NaN, ±inf) replaced by None, recursively through
    dicts, lists and tuples, numpy/JAX arrays and scalars made Python lists and numbers: what
    `json.dump(..., allow_nan=False)` accepts (`null` where, e.g., no episode finished). The one
    NaN -> null rule of the package (logs, summaries, benchmark records)."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy / JAX values
        value = value.tolist()
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path, value, indent: int | None = 2) -> None:
    """Write `value` as strict JSON (`json_safe`: `null`, never a bare NaN/Infinity)."""
    with open(path, "w") as f:
        json.dump(json_safe(value), f, indent=indent, allow_nan=False)


def _json_values(array: np.ndarray) -> list:
    """`(num_runs, n)` array -> nested Python lists; floats exact (as float64), NaN/Inf -> None."""
    if array.dtype.kind in "biu":
        return array.astype(np.int64).tolist()
    return json_safe(array.astype(np.float64))


class MetricsLog:
    """Appends per-update metrics, one row per (run, update), to `run_dir/metrics.<fmt>`.

    run_dir: created if missing. env_steps_per_update: env steps per run in one update
    (`config.batch_size` = num_envs x num_steps); it fills the `env_steps` column.
    fmt: "jsonl" (one JSON object per line) or "csv" (header once).
    resume_from: when the file exists, keep only its rows with `update < resume_from` (the number
    of updates in the checkpoint being resumed), dropping rows logged after that checkpoint.

    An existing file is appended to; it is checked on opening (every run present for every update,
    no duplicates; a last line cut off by a crash is dropped). `append` then only accepts the
    next update (`next_update`) and the same runs and fields, so a log always has exactly one row
    per (run, update) in update order.
    """

    def __init__(self, run_dir, env_steps_per_update: int, fmt: str = "jsonl",
                 resume_from: int | None = None):
        if int(env_steps_per_update) <= 0:
            raise ValueError(f"env_steps_per_update: must be positive, got {env_steps_per_update}")
        self.path = log_path(run_dir, fmt)
        self.fmt = fmt
        self.env_steps_per_update = int(env_steps_per_update)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._load(resume_from)

    def _load(self, keep_before: int | None) -> None:
        """Check an existing file and take its runs, fields and next update; drop a last line cut
        off mid-write and, when `keep_before` is given, the rows of updates >= keep_before."""
        self.columns: list[str] | None = None   # metric fields, in file order
        self.num_runs: int | None = None
        self.next_update: int | None = None     # None: no rows yet, any first update is accepted
        if not self.path.exists():
            return
        text = self.path.read_text()
        complete = text[:text.rfind("\n") + 1]
        rows, columns = _parse(complete, self.fmt, self.path)
        kept = rows if keep_before is None else [r for r in rows if r["update"] < keep_before]
        if complete != text or len(kept) != len(rows):
            self._rewrite(kept, columns)
        if columns:
            self.columns = [c for c in columns if c not in INDEX_COLUMNS]
        if kept:
            data = _to_arrays(kept, self.path)    # raises on missing or duplicate rows
            self.num_runs = len(data["run"])
            self.next_update = int(data["update"][-1]) + 1

    def truncate(self, num_updates: int) -> None:
        """Rewrite the log keeping only rows with `update < num_updates` (what a checkpoint of
        `num_updates` updates covers); the next `append` must then start at that update."""
        self._load(keep_before=int(num_updates))

    def append(self, metrics, first_update: int) -> None:
        """Append a chunk: `metrics` fields `(num_runs, n)` (see `metrics_arrays`) for updates
        `first_update .. first_update + n - 1`, written as `num_runs x n` rows, update-major.
        Raises ValueError (writing nothing) if the chunk is not the log's next update or its runs
        or fields differ from the rows already logged."""
        arrays = metrics_arrays(metrics)
        columns = list(arrays)
        num_runs, n = next(iter(arrays.values())).shape
        first_update = int(first_update)
        if self.next_update is not None and first_update != self.next_update:
            what = "would duplicate rows" if first_update < self.next_update else "leaves a gap"
            raise ValueError(
                f"{self.path}: holds updates up to {self.next_update - 1}; appending from update "
                f"{first_update} {what}. To resume from a checkpoint of k updates open the log "
                f"with MetricsLog(..., resume_from=k) (or call .truncate(k)).")
        if self.num_runs is not None and num_runs != self.num_runs:
            raise ValueError(f"{self.path}: has {self.num_runs} runs, the chunk has {num_runs}")
        if self.columns is not None and columns != self.columns:
            raise ValueError(f"{self.path}: has fields {self.columns}, the chunk has {columns}")
        if n == 0:
            return
        values = {name: _json_values(a) for name, a in arrays.items()}
        rows = []
        for i in range(n):
            update = first_update + i
            steps = (update + 1) * self.env_steps_per_update
            for run in range(num_runs):
                row = {"run": run, "update": update, "env_steps": steps}
                row.update({name: values[name][run][i] for name in columns})
                rows.append(row)
        header = not self.path.exists() or self.path.stat().st_size == 0
        text = _format(rows, list(INDEX_COLUMNS) + columns, self.fmt, header=header)
        with open(self.path, "a", newline="") as f:
            f.write(text)
        self.columns, self.num_runs, self.next_update = columns, num_runs, first_update + n

    def _rewrite(self, rows: list[dict], columns: list[str]) -> None:
        """Replace the file atomically by `rows` (CSV: under its header)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(_format(rows, columns, self.fmt, header=bool(columns)))
        os.replace(tmp, self.path)


def _format(rows: list[dict], columns: list[str], fmt: str, header: bool) -> str:
    """Rows as JSON lines (NaN/Inf refused: they must already be None) or CSV text."""
    if fmt == "jsonl":
        return "".join(json.dumps({c: row.get(c) for c in columns}, allow_nan=False) + "\n"
                       for row in rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else repr(row[c]) for c in columns])
    return out.getvalue()


def _csv_value(cell: str):
    if cell == "":
        return None
    try:
        return int(cell)
    except ValueError:
        return float(cell)


def numbered_rows(text: str, fmt: str, path):
    """Yield `(line number, row)` for each row of log text (rows as dicts of int / float / None;
    a CSV's header is line 1). LogError naming `path:line` for a line that is not a row: not
    JSON, not a JSON object, a wrong number of CSV cells, or a value that is not a number."""
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise LogError(f"{path}:{number}: not valid JSON ({err})") from None
            if not isinstance(row, dict):
                raise LogError(f"{path}:{number}: not a JSON object")
            yield number, row
        return
    reader = csv.reader(io.StringIO(text))
    columns = next(reader, [])
    for number, cells in enumerate(reader, 2):
        if len(cells) != len(columns):
            raise LogError(f"{path}:{number}: {len(cells)} cells, the header has "
                           f"{len(columns)}")
        try:
            yield number, {c: _csv_value(v) for c, v in zip(columns, cells)}
        except ValueError:
            raise LogError(f"{path}:{number}: a cell is not a number") from None


def _parse(text: str, fmt: str, path) -> tuple[list[dict], list[str]]:
    """Log text -> (rows as dicts of int / float / None, column names in file order)."""
    rows = [row for _, row in numbered_rows(text, fmt, path)]
    if fmt == "jsonl":
        return rows, list(rows[0]) if rows else []
    return rows, next(csv.reader(io.StringIO(text)), [])


def _to_arrays(rows: list[dict], path) -> dict[str, np.ndarray]:
    """Rows -> `{"run": (R,), "update": (U,), "env_steps": (U,), field: (R, U)}`; exactly one
    row per (run, update) is required. A column of integers only stays int64, others are
    float64 with None -> NaN."""
    for number, row in enumerate(rows, 1):
        missing = [c for c in INDEX_COLUMNS if not isinstance(row.get(c), int)]
        if missing:
            raise ValueError(f"{path}: row {number} has no integer {missing}")
    run = np.array([row["run"] for row in rows], dtype=np.int64)
    update = np.array([row["update"] for row in rows], dtype=np.int64)
    runs, run_index = np.unique(run, return_inverse=True)
    updates, update_index = np.unique(update, return_inverse=True)
    if runs[0] != 0 or runs[-1] != len(runs) - 1:
        raise ValueError(f"{path}: runs must be numbered 0..R-1, found {runs.tolist()}")
    counts = np.zeros((len(runs), len(updates)), dtype=np.int64)
    np.add.at(counts, (run_index, update_index), 1)
    if (counts != 1).any():
        r, u = np.argwhere(counts != 1)[0]
        problem = "duplicate rows" if counts[r, u] > 1 else "no row"
        raise ValueError(
            f"{path}: {problem} for run {runs[r]}, update {updates[u]} (a resumed run that logged "
            f"past its checkpoint? open it with MetricsLog(..., resume_from=k))")
    data = {"run": runs, "update": updates}
    env_steps = np.zeros(len(updates), dtype=np.int64)
    env_steps[update_index] = [row["env_steps"] for row in rows]
    data["env_steps"] = env_steps
    for name in rows[0]:
        if name in INDEX_COLUMNS:
            continue
        column = [row.get(name) for row in rows]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in column):
            values = np.zeros((len(runs), len(updates)), dtype=np.int64)
        else:
            values = np.full((len(runs), len(updates)), np.nan)
            column = [np.nan if v is None else v for v in column]
        values[run_index, update_index] = column
        data[name] = values
    return data


def read_metrics(run_dir, fmt: str | None = None) -> dict[str, np.ndarray]:
    """Read `run_dir/metrics.jsonl` or `run_dir/metrics.csv` (`fmt=None`: whichever exists; it
    is an error if both do) into arrays.

    Returns `{field: (num_runs, num_updates)}` for every metric field (null / empty -> NaN;
    float64, or int64 for a field holding only integers, e.g. num_episodes), plus
    `"env_steps"` and `"update"` `(num_updates,)` and `"run"` `(num_runs,)`, updates sorted.
    Raises ValueError unless there is exactly one row per (run, update)."""
    path = find_log(run_dir, fmt)
    if path is None:
        what = log_path(run_dir, fmt).name if fmt else "metrics.jsonl or metrics.csv"
        raise FileNotFoundError(f"{run_dir}: no {what}")
    rows, _ = _parse(path.read_text(), path.suffix[1:], path)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return _to_arrays(rows, path)


def find_log(run_dir, fmt: str | None = None) -> Path | None:
    """The run's metrics log (`fmt=None`: metrics.jsonl or metrics.csv, whichever exists), None
    when there is none. LogError when `fmt` is None and both exist."""
    if fmt is not None:
        path = log_path(run_dir, fmt)
        return path if path.exists() else None
    found = [log_path(run_dir, f) for f in FORMATS if log_path(run_dir, f).exists()]
    if len(found) > 1:
        raise LogError(f"{run_dir}: both metrics.jsonl and metrics.csv exist; pass fmt=")
    return found[0] if found else None


def _complete_lines(path: Path) -> str:
    """The log's text up to its last newline (a line cut off mid-write is not a row yet)."""
    text = path.read_text()
    return text[:text.rfind("\n") + 1]


def _digest(rows: list[dict]) -> str:
    """sha256 of rows' values (canonical JSON, so the same rows in JSONL, CSV or rewritten by
    `MetricsLog` give the same digest)."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, separators=(",", ":")).encode())
        h.update(b"\n")
    return "sha256:" + h.hexdigest()


def log_fingerprint(run_dir, rows: int, fmt: str | None = None) -> dict:
    """`{"log_rows": rows, "log_digest": ...}`: what a checkpoint records about the log it was
    saved with (the first `rows` rows: `num_runs x updates`), for `check_metrics_log`.
    LogError when the log is missing or has fewer rows."""
    path = find_log(run_dir, fmt)
    if path is None:
        raise LogError(f"{run_dir}: no metrics.jsonl or metrics.csv to fingerprint")
    kept = []
    for _, row in numbered_rows(_complete_lines(path), path.suffix[1:], path):
        if len(kept) == rows:
            break
        kept.append(row)
    if len(kept) < rows:
        raise LogError(f"{path}: has {len(kept)} rows, the fingerprint is of {rows}")
    return {"log_rows": int(rows), "log_digest": _digest(kept)}


def _check_row(row: dict, number: int, expected: tuple[int, int], columns: set, path) -> None:
    """LogError naming `path:number` unless `row` has the log's columns, numbers (or null) as
    values, and is the row of `expected` (run, update)."""
    if set(row) != columns:
        differ = sorted(set(row) ^ columns)
        raise LogError(f"{path}:{number}: columns {differ} are in this row or in the first "
                       f"row, not both")
    bad = [k for k, v in row.items() if v is not None and (isinstance(v, bool)
                                                          or not isinstance(v, (int, float)))]
    if bad:
        raise LogError(f"{path}:{number}: {bad} not numbers")
    found = (row.get("run"), row.get("update"))
    if found != expected or not all(isinstance(v, int) for v in found):
        raise LogError(f"{path}:{number}: expected run {expected[0]}, update {expected[1]}, "
                       f"found run {found[0]}, update {found[1]} (rows go update by update, "
                       f"runs in order)")


def check_metrics_log(run_dir, num_runs: int, updates: int, fingerprint: dict | None = None,
                      fmt: str | None = None) -> Path | None:
    """Check the run's metrics log against a checkpoint of `updates` updates of `num_runs` runs,
    before resuming from it; returns the log's path (None when `updates` is 0 and there is none).

    Raises LogError naming the file and the first bad line when the log is missing, a line is
    not a row (see `numbered_rows`), a row is out of order (rows must be run 0..num_runs-1 of
    update 0, then of update 1, ...), it has fewer than `num_runs x updates` rows (truncated), or
    `fingerprint` (`log_fingerprint` at save time, e.g. `meta`'s `log_rows`/`log_digest`) does
    not match its first rows. Rows past the checkpoint (logged by a chunk that was interrupted
    before it saved) are allowed: `MetricsLog(..., resume_from=updates)` drops them. A last line
    cut off mid-write is not counted."""
    need = int(num_runs) * int(updates)
    path = find_log(run_dir, fmt)
    if path is None:
        if need == 0:
            return None
        raise LogError(f"{run_dir}: the metrics log (metrics.jsonl or metrics.csv) is missing, "
                       f"but the checkpoint holds {updates} updates of {num_runs} runs; it was "
                       f"deleted or moved: restore it, or start a new run")
    text = _complete_lines(path)
    kept, columns, last = [], None, 1 if path.suffix == ".csv" else 0
    for i, (number, row) in enumerate(numbered_rows(text, path.suffix[1:], path)):
        columns = set(row) if columns is None else columns
        _check_row(row, number, (i % num_runs, i // num_runs), columns, path)
        if i < need:
            kept.append(row)
        last = number
    if len(kept) < need:
        done = len(kept) // num_runs
        raise LogError(f"{path}:{last + 1}: the log ends after {len(kept)} rows (updates 0.."
                       f"{done - 1} complete), but the checkpoint holds {updates} updates of "
                       f"{num_runs} runs ({need} rows): the log is truncated")
    if fingerprint is not None:
        rows, digest = fingerprint.get("log_rows"), fingerprint.get("log_digest")
        if rows != need:
            raise LogError(f"{path}: the checkpoint recorded {rows} log rows, but holds {updates} "
                           f"updates of {num_runs} runs ({need} rows)")
        if digest != _digest(kept):
            raise LogError(f"{path}: its first {need} rows (the updates the checkpoint holds) "
                           f"differ from the rows the checkpoint was saved with: the log was "
                           f"edited or replaced")
    return path


def _nanmean_over_runs(values: np.ndarray) -> np.ndarray:
    """`(num_runs, n)` -> `(n,)` mean over runs ignoring NaN (NaN where no run has a value)."""
    values = np.asarray(values, dtype=np.float64)
    values = np.where(np.isfinite(values), values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN columns
        return np.nanmean(values, axis=0)


def curve_over_runs(steps, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A learning curve: `steps (n,)`, `values (num_runs, n)` (NaN/inf: no value, e.g. an update
    where no episode finished) -> `(steps, mean, std)` over runs, only at the updates where some
    run has a value. Plotting those joins the points around updates without one; with long
    episodes (Freeway-MinAtar: 2,500 steps) most updates have none, and a line with NaN gaps
    there would show almost nothing."""
    values = np.asarray(values, dtype=np.float64)
    values = np.where(np.isfinite(values), values, np.nan)
    mean = _nanmean_over_runs(values)
    keep = np.isfinite(mean)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        std = np.nanstd(values[:, keep], axis=0)
    return np.asarray(steps)[keep], mean[keep], std


class TensorBoardLog:
    """TensorBoard event file in `run_dir` (tensorboardX), one scalar per update and field.

    Each scalar is the **mean over runs** (NaN-safe: NaN runs are ignored, and an update where no
    run has a value writes nothing), at x = env steps per run by the end of the update. Per-run
    curves are not written (use `read_metrics` / `plot_run` for the spread over seeds). Tags are
    `TB_TAGS` (`charts/episode_return`, `losses/policy_loss`, ...). `resume_from=k` hides the
    events of updates >= k written before a restart (tensorboardX `purge_step`).
    View with `tensorboard --logdir <parent of run_dir>`. Needs `pip install tensorboardX`.
    """

    def __init__(self, run_dir, env_steps_per_update: int, resume_from: int | None = None):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as err:
            raise ImportError(
                "TensorBoard logging needs tensorboardX: pip install tensorboardX "
                "(or pip install 'purejaxppo[tensorboard]')") from err
        if int(env_steps_per_update) <= 0:
            raise ValueError(f"env_steps_per_update: must be positive, got {env_steps_per_update}")
        self.env_steps_per_update = int(env_steps_per_update)
        purge = None if resume_from is None else (int(resume_from) + 1) * self.env_steps_per_update
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(logdir=str(run_dir), purge_step=purge)

    def append(self, metrics, first_update: int) -> None:
        """Write a chunk: `metrics` fields `(num_runs, n)` (see `metrics_arrays`) for updates
        `first_update .. first_update + n - 1`; flushed to disk before returning."""
        for name, values in metrics_arrays(metrics).items():
            tag = TB_TAGS.get(name, f"charts/{name}")
            for i, value in enumerate(_nanmean_over_runs(values)):
                if np.isfinite(value):
                    steps = (int(first_update) + i + 1) * self.env_steps_per_update
                    self.writer.add_scalar(tag, float(value), global_step=steps)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_title(run_dir) -> str:
    """`env_name` from `run_dir/config.json` when present, else the directory's name."""
    run_dir = Path(run_dir)
    config = run_dir / "config.json"
    if config.exists():
        name = json.loads(config.read_text()).get("env_name")
        if name:
            return str(name)
    return run_dir.resolve().name


def plot_run(run_dir, out_png=None, field: str = "episode_return") -> Path:
    """Plot the learning curve of `field` from the run's log: mean over runs with a mean ± std
    band over runs (`curve_over_runs`: updates where no run has a value are skipped), x = env
    steps per run, titled by `run_title`. Saved to `out_png`, by default
    `run_dir/learning_curve.png` (for another field `run_dir/learning_curve_<field>.png`).
    Returns the PNG's path. Needs matplotlib (the `[plot]` extra); draws with the Agg backend,
    leaving pyplot untouched."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plot_run needs matplotlib: pip install matplotlib "
                          "(or pip install 'purejaxppo[plot]')") from err
    data = read_metrics(run_dir)
    if field not in data or field in INDEX_COLUMNS:
        fields = [k for k in data if k not in INDEX_COLUMNS and k != "run"]
        raise ValueError(f"field: {field!r} is not in the log; fields: {fields}")
    values = np.asarray(data[field], dtype=np.float64)
    steps, mean, std = curve_over_runs(data["env_steps"], values)
    num_runs = values.shape[0]

    fig = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    label = f"mean over {num_runs} run{'s' if num_runs > 1 else ''}"
    ax.plot(steps, mean, linewidth=1.5, label=label + (" ± std" if num_runs > 1 else ""))
    if num_runs > 1:
        ax.fill_between(steps, mean - std, mean + std, alpha=0.25, linewidth=0)
    ax.set_xlabel("env steps (per run)")
    ax.set_ylabel(field.replace("_", " "))
    ax.set_title(run_title(run_dir))
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    if out_png is None:
        name = "learning_curve.png" if field == "episode_return" else f"learning_curve_{field}.png"
        out_png = Path(run_dir) / name
    out_png = Path(out_png)
    fig.savefig(out_png)
    return out_png
