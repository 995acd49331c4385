"""RLEF rewards: the per-turn table, and per-token placement on real replies judged by the sandbox."""

import numpy as np
import pytest

from rltf_jax.data import load_problems
from rltf_jax.env.prompts import extract_code
from rltf_jax.rewards.rlef import (RLEFRewardConfig, episode_token_rewards, repeated_programs,
                                  turn_rewards)
from rltf_jax.env.sandbox_client import ExecutionRequest


@pytest.mark.parametrize("has_code, passed, expected", [
    ([True], True, [1.0]),
    ([True], False, [-1.0]),
    ([False], False, [-1.2]),
    ([False, True, True], True, [-0.2, 0.0, 1.0]),
    ([True, False, False], False, [0.0, -0.2, -1.2]),
])
def test_turn_reward_table(has_code, passed, expected):
    np.testing.assert_allclose(turn_rewards(has_code, passed), expected, atol=1e-6)


def test_turn_rewards_take_config_values():
    config = RLEFRewardConfig(passed=2.0, failed=-3.0, no_code=-0.5)
    np.testing.assert_allclose(turn_rewards([False, True], True, config), [-0.5, 2.0])
    np.testing.assert_allclose(turn_rewards([True, False], False, config), [0.0, -3.5])


def test_repeated_programs_compare_syntax_trees():
    a = "def add(a, b):\n    return a - b\n"
    programs = [a, "# try again\ndef add(a,b):\n\n    return (a - b)  # fixed?\n", None,
                "def add(a, b):\n    return b - a\n", "def add(a, b):\n    return b - a",
                "def add(a, b:\n  oops  \n", "def add(a, b:\n  oops\n\n"]
    assert repeated_programs(programs).tolist() == [False, True, False, False, True, False, True]
    assert repeated_programs([a]).tolist() == [False]


def test_repeated_code_reward_is_off_by_default_and_added_per_repeating_reply():
    repeated = [False, True, True]
    np.testing.assert_allclose(turn_rewards([True] * 3, False, repeated=repeated), [0.0, 0.0, -1.0])
    config = RLEFRewardConfig(repeated_code=-0.5)
    np.testing.assert_allclose(turn_rewards([True] * 3, False, config, repeated), [0.0, -0.5, -1.5])
    np.testing.assert_allclose(turn_rewards([True, True], True, config, [False, True]), [0.0, 0.5])
    with pytest.raises(ValueError, match="repeated flags"):
        turn_rewards([True, True], True, config, [False])


def _reply_ids(tokenizer, text):
    return np.asarray(tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id], np.int32)


@pytest.fixture(scope="module")
def three_turn_episode(client, tokenizer):
    """Reply 1: no code; reply 2: crashes at line 3 (public tests); reply 3: correct (private)."""
    problem = next(p for p in load_problems("starter:train") if p.id == "starter/add/0")
    texts = ["I think you should add the numbers.",
             "```python\ndef add(a, b):\n    zero = 0\n    return (a + b) / zero\n```",
             "```python\ndef add(a, b):\n    return a + b\n```"]
    extracted = [extract_code(problem, t) for t in texts]
    assert extracted[0] is None and None not in extracted[1:]
    public = client.execute(ExecutionRequest(code=extracted[1].program, mode="call", fn_name="add",
                                             tests=list(problem.public_tests)))
    private = client.execute(ExecutionRequest(code=extracted[2].program, mode="call", fn_name="add",
                                              tests=list(problem.private_tests)))
    assert public.verdict == "runtime_error" and public.tests[0].exception.line == 3
    assert private.verdict == "pass"
    ids = [_reply_ids(tokenizer, t) for t in texts]
    return ids, extracted, [None, public, private], texts


def test_rewards_sit_on_the_last_token_of_their_reply(three_turn_episode, tokenizer):
    ids, extracted, results, texts = three_turn_episode
    rewards = episode_token_rewards(ids, extracted, results, texts, [False] * 3, True, tokenizer)
    assert [r.shape for r in rewards] == [(len(i),) for i in ids]
    for r, expected in zip(rewards, [-0.2, 0.0, 1.0]):
        assert r[-1] == pytest.approx(expected)
        assert not r[:-1].any()
    failed = episode_token_rewards(ids, extracted, results, texts, [False] * 3, False, tokenizer)
    assert failed[-1][-1] == pytest.approx(-1.0)


def test_resubmitted_program_is_penalised_on_its_reply(three_turn_episode, tokenizer):
    ids, extracted, results, texts = three_turn_episode
    # reply 3 resubmits reply 2's crashing program, re-indented with trailing spaces only
    again = texts[1].replace("zero\n", "zero   \n")
    ids3 = ids[:2] + [_reply_ids(tokenizer, again)]
    problem = next(p for p in load_problems("starter:train") if p.id == "starter/add/0")
    ext3 = extracted[:2] + [extract_code(problem, again)]
    config = RLEFRewardConfig(repeated_code=-0.5)
    rewards = episode_token_rewards(ids3, ext3, results, texts[:2] + [again], [False] * 3, False,
                                    tokenizer, config)
    assert [r[-1] for r in rewards] == pytest.approx([-0.2, 0.0, -1.5])
    assert episode_token_rewards(ids3, ext3, results, texts[:2] + [again], [False] * 3, False,
                                 tokenizer)[-1][-1] == pytest.approx(-1.0)  # off by default


def test_fine_grained_penalty_lands_on_the_error_line_of_its_turn(three_turn_episode, tokenizer):
    ids, extracted, results, texts = three_turn_episode
    config = RLEFRewardConfig(fine_grained=True)
    rewards = episode_token_rewards(ids, extracted, results, texts, [False] * 3, True, tokenizer, config)
    blamed = np.flatnonzero(rewards[1][:-1])
    assert rewards[1][blamed].sum() == pytest.approx(-0.3)
    assert tokenizer.decode(ids[1][blamed]).strip() == "return (a + b) / zero"
    # the passing final turn and the no-code (not truncated) turn get no fine-grained term
    assert not rewards[2][:-1].any() and rewards[2][-1] == pytest.approx(1.0)
    assert not rewards[0][:-1].any() and rewards[0][-1] == pytest.approx(-0.2)
    per_token = episode_token_rewards(ids, extracted, results, texts, [False] * 3, True, tokenizer,
                                      RLEFRewardConfig(fine_grained=True, fine_grained_scaling="per_token"))
    np.testing.assert_allclose(per_token[1][blamed], -0.3)


def test_bad_inputs_raise(three_turn_episode, tokenizer):
    ids, extracted, results, texts = three_turn_episode
    with pytest.raises(ValueError, match="2 texts for 3 replies"):
        episode_token_rewards(ids, extracted, results, texts[:2], [False] * 3, True, tokenizer)
    with pytest.raises(ValueError, match="need the tokenizer"):
        episode_token_rewards(ids, extracted, results, texts, [False] * 3, True, None,
                              RLEFRewardConfig(fine_grained=True))
    with pytest.raises(ValueError, match="no tokens"):
        episode_token_rewards([ids[0][:0]], [None], [None], [""], [False], True)
    with pytest.raises(ValueError, match="one flag per reply"):
        turn_rewards([], True)
    with pytest.raises(ValueError, match="fine_grained_scaling"):
        RLEFRewardConfig(fine_grained_scaling="mean")
