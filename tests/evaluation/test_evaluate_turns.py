"""n@k over turns, single- vs multi-turn at equal budget and the random-feedback ablation, on
scripted replies judged by the real sandbox."""

import itertools

import jax
import pytest

from rltf_jax.data import load_problems
from rltf_jax.rollout.episodes import EpisodeConfig, TextReplies, run_episodes
from rltf_jax.evaluation.multi_turn import (compare_turns, multi_turn_scores, n_at_k_over_turns,
                                     single_turn_scores, turn_samples)
from rltf_jax.sampling import SamplingParams


WRONG = "```python\ndef add(a, b):\n    return a - b\n```"
RIGHT = "```python\ndef add(a, b):\n    return a + b\n```"
HARDCODED = "```python\ndef add(a, b):\n    return 30 if a < 0 else 4\n```"   # passes the public tests only
PARAMS = SamplingParams(max_new_tokens=64)


@pytest.fixture(scope="module")
def problems():
    train = load_problems("starter:train")
    return [next(p for p in train if p.id == "starter/add/0"), next(p for p in train if p.fn_name != "add")]


def replay(tokenizer, texts):
    """Replies taken in order from `texts`, one per generated reply."""
    order = iter(texts)
    return TextReplies(tokenizer, lambda prompt: next(order))


def episodes_of(tokenizer, client, problem, texts, count, max_turns):
    return run_episodes(replay(tokenizer, texts), tokenizer, client, [problem], samples_per_problem=count,
                        params=PARAMS, rng=jax.random.key(0), config=EpisodeConfig(max_turns=max_turns))


def test_every_turn_is_a_sample_and_only_candidates_are_submitted(tokenizer, client, problems):
    add = problems[0]
    [fixed] = episodes_of(tokenizer, client, add, [WRONG, RIGHT], 1, 3)
    assert turn_samples([fixed]) == ([False, True], [False, True], [False, True])
    assert n_at_k_over_turns([fixed], 1, 2) == 1.0
    assert n_at_k_over_turns([fixed], 1, 1) == 0.0        # turn 1 failed public tests: not submitted
    with pytest.raises(ValueError, match="k=3 turns"):
        n_at_k_over_turns([fixed], 1, 3)
    # episode 1 gives up after 2 wrong turns (its final answer is a wrong candidate); episode 2 solves it
    two = episodes_of(tokenizer, client, add, [WRONG, RIGHT, WRONG], 2, 2)  # turn-batched order
    assert [len(e.turns) for e in two] == [2, 1]
    assert n_at_k_over_turns(two, 1, 3) == 0.0 and n_at_k_over_turns(two, 2, 3) == 1.0


def test_single_turn_pass_at_k_and_one_at_k(tokenizer, client, problems):
    samples = episodes_of(tokenizer, client, problems[0],
                          [WRONG, HARDCODED, RIGHT, WRONG, WRONG, WRONG], 6, 1)
    scores = single_turn_scores(samples, 3)
    assert scores["pass_at_k"] == [pytest.approx(0.5)]     # 1 - C(5,3)/C(6,3)
    assert scores["one_at_k"] == [0.0]                      # the hard-coded reply passes public first
    assert scores["pass_at_1"] == [pytest.approx(1 / 6)]
    with pytest.raises(ValueError, match="one-turn episodes"):
        single_turn_scores(episodes_of(tokenizer, client, problems[0], [WRONG, RIGHT], 1, 2), 1)
    with pytest.raises(ValueError, match="samples per problem"):
        single_turn_scores(samples, 7)


