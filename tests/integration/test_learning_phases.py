"""benchmarks/learning_phases.py on the committed learning run: the numbers docs/benchmarks.md quotes."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(ROOT, "docs", "results", "learning", "adaptive_seed0")


def _phases(*args):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "learning_phases.py"), *args],
                          capture_output=True, text=True, timeout=120)
    return done


def test_thirds_of_the_committed_adaptive_run():
    done = _phases(RUN)
    assert done.returncode == 0, done.stderr
    (rows,) = json.loads(done.stdout.strip().splitlines()[-1]).values()
    assert [r["steps"] for r in rows] == ["1–15", "16–30", "31–45"]
    assert [round(100 * r["samples/pass_rate"], 1) for r in rows] == [32.9, 40.2, 51.0]
    assert [round(100 * r["reward/class_global"], 1) for r in rows] == [5.8, 2.7, 0.4]
    assert "| 31–45 | 51.0% | 0.4% | 8.3% |" in done.stdout


@pytest.mark.parametrize("parts", ["1", "4"])
def test_parts_cover_every_step_once(parts):
    done = _phases(RUN, "--parts", parts)
    (rows,) = json.loads(done.stdout.strip().splitlines()[-1]).values()
    bounds = [tuple(int(x) for x in r["steps"].split("–")) for r in rows]
    assert len(rows) == int(parts) and bounds[0][0] == 1 and bounds[-1][1] == 45
    assert all(b[0] == a[1] + 1 for a, b in zip(bounds, bounds[1:]))


def test_a_directory_without_metrics_is_named(tmp_path):
    done = _phases(str(tmp_path))
    assert done.returncode == 2 and f"{tmp_path}: no metrics.jsonl" in done.stderr
