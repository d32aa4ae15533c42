"""Metric logs on disk (`purejaxppo.logs`): JSON lines / CSV, resume, TensorBoard, plots."""

import json
import struct
import sys

import numpy as np
import pytest

from purejaxppo.logs import (TB_TAGS, LogError, MetricsLog, TensorBoardLog,
                             check_metrics_log, curve_over_runs, log_fingerprint, metrics_arrays,
                             plot_run, read_metrics, run_title)
from purejaxppo.metrics import Metrics

FORMATS = ["jsonl", "csv"]
STEPS = 512  # env steps per update


def fake_metrics(num_runs=3, num_updates=10, seed=0) -> Metrics:
    """Host metrics like a chunk of training's: float32 fields, int32 episode counts, NaN returns
    and lengths where no episode finished (including an update where no run finished one)."""
    rng = np.random.default_rng(seed)
    shape = (num_runs, num_updates)
    num_episodes = rng.integers(0, 4, shape).astype(np.int32)
    num_episodes[:, 3:4] = 0
    finished = num_episodes > 0
    values = {name: rng.normal(size=shape).astype(np.float32) for name in Metrics._fields}
    values["episode_return"] = np.where(finished, rng.uniform(0, 500, shape), np.nan).astype(
        np.float32)
    values["episode_length"] = np.where(finished, rng.integers(1, 500, shape), np.nan).astype(
        np.float32)
    values["num_episodes"] = num_episodes
    values["learning_rate"] = np.broadcast_to(
        np.linspace(2.5e-4, 0, num_updates, dtype=np.float32), shape).copy()
    return Metrics(**values)


def chunk(metrics: Metrics, start: int, stop: int) -> Metrics:
    return Metrics(*(np.asarray(x)[..., start:stop] for x in metrics))


def assert_same(data: dict, metrics: Metrics) -> None:
    for name, expected in metrics._asdict().items():
        expected = np.asarray(expected)
        assert data[name].shape == expected.shape, name
        np.testing.assert_array_equal(data[name], expected, err_msg=name)  # NaN == NaN here
        assert np.array_equal(np.isnan(data[name]), np.isnan(expected)), name


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_in_two_chunks(tmp_path, fmt):
    metrics = fake_metrics()
    log = MetricsLog(tmp_path, STEPS, fmt=fmt)
    log.append(chunk(metrics, 0, 4), first_update=0)
    log.append(chunk(metrics, 4, 10), first_update=4)
    assert (tmp_path / f"metrics.{fmt}").exists() and log.next_update == 10
    data = read_metrics(tmp_path)
    assert_same(data, metrics)
    assert np.isnan(data["episode_return"][:, 3]).all()
    assert data["num_episodes"].dtype == np.int64 and data["episode_return"].dtype == np.float64
    np.testing.assert_array_equal(data["update"], np.arange(10))
    np.testing.assert_array_equal(data["env_steps"], STEPS * np.arange(1, 11))
    np.testing.assert_array_equal(data["run"], np.arange(3))


def test_jsonl_rows_one_per_run_and_update_in_update_order(tmp_path):
    metrics = fake_metrics(num_runs=2, num_updates=5)
    log = MetricsLog(tmp_path, STEPS)
    log.append(chunk(metrics, 0, 2), 0)
    log.append(chunk(metrics, 2, 5), 2)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [(r["update"], r["run"]) for r in rows] == [(u, r) for u in range(5) for r in range(2)]
    assert list(rows[0]) == ["run", "update", "env_steps", *Metrics._fields]
    assert rows[3]["env_steps"] == 2 * STEPS
    assert rows[7]["episode_return"] is None and rows[7]["num_episodes"] == 0  # run 1, update 3
    assert rows[7]["policy_loss"] == float(metrics.policy_loss[1, 3])  # exact float32 value