def test_multi_turn_beats_single_turn_only_when_the_feedback_is_read(tokenizer, client, problems):
    # A "policy" that fixes add() exactly when it reads add's real feedback, and is wrong otherwise.
    def reads_feedback(prompt):
        return RIGHT if "Your output: -56" in prompt else WRONG

    comparison = compare_turns(TextReplies(tokenizer, reads_feedback), tokenizer, client, problems,
                               budget=3, attempts=2, params=PARAMS, rng=jax.random.key(0))
    flat = comparison.flat()
    assert flat["single_turn_pass@3"] == 0.0 and flat["single_turn_1@3"] == 0.0
    assert flat["multi_turn_1@3"] == pytest.approx(0.5)    # add solved at turn 2, the other never
    assert flat["random_feedback_1@3"] == 0.0              # another problem's feedback: no fix
    assert flat["multi_turn_mean_turns"] == pytest.approx((2 + 3) / 2)
    assert flat["random_feedback_mean_turns"] == pytest.approx(3.0)
    assert len(flat["multi_turn_1@3_ci"]) == 2
    # Paired, problem by problem: add gains 1 over both other arms, the other problem 0.
    assert comparison.per_problem["multi_turn_1@3"] == {problems[0].id: 1.0, problems[1].id: 0.0}
    assert flat["multi_turn_1@3_minus_single_turn_pass@3"] == pytest.approx(0.5)
    assert flat["multi_turn_1@3_minus_random_feedback_1@3"] == pytest.approx(0.5)


def test_multi_turn_scores_average_episodes_per_problem(tokenizer, client, problems):
    counter = itertools.count()
    source = TextReplies(tokenizer, lambda prompt: RIGHT if next(counter) == 0 else WRONG)
    episodes = run_episodes(source, tokenizer, client, [problems[0]], samples_per_problem=2,
                            params=PARAMS, rng=jax.random.key(0), config=EpisodeConfig(max_turns=2))
    scores = multi_turn_scores(episodes)
    assert scores["per_problem"] == [0.5] and scores["mean_turns"] == pytest.approx(1.5)


def test_evaluate_episodes_reports_one_at_k_over_turns(tokenizer, client, problems):
    """`evaluate --turns`: the add problem is fixed at turn 2 after feedback -> 1@1 = 0, 1@2 = 1."""
    from rltf_jax.evaluation.single_turn import markdown_table
    from rltf_jax.evaluation.multi_turn import evaluate_episodes

    result = evaluate_episodes(replay(tokenizer, [WRONG, RIGHT]), tokenizer, client, [problems[0]], turns=3,
                               num_samples=1, ks=(1, 2, 3), params=PARAMS, rng=jax.random.key(0))
    assert result["1@1"] == 0.0 and result["1@2"] == 1.0 and result["1@3"] == 1.0
    assert result["mean_turns"] == 2.0 and result["turns"] == 3
    assert result["problems"] == [{"id": "starter/add/0", "difficulty": "easy", "episodes": 1,
                                   "turns": [2], "final_passed": [True]}]
    assert result["by_difficulty"]["easy"]["1@2"]["mean"] == 1.0
    assert "1@2 (95% CI)" in markdown_table(result)


def test_pooling_runs_weights_each_problem_by_attempts():
    from rltf_jax.evaluation.multi_turn import pool_comparisons

    run = {"budget": 3, "dataset": "d", "model": "m", "temperature": 0.2, "top_p": 0.95,
           "max_new_tokens": 64, "multi_turn_mean_turns": 2.0, "random_feedback_mean_turns": 3.0}
    first = {**run, "attempts": 1, "per_problem": {"multi_turn_1@3": {"a": 1.0, "b": 0.0},
                                                    "single_turn_pass@3": {"a": 0.0, "b": 0.0}}}
    second = {**run, "attempts": 3, "per_problem": {"multi_turn_1@3": {"a": 0.0, "b": 1.0},
                                                     "single_turn_pass@3": {"a": 1.0, "b": 0.0}}}
    pooled = pool_comparisons([first, second]).flat()
    assert pooled["multi_turn_1@3"] == pytest.approx((0.25 + 0.75) / 2)
    assert pooled["single_turn_pass@3"] == pytest.approx(0.75 / 2)
    assert pooled["multi_turn_1@3_minus_single_turn_pass@3"] == pytest.approx((-0.5 + 0.75) / 2)
    assert pooled["multi_turn_mean_turns"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="differ in temperature"):
        pool_comparisons([first, {**second, "temperature": 1.0}])
    with pytest.raises(ValueError, match="share a seed"):
        pool_comparisons([{**first, "seed": 0}, {**second, "seed": 0}])
