"""The "greedy" advantage and the plain policy-gradient loss (CodeRL / RLTF's objective,
configs/rltf_paper.py): the greedy row is a temperature-0 decode of the tiny model, its reward from
the real sandbox is what each sample of its problem has subtracted, it is never a training row,
the loss is -Σ A log π / n by a float64 hand computation, and the trainer runs the config."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rltf_jax.rollout import single_turn as loop
from rltf_jax import ppo
from rltf_jax.ppo import update as ppo_update_step
from rltf_jax.data import load_problems
from rltf_jax.models import load_model
from rltf_jax.run.metrics import read_metrics
from rltf_jax.env.prompts import build_prompt, extract_code
from rltf_jax.rewards import RewardConfig
from rltf_jax.sampling import Rollout, Sampler, SamplingParams

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = ppo.PPOConfig(advantage="greedy", policy_loss="pg", kl_coef=0.0, normalize_advantages=False)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")


@pytest.fixture(scope="module")
def problems():
    return load_problems("starter:train")[:2]


def test_the_greedy_row_is_a_temperature_zero_decode_of_each_problem(tiny, problems):
    sampler = Sampler(tiny)
    params = SamplingParams(max_new_tokens=8, temperature=1.0, top_p=0.95)
    programs = loop.sample_programs(sampler, tiny.tokenizer, problems, samples_per_problem=3, params=params,
                                    rng=jax.random.key(0), prompt_style="chat",
                                    stop_ids=tiny.config.eos_token_ids, greedy_baseline=True)
    greedy = programs.greedy
    assert len(programs.problems) == 6 and [p.id for p in greedy.problems] == [p.id for p in problems]
    np.testing.assert_array_equal(greedy.group_ids, [0, 1])
    # independent of the key: the same rows under another key
    again = sampler.generate([build_prompt(p, tiny.tokenizer) for p in problems],
                             dataclasses.replace(params, greedy=True), jax.random.key(7))
    np.testing.assert_array_equal(greedy.rollout.response_tokens, again.response_tokens)
    # and each token is the argmax of the model's logits given the prompt and the tokens before it
    rollout = greedy.rollout
    tokens = np.concatenate([rollout.prompt_tokens, rollout.response_tokens], axis=1)
    mask = np.concatenate([rollout.prompt_mask, rollout.response_mask], axis=1)
    logits, _, _ = tiny.model(jnp.asarray(tokens), ppo.positions_from_mask(jnp.asarray(mask)), jnp.asarray(mask))
    logits = np.asarray(logits)
    prompt_len = rollout.prompt_tokens.shape[1]
    for row in range(len(problems)):
        for k in np.flatnonzero(rollout.response_mask[row]):
            step = logits[row, prompt_len + k - 1]
            assert step[rollout.response_tokens[row, k]] >= step.max() - 1e-4, (row, k)
    # the sampled rows are not all greedy (temperature 1): the baseline is a different decode
    assert not all((programs.rollout.response_tokens[3 * g:3 * g + 3] == rollout.response_tokens[g]).all()
                   for g in range(2))


def _replayed(problems, replies, tokenizer, group_ids) -> loop.ProgramRollout:
    """A ProgramRollout of given reply texts (tokenized as the sampler returns them, with a stop)."""
    ids = [tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for r in replies]
    tokens = np.zeros((len(ids), max(map(len, ids))), np.int32)
    mask = np.zeros(tokens.shape, bool)
    for row, seq in enumerate(ids):
        tokens[row, :len(seq)], mask[row, :len(seq)] = seq, True
    prompts = np.array([[1, 2, 3]] * len(ids), np.int32)
    rollout = Rollout(prompts, np.ones_like(prompts, bool), tokens, np.zeros(tokens.shape, np.float32), mask,
                      list(replies))
    return loop.ProgramRollout(list(problems), np.asarray(group_ids, np.int32), rollout,
                               [extract_code(p, r) for p, r in zip(problems, replies)], np.zeros(len(ids), bool))


@pytest.mark.slow
def test_the_greedy_reward_from_the_sandbox_is_the_baseline_and_the_loss_is_by_hand(tiny, problems):
    from rltf_jax.env.sandbox_client import ExecutionResult, SandboxClient, local_sandbox

    first, second = problems
    good = [f"```python\n{p.solutions[0]}\n```" for p in problems]
    broken = [f"```python\ndef {p.fn_name}(*args):\n    return undefined_name\n```" for p in problems]
    # problem 0: samples pass / crash / no code, its greedy decode crashes (-0.6);
    # problem 1: samples crash / pass, its greedy decode passes (+1.0)
    programs = _replayed([first] * 3 + [second] * 2, [good[0], broken[0], "no code", broken[1], good[1]],
                         tiny.tokenizer, [0, 0, 0, 1, 1])
    programs.greedy = _replayed(problems, [broken[0], good[1]], tiny.tokenizer, [0, 1])
    with local_sandbox(workers=1) as url, SandboxClient(url) as client:
        results = loop.execute_programs(client, programs, tests="all", limits={"timeout_s": 4.0})
    assert [r.verdict if r else None for r in results] == ["pass", "runtime_error", None, "runtime_error", "pass",
                                                           "runtime_error", "pass"]
    samples, metrics = loop.score_rollout(programs, results, tiny.tokenizer, RewardConfig())
    assert len(samples) == 5  # the greedy rows are judged, never trained on
    assert [s.baseline for s in samples] == pytest.approx([-0.6] * 3 + [1.0] * 2)
    assert metrics["baseline/greedy_outcome"] == pytest.approx(0.2)
    assert metrics["baseline/greedy_pass_rate"] == 0.5
    # a greedy row lost to the service leaves its problem without a baseline: its samples are dropped
    lost = results[:5] + [ExecutionResult("sandbox_error", 0.0, ())] + results[6:]
    kept, lost_metrics = loop.score_rollout(programs, lost, tiny.tokenizer, RewardConfig())
    assert [s.group_id for s in kept] == [1, 1] and lost_metrics["samples/dropped_no_baseline"] == 3

    batch = ppo.complete_batch(ppo.PPOBatch(**loop.ppo_batch(samples, batch_size=6, pad_id=0)))
    np.testing.assert_allclose(batch.baselines, [-0.6, -0.6, -0.6, 1.0, 1.0, 0.0])
    state, defs = ppo.init_train_state(tiny, PAPER)
    stats = jax.jit(lambda s, b: ppo.rollout_statistics(defs, PAPER, s, b))(state, batch)
    action_mask = batch.response_mask[:, 1:]
    outcome = np.array([1.0, -0.6, -1.0, -0.6, 1.0, 0.0])
    baseline = np.array([-0.6, -0.6, -0.6, 1.0, 1.0, 0.0])
    want = np.where(action_mask, (outcome - baseline)[:, None] + batch.token_penalties[:, 1:], 0.0)
    np.testing.assert_allclose(np.asarray(stats["advantages"]), want, atol=1e-6)
    assert (batch.token_penalties[1] < 0).any() and (batch.token_penalties[3] < 0).any()  # the NameError lines

    mb = {k: stats[k] for k in ("old_logp", "ref_logp", "advantages", "action_mask")}
    mb.update(tokens=batch.tokens, attention_mask=batch.attention_mask)
    count = float(action_mask.sum())
    params = {"policy": state.policy, "value": state.value}
    _, sums = ppo_update_step.loss_fn(params, defs, PAPER, 0.0, mb, count)
    logp = np.asarray(stats["old_logp"], np.float64)  # the same parameters: log π == log π_old
    by_hand = -np.sum(np.where(action_mask, want * logp, 0.0)) / count
    np.testing.assert_allclose(float(sums["loss/policy"]), by_hand, rtol=1e-5)
    assert float(sums["ppo/clip_fraction"]) == 0.0


@pytest.mark.slow
def test_a_tiny_run_of_the_paper_config(tmp_path):
    overrides = ["--config.model.name=tiny-llama", "--config.total_steps=2", "--config.data.problems_per_step=2",
                 "--config.rollout.samples_per_problem=2", "--config.rollout.max_new_tokens=16",
                 "--config.ppo.lr=1e-3", "--config.ppo.warmup_steps=0", "--config.ppo.grad_accum=1",
                 "--config.sandbox.workers=1", "--config.checkpoint.async_save=False",
                 "--config.eval.before_and_after=False", "--config.log.progress=False",
                 "--config.supervised.batch_size=2"]
    command = [sys.executable, "-m", "rltf_jax.cli.train", "--config", os.path.join(ROOT, "configs/rltf_paper.py"),
               *overrides, "--workdir", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["step"] == 2
    records = [r for r in read_metrics(str(tmp_path / "metrics.jsonl")) if "step" in r]
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        # one greedy decode per problem judged; the tiny random model writes no code, so the
        # greedy decode and every sample get the syntax-error reward and the outcome term is 0
        assert record["baseline/greedy_outcome"] == -1.0 and record["samples/total"] == 4.0
        assert record["ppo/clip_fraction"] == 0.0 and np.isfinite(record["loss/policy"])
        assert record["supervised/tokens"] > 0 and np.isfinite(record["supervised/nll"])
