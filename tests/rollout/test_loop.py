"""Host-side loop pieces: the problem stream, the replay buffer, PPO batch building, scoring."""

import numpy as np
import pytest

from rltf_jax.rollout import single_turn as loop
from rltf_jax.data import load_problems
from rltf_jax.ppo.length_groups import bucket_lengths


@pytest.fixture(scope="module")
def starter_train():
    return load_problems("starter:train")


def test_problem_stream_is_a_pure_function_of_the_step(starter_train):
    stream = loop.ProblemStream(starter_train, problems_per_step=7, seed=3)
    again = loop.ProblemStream(starter_train, problems_per_step=7, seed=3)
    assert [p.id for p in stream.for_step(5)] == [p.id for p in again.for_step(5)]
    other_seed = loop.ProblemStream(starter_train, problems_per_step=7, seed=4)
    assert [p.id for p in stream.for_step(0)] != [p.id for p in other_seed.for_step(0)]


def test_problem_stream_covers_each_problem_once_per_epoch(starter_train):
    size = len(starter_train)
    stream = loop.ProblemStream(starter_train, problems_per_step=1, seed=0)
    first_epoch = [stream.for_step(s)[0].id for s in range(size)]
    assert sorted(first_epoch) == sorted(p.id for p in starter_train)
    second_epoch = [stream.for_step(s)[0].id for s in range(size, 2 * size)]
    assert sorted(second_epoch) == sorted(first_epoch) and second_epoch != first_epoch
    assert stream.position(3) == 3


def test_problem_stream_rejects_empty_sets():
    with pytest.raises(ValueError, match="empty"):
        loop.ProblemStream([], problems_per_step=1, seed=0)


def _sample(group, prompt_len=3, response_len=2, passed=False):
    return loop.ScoredSample(prompt_tokens=np.arange(1, prompt_len + 1, dtype=np.int32),
                             response_tokens=np.arange(10, 10 + response_len, dtype=np.int32),
                             token_rewards=np.linspace(-1, 1, response_len).astype(np.float32),
                             token_penalties=np.full(response_len, -0.1, np.float32),
                             group_id=group, passed=passed)


def test_ppo_batch_layout_and_padding_rows():
    samples = [_sample(0, 3, 2), _sample(0, 2, 4), _sample(1, 5, 1)]
    batch = loop.ppo_batch(samples, batch_size=4, pad_id=0, length_multiple=8)
    assert batch["tokens"].shape == (4, 8)
    np.testing.assert_array_equal(batch["tokens"][0], [1, 2, 3, 10, 11, 0, 0, 0])
    np.testing.assert_array_equal(batch["response_mask"][1], [0, 0, 1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(batch["attention_mask"][2], [1] * 6 + [0, 0])
    np.testing.assert_allclose(batch["token_rewards"][0, 3:5], [-1, 1])
    np.testing.assert_allclose(batch["token_penalties"][0], [0, 0, 0, -0.1, -0.1, 0, 0, 0])
    assert not batch["response_mask"][3].any() and not batch["attention_mask"][3].any()
    np.testing.assert_array_equal(batch["group_ids"], [0, 0, 1, -1])
    with pytest.raises(ValueError, match="do not fit"):
        loop.ppo_batch(samples, batch_size=2, pad_id=0)


def test_bucket_length_rounds_up():
    assert bucket_lengths(1) == 64 and bucket_lengths(64) == 64 and bucket_lengths(65) == 128


def test_replay_buffer_keeps_whole_recent_groups():
    buffer = loop.ReplayBuffer(max_samples=6)
    buffer.add([_sample(0), _sample(0), _sample(1), _sample(1)])
    buffer.add([_sample(0), _sample(0), _sample(1), _sample(1)])
    assert len(buffer) == 6  # the oldest group of two was dropped
    drawn = buffer.draw(4, np.random.default_rng(0), first_group_id=10)
    assert len(drawn) == 4
    groups = [s.group_id for s in drawn]
    assert all(g >= 10 for g in groups) and all(groups.count(g) == 2 for g in set(groups))


def _program_rollout(problem, replies, tokenizer):
    """A ProgramRollout of given reply texts, tokenized as the sampler would return them."""
    from rltf_jax.env.prompts import extract_code
    from rltf_jax.sampling import Rollout

    ids = [tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for r in replies]
    width = max(map(len, ids))
    tokens = np.zeros((len(ids), width), np.int32)
    mask = np.zeros((len(ids), width), bool)
    for row, seq in enumerate(ids):
        tokens[row, :len(seq)], mask[row, :len(seq)] = seq, True
    prompt = np.array([[1, 2, 3]] * len(ids), np.int32)
    rollout = Rollout(prompt, np.ones_like(prompt, bool), tokens, np.zeros(tokens.shape, np.float32), mask,
                      list(replies))
    return loop.ProgramRollout([problem] * len(ids), np.zeros(len(ids), np.int32), rollout,
                               [extract_code(problem, r) for r in replies], np.zeros(len(ids), bool))


@pytest.mark.slow
def test_execution_through_the_sandbox_and_infrastructure_failures_are_dropped(starter_train):
    from rltf_jax.models import load_model
    from rltf_jax.rewards import RewardConfig
    from rltf_jax.env.sandbox_client import SandboxClient, local_sandbox

    problem = starter_train[0]
    good = f"```python\n{problem.solutions[0]}\n```"
    broken = f"```python\ndef {problem.fn_name}(*args):\n    return undefined_name\n```"
    tokenizer = load_model("tiny-llama").tokenizer
    programs = _program_rollout(problem, [good, broken, "no code here"], tokenizer)
    limits = {"timeout_s": 4.0, "memory_mb": 512}

    with local_sandbox(workers=1) as url, SandboxClient(url) as client:
        results = loop.execute_programs(client, programs, tests="all", limits=limits)
    assert [r.verdict if r else None for r in results] == ["pass", "runtime_error", None]
    samples, metrics = loop.score_rollout(programs, results, tokenizer, RewardConfig())
    assert [s.passed for s in samples] == [True, False, False]
    assert [float(s.token_rewards.sum()) for s in samples] == pytest.approx([1.0, -0.6, -1.0])
    assert samples[1].token_penalties.sum() < 0 and samples[0].token_penalties.sum() == 0
    assert metrics["samples/dropped_sandbox_error"] == 0

    # A service that is down: after the client's retries every program is a sandbox_error,
    # dropped and counted, never scored as a program failure.
    with SandboxClient("http://127.0.0.1:9", max_retries=1, backoff_s=0.01, timeout_s=5) as down:
        results = loop.execute_programs(down, programs, tests="all", limits=limits)
    assert [r.verdict if r else None for r in results] == ["sandbox_error", "sandbox_error", None]
    samples, metrics = loop.score_rollout(programs, results, tokenizer, RewardConfig())
    assert metrics["samples/dropped_sandbox_error"] == 2 and len(samples) == 1
