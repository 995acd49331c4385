"""benchmarks/learning.py end to end on the tiny config: the base model is evaluated once, each arm
trains with its own config and is evaluated on the unseen and held-out starter problems, results
accumulate in <workdir>/results.jsonl, an arm already there is not re-run, the two-phase arm
fine-tunes first and starts RLTF from the fine-tuned policy, and the report covers every arm."""

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


def _config(run_dir):
    with open(run_dir / "config.json", encoding="utf-8") as handle:
        return json.load(handle)


def test_arms_accumulate_and_are_not_rerun(tmp_path):
    first = _learning(tmp_path, "--arms", "coarse")
    assert first.returncode == 0, first.stderr[-4000:]
    base = json.loads((tmp_path / "base.json").read_text())
    assert set(base) == {"model", "unseen", "heldout"} and base["model"] == "tiny-llama"
    (coarse,) = _rows(tmp_path)
    assert coarse["arm"] == "coarse" and coarse["seed"] == 0 and coarse["steps"] >= 1
    for name in ("unseen", "heldout"):  # eval.max_problems = 4 in the tiny config
        scores = coarse["evals"][name]
        assert len(scores["per_problem"]) == 4 and set(scores["per_problem"]) == set(base[name]["per_problem"])
        assert scores["pass@1"] == pytest.approx(sum(scores["per_problem"].values()) / 4)
        assert {pid: v == "pass" for pid, v in scores["verdict_per_problem"].items()} == {
            pid: s == 1.0 for pid, s in scores["per_problem"].items()}
        programs = scores["program_per_problem"]  # what the policy wrote, None where no code
        assert set(programs) == set(scores["per_problem"])
        assert all(programs[pid] for pid, v in scores["verdict_per_problem"].items() if v == "pass")
        assert sum(scores["verdicts"].values()) == 4
    unseen_ids = set(coarse["evals"]["unseen"]["per_problem"])
    assert unseen_ids.isdisjoint(coarse["evals"]["heldout"]["per_problem"])
    rewards = _config(tmp_path / "coarse_seed0")["rewards"]
    assert rewards["fine_grained"] is False and rewards["adaptive"] is False
    coarse_metrics = (tmp_path / "coarse_seed0" / "metrics.jsonl").read_text()

    second = _learning(tmp_path, "--arms", "coarse,fine")
    assert second.returncode == 0, second.stderr[-4000:]
    assert [r["arm"] for r in _rows(tmp_path)] == ["coarse", "fine"]
    assert (tmp_path / "coarse_seed0" / "metrics.jsonl").read_text() == coarse_metrics  # not re-run
    rewards = _config(tmp_path / "fine_seed0")["rewards"]
    assert rewards["fine_grained"] is True and rewards["adaptive"] is False

    table = (tmp_path / "learning.md").read_text()
    assert "| coarse | 0 |" in table and "| fine | 0 |" in table and "| fine - coarse |" in table
    final = json.loads(second.stdout.strip().splitlines()[-1])
    assert set(final["arms"]) == {"coarse", "fine"}
    assert final["arms"]["fine"]["unseen"]["gain"]["problems"] == 4


def test_two_phase_arm_and_the_papers_objective(tmp_path):
    done = _learning(tmp_path, "--arms", "sft_rltf,greedy", "--set", "total_steps=1")
    assert done.returncode == 0, done.stderr[-4000:]
    sft_rltf, greedy = _rows(tmp_path)
    arm_dir = tmp_path / "sft_rltf_seed0"
    assert _config(arm_dir / "supervised")["method"] == "supervised"
    second = _config(arm_dir / "rltf")
    assert second["method"] == "rltf" and second["model"]["name"] == str(arm_dir / "supervised_export")
    assert (arm_dir / "supervised_export" / "model.safetensors").exists()
    assert sft_rltf["phase_steps"] == [1, 1] and sft_rltf["steps"] == 2
    assert set(sft_rltf["evals"]) == {"unseen", "heldout"}
    ppo = _config(tmp_path / "greedy_seed0")["ppo"]
    assert ppo["advantage"] == "greedy" and ppo["policy_loss"] == "pg" and greedy["steps"] == 1


def test_bad_arguments_are_refused(tmp_path):
    done = _learning(tmp_path, "--arms", "coarse,dpo")
    assert done.returncode == 2 and "unknown arm(s) ['dpo']" in done.stderr
    done = _learning(tmp_path, "--sft-share", "1.5")
    assert done.returncode == 2 and "--sft-share must be between 0 and 1" in done.stderr
    assert not (tmp_path / "results.jsonl").exists()


def test_an_interrupted_arm_resumes_and_fresh_starts_over(tmp_path):
    # An arm whose run stopped before its result was written: a checkpoint at step 1, no results row.
    arm_dir = tmp_path / "coarse_seed0"
    command = [sys.executable, "-m", "rltf_jax.cli.train", "--config", os.path.join(ROOT, "configs", "tiny.py"),
               "--config.total_steps=1", "--config.rewards.fine_grained=False",
               "--config.rewards.adaptive=False", "--config.eval.before_and_after=False",
               "--workdir", str(arm_dir)]
    trained = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert trained.returncode == 0, trained.stderr[-4000:]
    (arm_dir / "summary.json").unlink()  # as if it had been stopped after its checkpoint

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