def test_csv_has_one_header_and_empty_cells_for_nan(tmp_path):
    metrics = fake_metrics(num_runs=2, num_updates=6)
    log = MetricsLog(tmp_path, STEPS, fmt="csv")
    log.append(chunk(metrics, 0, 3), 0)
    log = MetricsLog(tmp_path, STEPS, fmt="csv")  # reopened: appends, no second header
    log.append(chunk(metrics, 3, 6), 3)
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == ",".join(["run", "update", "env_steps", *Metrics._fields])
    assert len(lines) == 1 + 2 * 6 and sum(line.startswith("run,") for line in lines) == 1
    row = dict(zip(lines[0].split(","), lines[1 + 2 * 3].split(",")))  # run 0, update 3
    assert row["episode_return"] == "" and row["num_episodes"] == "0"


@pytest.mark.parametrize("fmt", FORMATS)
def test_nan_and_inf_are_written_as_null_never_as_invalid_json(tmp_path, fmt):
    values = np.array([[1.0, np.nan, np.inf, -np.inf]], np.float32)
    MetricsLog(tmp_path, STEPS, fmt=fmt).append({"episode_return": values}, 0)
    text = (tmp_path / f"metrics.{fmt}").read_text()
    assert "nan" not in text.lower() and "inf" not in text.lower()
    if fmt == "jsonl":
        def refuse(constant):
            raise AssertionError(f"invalid JSON constant {constant}")
        rows = [json.loads(line, parse_constant=refuse) for line in text.splitlines()]
        assert [r["episode_return"] for r in rows] == [1.0, None, None, None]
    data = read_metrics(tmp_path)["episode_return"]
    np.testing.assert_array_equal(data, [[1.0, np.nan, np.nan, np.nan]])


@pytest.mark.parametrize("fmt", FORMATS)
def test_resume_drops_rows_logged_after_the_checkpoint(tmp_path, fmt):
    metrics = fake_metrics()
    log = MetricsLog(tmp_path, STEPS, fmt=fmt)
    log.append(chunk(metrics, 0, 4), 0)   # checkpoint written after update 3 (4 updates) ...
    log.append(chunk(metrics, 4, 7), 4)   # ... logged, then killed before the next checkpoint
    with pytest.raises(ValueError, match="duplicate"):
        MetricsLog(tmp_path, STEPS, fmt=fmt).append(chunk(metrics, 4, 10), 4)
    resumed = MetricsLog(tmp_path, STEPS, fmt=fmt, resume_from=4)
    assert resumed.next_update == 4
    np.testing.assert_array_equal(read_metrics(tmp_path)["update"], np.arange(4))
    resumed.append(chunk(metrics, 4, 10), 4)
    assert_same(read_metrics(tmp_path), metrics)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncate_keeps_updates_before_the_number(tmp_path, fmt):
    metrics = fake_metrics()
    log = MetricsLog(tmp_path, STEPS, fmt=fmt)
    log.append(metrics, 0)
    log.truncate(7)
    assert log.next_update == 7
    assert_same(read_metrics(tmp_path), chunk(metrics, 0, 7))
    log.append(chunk(metrics, 7, 10), 7)
    assert_same(read_metrics(tmp_path), metrics)
    log.truncate(0)  # nothing kept: any first update is accepted again
    assert log.next_update is None
    log.append(metrics, 0)
    assert_same(read_metrics(tmp_path), metrics)


def test_append_refuses_gaps_and_changed_runs_or_fields(tmp_path):
    metrics = fake_metrics()
    log = MetricsLog(tmp_path, STEPS)
    log.append(chunk(metrics, 0, 4), 0)
    size = (tmp_path / "metrics.jsonl").stat().st_size
    with pytest.raises(ValueError, match="gap"):
        log.append(chunk(metrics, 5, 10), 5)
    with pytest.raises(ValueError, match="runs"):
        log.append(Metrics(*(x[:2] for x in chunk(metrics, 4, 10))), 4)
    with pytest.raises(ValueError, match="fields"):
        log.append({"episode_return": metrics.episode_return[:, 4:]}, 4)
    with pytest.raises(ValueError, match="reserved"):
        log.append({"update": metrics.episode_return[:, 4:]}, 4)
    assert (tmp_path / "metrics.jsonl").stat().st_size == size  # nothing written
    log.append(chunk(metrics, 4, 10), 4)
    assert_same(read_metrics(tmp_path), metrics)


