"""The benchmark scripts' own logic (their timings are never tested: machines are noisy)."""

import importlib.util
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_commits_pairs_ratios_in_time_order():
    commits = _load("commits")
    s = commits.summarise([100.0, 200.0, 100.0], [110.0, 180.0, 120.0])
    assert s["old_median_sps"] == 100.0 and s["new_median_sps"] == 120.0
    assert (s["ratio_min"], s["ratio_median"], s["ratio_max"]) == pytest.approx((0.9, 1.1, 1.2))


def test_commits_copies_a_revision_and_refuses_bad_arguments(tmp_path, capsys):
    commits = _load("commits")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    assert commits.materialise("HEAD", tmp_path / "old") == head.stdout.strip()
    assert (tmp_path / "old" / "purejaxppo" / "train.py").is_file()
    assert commits.materialise(commits.WORKTREE, tmp_path / "new").startswith(head.stdout.strip())
    assert (tmp_path / "new" / "tests" / "test_benchmarks.py").is_file()
    assert commits.main(["--set", "num_envs=0"]) == 2
    assert "num_envs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        commits.main(["--seeds", "1,x"])


def test_peers_table_shows_the_baseline_side_and_its_ratios():
    peers = _load("peers")

    def side(sps):
        return peers.summarise([{"run_s": 1.0, "sps": sps, "compile_s": 2.0, "trace_s": 0.5,
                                 "final_return": [500.0], "eval_return": [500.0]}])

    row = {"num_seeds": 8, "ours": side(300.0), "peer": side(200.0), "before": side(250.0),
           "ratio_of_medians": 1.5, "ratio_before_over_peer": 1.25, "ratio_ours_over_before": 1.2}
    header, _, line = peers.format_table([row]).splitlines()
    cells = dict(zip(header.strip("| ").split(" | "), line.strip("| ").split(" | ")))
    assert (cells["before sps median"], cells["before/peer"], cells["ours/before"]) == (
        "250", "1.25", "1.20")
    assert "ours/before" not in peers.format_table([{k: v for k, v in row.items()
                                                      if k != "before"}])


def test_minibatch_step_and_xla_options_refuse_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        _load("minibatch_step").main(["--variants", "plain,bogus"])
    assert "bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _load("xla_options").main(["--option", "no_value"])
    assert "KEY=VALUE" in capsys.readouterr().err
    assert _load("xla_options")._parse("false") is False


@pytest.mark.parametrize("size", ["full", "tiny"])
def test_gpu_suite_parts_are_valid_runs(size):
    """Every part of `benchmarks/gpu_suite.sh`, at both sizes, is a valid scaling.py run (config
    built and checked by `make_train`, nothing compiled): CartPole up to 4096 seeds, Breakout's
    CNN at 1 and 64, fast_paths auto and off."""
    gpu_suite = _load("gpu_suite")
    scaling = _load("scaling")
    throughput = _load("throughput")
    seen = set()
    for name, argv in gpu_suite.parts(size):
        config, seeds = throughput.parse_run_args(scaling.make_parser().parse_args(argv))
        seen.add((config.env_name, config.fast_paths))
        if size == "full" and config.env_name == "CartPole-v1":
            assert seeds == [1, 4, 16, 64, 256, 1024, 4096]
        if size == "full" and config.env_name == "Breakout-MinAtar":
            assert seeds == [1, 64] and config.network == "cnn"
    assert seen == {(env, fast) for env in ("CartPole-v1", "Breakout-MinAtar")
                    for fast in ("auto", "off")}
    assert scaling.main(["--seeds", "0"]) == 2  # scaling.py refuses what the parts would not


@pytest.mark.slow
def test_gpu_suite_runs_every_part_at_tiny_sizes_on_cpu(tmp_path):
    """`benchmarks/gpu_suite.sh` end to end on the CPU at its tiny sizes (about 30 s of
    compiling, so `slow`): every part (CartPole and Breakout-MinAtar's CNN, fast_paths auto and
    off) measured, one JSON gathering them."""
    import json
    import os
    import sys

    env = {**os.environ, "SIZE": "tiny", "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "gpu_suite.json").read_text())
    gpu_suite = _load("gpu_suite")
    assert set(summary["parts"]) == {name for name, _ in gpu_suite.parts("tiny")}
    assert {(r["env"], r["fast_paths"]) for r in summary["rows"]} == {
        (env, fast) for env in ("CartPole-v1", "Breakout-MinAtar") for fast in ("auto", "off")}
    for row in summary["rows"]:
        assert row["seeds"] == 2 and row["sweep_sps"] > 0 and row["compile_s"]["sweep"] > 0
    assert summary["wall_s"] > 0 and "Breakout-MinAtar" in proc.stdout
    full = gpu_suite.parts("full")
    assert any("4096" in ",".join(argv) for _, argv in full)
    assert any("Breakout-MinAtar" in argv and "1,64" in argv for _, argv in full)
