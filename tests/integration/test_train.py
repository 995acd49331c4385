"""End to end: `python -m rltf_jax.train` on the tiny config, with the real local sandbox service.

A run of 2N steps interrupted after N and resumed must log exactly what an uninterrupted 2N run
logs for steps N+1..2N (same problems, same samples, same updates).
"""

import json
import os
import subprocess
import sys

import pytest

from rltf_jax.run.checkpoint import Checkpointer
from rltf_jax.run.metrics import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.slow

# Metrics that depend on the sampled programs and on the parameters: equal only if the resumed
# run drew the same problems, sampled the same tokens and restored the same state.
COMPARED = ("reward/outcome", "samples/pass_rate", "samples/response_tokens", "policy/logprob",
            "kl/k3", "loss/policy", "optim/grad_norm")


def _train(workdir, steps, *extra):
    command = [sys.executable, "-m", "rltf_jax.cli.train", "--config", os.path.join(ROOT, "configs/tiny.py"),
               f"--config.total_steps={steps}", "--workdir", str(workdir), *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_smoke_run_then_resume_matches_uninterrupted(tmp_path):
    resumed_dir, straight_dir = tmp_path / "resumed", tmp_path / "straight"
    first = _train(resumed_dir, 2)
    assert first["step"] == 2 and first["heldout_pass@1_before"] is not None
    assert os.path.isdir(resumed_dir / "tensorboard")
    second = _train(resumed_dir, 4)
    assert second["step"] == 4
    _train(straight_dir, 4)

    resumed = {r["step"]: r for r in read_metrics(str(resumed_dir / "metrics.jsonl"))}
    straight = {r["step"]: r for r in read_metrics(str(straight_dir / "metrics.jsonl"))}
    assert sorted(resumed) == sorted(straight) == [1, 2, 3, 4]
    # the training-time budget carries over the resume: the clock continues, it does not restart
    assert resumed[3]["time/train_minutes"] > resumed[2]["time/train_minutes"] > 0
    for step in (3, 4):
        for key in COMPARED:
            assert resumed[step][key] == pytest.approx(straight[step][key], rel=1e-5, abs=1e-6), (step, key)

    checkpoints = Checkpointer(str(resumed_dir / "checkpoints"))
    assert checkpoints.latest_step() == 4
    assert checkpoints.read_meta()["data_position"] == 4 * 2
    checkpoints.close()


def test_checkpoint_of_another_model_is_refused(tmp_path):
    _train(tmp_path, 1)
    command = [sys.executable, "-m", "rltf_jax.cli.train", "--config", os.path.join(ROOT, "configs/tiny.py"),
               "--config.total_steps=2", "--config.model.name=tiny-qwen2", "--workdir", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "was written for another model" in done.stderr
    assert "name: checkpoint has 'tiny-llama', this run has 'tiny-qwen2'" in done.stderr


def test_rlef_mode_runs_multi_turn_episodes(tmp_path):
    summary = _train(tmp_path, 1, "--config.method=rlef", "--config.ppo.share_prompts=False",
                     "--config.eval.before_and_after=False")
    assert summary["step"] == 1
    (record,) = read_metrics(str(tmp_path / "metrics.jsonl"))
    # The tiny random model never writes code, so every episode uses all its turns and fails.
    assert record["episodes/turns"] == 3.0 and record["episodes/total"] == 4.0
    assert record["episodes/final_pass_rate"] == 0.0
    # -1 final, plus -0.2 for each of the three replies without code.
    assert record["reward/env_per_seq"] == pytest.approx(-1.6)


def test_rlef_mode_with_turn_level_values(tmp_path):
    # over two length groups (length_groups.py): the trainer splits the batch, the update takes both;
    # compiled programs are released after every step (run_setup.release_compiled_code) and the
    # second step compiles what it needs again
    summary = _train(tmp_path, 2, "--config.method=rlef", "--config.ppo.advantage=turn",
                     "--config.ppo.share_prompts=False", "--config.ppo.length_groups=2",
                     "--config.eval.before_and_after=False",
                     "--config.release_compiled_code_at=0.0")
    assert summary["step"] == 2
    first, record = read_metrics(str(tmp_path / "metrics.jsonl"))
    if "process/memory_maps" in record:  # Linux
        assert (first["compile/flushes"], record["compile/flushes"]) == (1.0, 2.0)
        assert record["compile/count"] > first["compile/count"]
    # one value per reply: 4 episodes x 3 replies are the value positions the critic is fit on
    assert "value/explained_variance" in record and record["loss/value"] > 0
    assert record["reward/env_per_seq"] == pytest.approx(-1.6)


def test_time_budget_ends_the_run_evaluated_and_checkpointed(tmp_path):
    summary = _train(tmp_path, 500, "--config.max_train_minutes=0.01")
    assert 1 <= summary["step"] < 500 and not summary["interrupted"]
    assert summary["heldout_pass@1_after"] is not None
    steps = [m for m in read_metrics(str(tmp_path / "metrics.jsonl")) if "step" in m]
    assert steps[-1]["step"] == summary["step"] and steps[-1]["time/train_minutes"] > 0
    checkpoints = Checkpointer(str(tmp_path / "checkpoints"))
    assert checkpoints.latest_step() == summary["step"]
    checkpoints.close()


def test_unknown_method_is_refused(tmp_path):
    command = [sys.executable, "-m", "rltf_jax.cli.train", "--config", os.path.join(ROOT, "configs/tiny.py"),
               "--config.method=dpo", "--workdir", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "config.method='dpo'" in done.stderr
