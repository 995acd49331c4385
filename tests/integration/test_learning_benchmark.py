"""benchmarks/learning.py end to end on the tiny config: each arm trains with its own reward flags,
results accumulate in <workdir>/results.jsonl, an arm already there is not re-run, and the table
and the final JSON line report every arm."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.slow


def _learning(workdir, *args):
    command = [sys.executable, os.path.join(ROOT, "benchmarks", "learning.py"), "--config",
               os.path.join(ROOT, "configs", "tiny.py"), "--minutes", "0.01", "--no-humaneval",
               "--workdir", str(workdir), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)


def _rows(workdir):
    with open(workdir / "results.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_arms_accumulate_and_are_not_rerun(tmp_path):
    first = _learning(tmp_path, "--arms", "coarse")
    assert first.returncode == 0, first.stderr[-4000:]
    (coarse,) = _rows(tmp_path)
    assert coarse["arm"] == "coarse" and coarse["seed"] == 0 and coarse["steps"] >= 1
    assert 0.0 <= coarse["heldout_before"] <= 1.0 and 0.0 <= coarse["heldout_after"] <= 1.0
    assert coarse["gain_points"] == pytest.approx(100 * (coarse["heldout_after"] - coarse["heldout_before"]))
    with open(tmp_path / "coarse_seed0" / "config.json", encoding="utf-8") as handle:
        rewards = json.load(handle)["rewards"]
    assert rewards["fine_grained"] is False and rewards["adaptive"] is False
    coarse_metrics = (tmp_path / "coarse_seed0" / "metrics.jsonl").read_text()

    second = _learning(tmp_path, "--arms", "coarse,adaptive")
    assert second.returncode == 0, second.stderr[-4000:]
    assert [r["arm"] for r in _rows(tmp_path)] == ["coarse", "adaptive"]
    assert (tmp_path / "coarse_seed0" / "metrics.jsonl").read_text() == coarse_metrics  # not re-run
    with open(tmp_path / "adaptive_seed0" / "config.json", encoding="utf-8") as handle:
        rewards = json.load(handle)["rewards"]
    assert rewards["fine_grained"] is True and rewards["adaptive"] is True

    table = (tmp_path / "learning.md").read_text()
    assert "| coarse (seed 0) |" in table and "| adaptive (seed 0) |" in table
    final = json.loads(second.stdout.strip().splitlines()[-1])
    assert set(final["arms"]) == {"coarse/seed0", "adaptive/seed0"}


def test_unknown_arm_is_refused(tmp_path):
    done = _learning(tmp_path, "--arms", "coarse,dpo")
    assert done.returncode == 2 and "unknown arm(s) ['dpo']" in done.stderr
    assert not (tmp_path / "results.jsonl").exists()


def test_an_interrupted_arm_resumes_and_fresh_starts_over(tmp_path):
    # An arm whose run stopped before its result was written: a checkpoint at step 1, no results row.
    arm_dir = tmp_path / "coarse_seed0"
    command = [sys.executable, "-m", "rltf_jax.cli.train", "--config", os.path.join(ROOT, "configs", "tiny.py"),
               "--config.total_steps=1", "--config.rewards.fine_grained=False",
               "--config.rewards.adaptive=False", "--workdir", str(arm_dir)]
    trained = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert trained.returncode == 0, trained.stderr[-4000:]

    resumed = _learning(tmp_path, "--arms", "coarse", "--set", "total_steps=2")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    (row,) = _rows(tmp_path)
    assert row["resumed_from_step"] == 1 and row["steps"] == 2

    (tmp_path / "results.jsonl").unlink()  # as if that run had been interrupted too
    (arm_dir / "left_over").write_text("from the old run")
    fresh = _learning(tmp_path, "--arms", "coarse", "--fresh", "--set", "total_steps=1")
    assert fresh.returncode == 0, fresh.stderr[-4000:]
    (row,) = _rows(tmp_path)
    assert row["resumed_from_step"] == 0 and row["steps"] == 1
    assert not (arm_dir / "left_over").exists()