def test_a_last_line_cut_off_by_a_crash_is_dropped_on_opening(tmp_path):
    metrics = fake_metrics(num_runs=2)
    MetricsLog(tmp_path, STEPS).append(chunk(metrics, 0, 5), 0)
    path = tmp_path / "metrics.jsonl"
    with open(path, "a") as f:
        f.write('{"run": 0, "update": 5, "env_st')
    log = MetricsLog(tmp_path, STEPS)
    assert log.next_update == 5 and path.read_text().endswith("}\n")
    log.append(chunk(metrics, 5, 10), 5)
    assert_same(read_metrics(tmp_path), metrics)


def test_read_rejects_duplicate_and_missing_rows(tmp_path):
    MetricsLog(tmp_path, STEPS).append(fake_metrics(num_runs=2, num_updates=3), 0)
    path = tmp_path / "metrics.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines + lines[-2:]))
    with pytest.raises(ValueError, match="duplicate rows for run 0, update 2"):
        read_metrics(tmp_path)
    with pytest.raises(ValueError, match="duplicate"):
        MetricsLog(tmp_path, STEPS)
    path.write_text("".join(lines[:-1]))
    with pytest.raises(ValueError, match="no row for run 1, update 2"):
        read_metrics(tmp_path)


def test_read_metrics_finds_the_format(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_metrics(tmp_path)
    metrics = fake_metrics(num_runs=1, num_updates=2)
    MetricsLog(tmp_path, STEPS, fmt="csv").append(metrics, 0)
    assert_same(read_metrics(tmp_path), metrics)
    MetricsLog(tmp_path, STEPS, fmt="jsonl").append(metrics, 0)
    with pytest.raises(ValueError, match="both"):
        read_metrics(tmp_path)
    assert_same(read_metrics(tmp_path, fmt="jsonl"), metrics)
    with pytest.raises(ValueError, match="fmt"):
        MetricsLog(tmp_path, STEPS, fmt="parquet")


def test_sweep_axes_are_flattened_into_runs(tmp_path):
    returns = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)  # settings x seeds x updates
    assert metrics_arrays({"episode_return": returns})["episode_return"].shape == (6, 4)
    MetricsLog(tmp_path, STEPS).append({"episode_return": returns}, 0)
    np.testing.assert_array_equal(read_metrics(tmp_path)["episode_return"],
                                  returns.reshape(6, 4))


def read_events(run_dir) -> tuple[dict, list]:
    """Scalars `{tag: [(step, value), ...]}` and session-log `(step, status)` from the TFRecord
    event files in `run_dir` (length u64, crc u32, Event proto, crc u32 per record)."""
    from tensorboardX.proto import event_pb2

    scalars, sessions = {}, []
    files = sorted(run_dir.glob("events.out.tfevents.*"))
    assert files
    for path in files:
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
            if event.HasField("session_log"):
                sessions.append((event.step, event.session_log.status))
    return scalars, sessions


