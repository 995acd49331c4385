"""Supervised fine-tuning on reference solutions (RLTF's baseline and interleaved loss)."""

import dataclasses
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from rltf_jax.data import load_problems
from rltf_jax.run.metrics import read_metrics
from rltf_jax.models import load_model
from rltf_jax.ppo import PPOConfig, init_train_state
from rltf_jax.ppo.supervised_update import make_supervised_update
from rltf_jax.rollout.supervised import solution_reply, supervised_batch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def problems():
    return load_problems("starter:train")[:3]


def test_batch_holds_prompt_then_the_solution_reply_and_masks_only_the_reply(problems, tokenizer):
    batch = supervised_batch(problems, tokenizer, batch_size=4, pad_id=0)
    assert batch["tokens"].shape == batch["response_mask"].shape and batch["tokens"].shape[1] % 64 == 0
    for row in range(4):
        problem = problems[row % 3]  # rows cycle through the problems
        reply = tokenizer.decode(batch["tokens"][row][batch["response_mask"][row]])
        assert reply == solution_reply(problem.solutions[0]) and reply.startswith("```python\n")
        first_reply = int(np.argmax(batch["response_mask"][row]))
        prompt = tokenizer.decode(batch["tokens"][row][:first_reply])
        assert problem.prompt in prompt and prompt.endswith("<|im_start|>assistant\n")
        assert not batch["response_mask"][row][~batch["attention_mask"][row]].any()


def test_problems_without_solutions_are_refused_by_name(problems, tokenizer):
    bare = [dataclasses.replace(p, solutions=()) for p in problems]
    with pytest.raises(ValueError, match="reference solutions"):
        supervised_batch(bare, tokenizer, batch_size=2, pad_id=0)


def test_supervised_steps_lower_the_solution_nll():
    loaded = load_model("tiny-llama")
    config = PPOConfig(advantage="grpo", lr=3e-3, warmup_steps=0, kl_coef=0.0)
    state, defs = init_train_state(loaded, config)
    batch = supervised_batch(load_problems("starter:train")[:2], loaded.tokenizer, batch_size=2,
                             pad_id=0)
    update = make_supervised_update(defs, config)
    reference = jax.tree.map(np.asarray, state.reference)
    nlls = []
    for _ in range(6):
        state, metrics = update(state, batch)
        nlls.append(float(metrics["supervised/nll"]))
    assert all(b < a for a, b in zip(nlls, nlls[1:])) and nlls[-1] < nlls[0] - 1.0, nlls
    assert float(metrics["supervised/tokens"]) == batch["response_mask"][:, 1:].sum()
    # the reference policy (the KL anchor) is not trained
    for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(state.reference)):
        np.testing.assert_array_equal(a, np.asarray(b))


@pytest.mark.slow
def test_train_supervised_method_and_interleaved_steps(tmp_path):
    def train(workdir, *extra):
        command = [sys.executable, "-m", "rltf_jax.cli.train", "--config", os.path.join(ROOT, "configs/tiny.py"),
                   "--config.total_steps=2", "--config.eval.before_and_after=False", "--workdir",
                   str(workdir), *extra]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-4000:]
        return [m for m in read_metrics(str(workdir / "metrics.jsonl")) if "step" in m]

    baseline = train(tmp_path / "sft", "--config.method=supervised")
    assert [m["step"] for m in baseline] == [1, 2]
    assert all(m["supervised/nll"] > 0 and "samples/pass_rate" not in m for m in baseline)
    mixed = train(tmp_path / "mixed", "--config.supervised.every=2")
    assert "supervised/nll" not in mixed[0] and mixed[1]["supervised/nll"] > 0
    assert "samples/pass_rate" in mixed[1]
