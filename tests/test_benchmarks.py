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