def test_tensorboard_writes_mean_over_runs_per_update_at_env_steps(tmp_path):
    pytest.importorskip("tensorboardX")
    metrics = fake_metrics(num_runs=3, num_updates=10)
    with TensorBoardLog(tmp_path, STEPS) as tb:
        tb.append(chunk(metrics, 0, 4), 0)
        tb.append(chunk(metrics, 4, 10), 4)
    scalars, _ = read_events(tmp_path)
    assert set(scalars) == set(TB_TAGS.values())
    assert {"charts/episode_return", "losses/policy_loss", "losses/grad_norm"} <= set(scalars)
    returns = metrics.episode_return
    has_value = ~np.isnan(returns).all(axis=0)
    assert not has_value[3]
    steps, values = zip(*scalars["charts/episode_return"])
    np.testing.assert_array_equal(steps, STEPS * (1 + np.flatnonzero(has_value)))
    np.testing.assert_allclose(values, np.nanmean(returns[:, has_value], axis=0), rtol=1e-6)
    steps, values = zip(*scalars["losses/value_loss"])
    np.testing.assert_array_equal(steps, STEPS * np.arange(1, 11))
    np.testing.assert_allclose(values, metrics.value_loss.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_tensorboard_resume_marks_the_purge_step(tmp_path):
    pytest.importorskip("tensorboardX")
    from tensorboardX.proto.event_pb2 import SessionLog

    with TensorBoardLog(tmp_path, STEPS, resume_from=4) as tb:
        tb.append(chunk(fake_metrics(), 4, 10), 4)
    _, sessions = read_events(tmp_path)
    # TensorBoard hides earlier events at steps >= this one: updates >= 4.
    assert (5 * STEPS, SessionLog.START) in sessions


def test_tensorboard_without_tensorboardx_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # makes the import fail
    with pytest.raises(ImportError, match="pip install tensorboardX"):
        TensorBoardLog(tmp_path, STEPS)


def image_of(path):
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


def test_plot_run_saves_a_learning_curve_next_to_the_logs(tmp_path):
    pytest.importorskip("matplotlib")
    metrics = fake_metrics(num_runs=4, num_updates=30)
    MetricsLog(tmp_path, STEPS).append(metrics, 0)
    path = plot_run(tmp_path)
    assert path == tmp_path / "learning_curve.png" and path.stat().st_size > 0
    image = image_of(path)
    assert 400 <= image.width <= 2000 and 300 <= image.height <= 2000
    colours = np.unique(np.asarray(image).reshape(-1, 3), axis=0)
    assert len(colours) > 20  # a drawn curve and band, not a blank canvas


def test_curve_over_runs_skips_updates_without_a_value():
    """Long episodes leave most updates without a finished one: the curve joins the others."""
    values = np.array([[np.nan, 1.0, np.nan, np.inf, 5.0],
                       [np.nan, 3.0, np.nan, np.nan, np.nan]])
    steps, mean, std = curve_over_runs(np.array([10, 20, 30, 40, 50]), values)
    np.testing.assert_array_equal(steps, [20, 50])
    np.testing.assert_array_equal(mean, [2.0, 5.0])
    np.testing.assert_array_equal(std, [1.0, 0.0])


def test_plot_run_other_field_and_path_single_run(tmp_path):
    pytest.importorskip("matplotlib")
    metrics = fake_metrics(num_runs=1, num_updates=8)
    MetricsLog(tmp_path / "run", STEPS, fmt="csv").append(metrics, 0)
    out = tmp_path / "figures" / "loss.png"
    out.parent.mkdir()
    assert plot_run(tmp_path / "run", out, field="value_loss") == out
    assert image_of(out).width > 0
    assert plot_run(tmp_path / "run", field="entropy").name == "learning_curve_entropy.png"
    with pytest.raises(ValueError, match="not in the log"):
        plot_run(tmp_path / "run", field="reward")


def test_run_title_from_config_or_directory(tmp_path):
    run_dir = tmp_path / "cartpole_seed0"
    run_dir.mkdir()
    assert run_title(run_dir) == "cartpole_seed0"
    (run_dir / "config.json").write_text(json.dumps({"num_envs": 4}))
    assert run_title(run_dir) == "cartpole_seed0"
    (run_dir / "config.json").write_text(json.dumps({"env_name": "CartPole-v1"}))
    assert run_title(run_dir) == "CartPole-v1"


# ------------------------------------------------------------- checking a log against a checkpoint


def _logged(run_dir, fmt, num_runs=3, num_updates=10):
    """A log of `num_updates` updates of `num_runs` runs, written in two chunks as training
    does, and the fingerprint a checkpoint at update 6 records."""
    metrics = fake_metrics(num_runs, num_updates)
    log = MetricsLog(run_dir, STEPS, fmt=fmt)
    log.append(chunk(metrics, 0, 6), first_update=0)
    fingerprint = log_fingerprint(run_dir, 6 * num_runs)
    log.append(chunk(metrics, 6, num_updates), first_update=6)
    return log.path, fingerprint


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_intact_log_passes_also_after_a_resume_rewrote_it(tmp_path, fmt):
    path, fingerprint = _logged(tmp_path, fmt)
    assert fingerprint["log_rows"] == 18 and fingerprint["log_digest"].startswith("sha256:")
    assert check_metrics_log(tmp_path, 3, 6, fingerprint) == path  # rows past it: allowed
    assert check_metrics_log(tmp_path, 3, 10) == path
    with open(path, "a") as f:
        f.write('{"run": 0, "upd')  # a line cut off by a crash is not a row
    assert check_metrics_log(tmp_path, 3, 6, fingerprint) == path
    MetricsLog(tmp_path, STEPS, fmt=fmt, resume_from=6)  # drops updates 6.. and the cut line
    assert check_metrics_log(tmp_path, 3, 6, fingerprint) == path
    assert log_fingerprint(tmp_path, 18) == fingerprint


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_truncated_log_is_named_with_its_line(tmp_path, fmt):
    path, _ = _logged(tmp_path, fmt)
    lines = path.read_text().splitlines(keepends=True)
    header = 1 if fmt == "csv" else 0
    path.write_text("".join(lines[:header + 3 * 4 + 1]))  # 4 updates and one row of the 5th
    with pytest.raises(LogError, match=f"{path}:{header + 14}: the log ends after 13 rows "
                       r"\(updates 0..3 complete\), but the checkpoint holds 6 updates of 3 runs "
                       r"\(18 rows\): the log is truncated"):
        check_metrics_log(tmp_path, 3, 6)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_garbage_line_is_named(tmp_path, fmt):
    path, fingerprint = _logged(tmp_path, fmt)
    lines = path.read_text().splitlines(keepends=True)
    lines[7] = "\x00\x00garbage, 1\n"
    path.write_text("".join(lines))
    words = "not valid JSON" if fmt == "jsonl" else "2 cells, the header has 18"
    with pytest.raises(LogError, match=f"{path}:8: {words}"):
        check_metrics_log(tmp_path, 3, 6, fingerprint)


def test_rows_out_of_order_duplicated_or_of_other_columns_are_named(tmp_path):
    path, _ = _logged(tmp_path, "jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for change, line, words in [
        (lambda r: r.insert(5, dict(r[4])), 6, "expected run 2, update 1, found run 1, update 1"),
        (lambda r: r.pop(0), 1, "expected run 0, update 0, found run 1, update 0"),
        (lambda r: r[9].pop("entropy"), 10,
         r"columns \['entropy'\] are in this row or in the first row"),
        (lambda r: r[2].update(entropy="high"), 3, r"\['entropy'\] not numbers"),
    ]:
        damaged = [dict(r) for r in rows]
        change(damaged)
        path.write_text("".join(json.dumps(r) + "\n" for r in damaged))
        with pytest.raises(LogError, match=f"{path}:{line}: {words}"):
            check_metrics_log(tmp_path, 3, 6)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_edited_or_replaced_log_fails_the_fingerprint(tmp_path, fmt):
    path, fingerprint = _logged(tmp_path, fmt)
    rows = read_metrics(tmp_path)
    # One value of update 2 changed: every index still checks, the digest does not.
    old = repr(float(rows['value_loss'][1, 2]))
    assert path.read_text().count(old) == 1
    path.write_text(path.read_text().replace(old, "0.5"))
    check_metrics_log(tmp_path, 3, 6)
    with pytest.raises(LogError, match=f"{path}: its first 18 rows .* the log was edited or "
                       "replaced"):
        check_metrics_log(tmp_path, 3, 6, fingerprint)
    with pytest.raises(LogError, match="recorded 12 log rows, but holds 6 updates of 3 runs"):
        check_metrics_log(tmp_path, 3, 6, {**fingerprint, "log_rows": 12})


def test_a_deleted_log_is_named_unless_nothing_was_logged(tmp_path):
    with pytest.raises(LogError, match=f"{tmp_path}: the metrics log .* is missing, but the "
                       "checkpoint holds 4 updates of 2 runs"):
        check_metrics_log(tmp_path, 2, 4)
    assert check_metrics_log(tmp_path, 2, 0) is None
    with pytest.raises(LogError, match="no metrics.jsonl or metrics.csv to fingerprint"):
        log_fingerprint(tmp_path, 0)
