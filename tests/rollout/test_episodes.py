"""Multi-turn RLEF episodes on the real sandbox: scripted replies (TextReplies) for exact control of
content, and the real tiny policy (Sampler) through the same code path, into a real PPO update."""

import itertools

import jax
import numpy as np
import pytest

from rltf_jax import ppo
from rltf_jax.data import load_problems
from rltf_jax.rollout.episode_batch import (episode_batch, episode_metric_sums, episode_metrics, episode_rewards,
                                   ratios_of)
from rltf_jax.rollout.episodes import EpisodeConfig, TextReplies, run_episodes
from rltf_jax.models import load_model
from rltf_jax.rewards.rlef import RLEFRewardConfig
from rltf_jax.sampling import Sampler, SamplingParams

WRONG = "Let me try.\n```python\ndef add(a, b):\n    return a - b\n```"
RIGHT = "Fixed it:\n```python\ndef add(a, b):\n    return a + b\n```"
HARDCODED = "```python\ndef add(a, b):\n    return 30 if a < 0 else 4\n```"   # passes the public tests only
NO_CODE = "I would add the two numbers."
PARAMS = SamplingParams(max_new_tokens=64)


@pytest.fixture(scope="module")
def loaded():
    return load_model("tiny-llama")


@pytest.fixture(scope="module")
def tokenizer(loaded):
    return loaded.tokenizer


@pytest.fixture(scope="module")
def problems():
    train = {p.id: p for p in load_problems("starter:train")}
    return {"add": train["starter/add/0"], "other": next(p for p in train.values() if p.fn_name != "add")}


def scripted(tokenizer, *replies_by_turn):
    """Reply k (0-based) of every episode is replies_by_turn[k] (the turn is read off the prompt)."""
    return TextReplies(tokenizer, lambda prompt: replies_by_turn[prompt.count("<|im_start|>assistant") - 1])


def run(tokenizer, client, problems, source, **config):
    return run_episodes(source, tokenizer, client, problems, samples_per_problem=1, params=PARAMS,
                        rng=jax.random.key(0), config=EpisodeConfig(**config))


def test_feedback_with_the_failing_case_is_shown_and_the_fix_stops_the_episode(tokenizer, client, problems):
    [episode] = run(tokenizer, client, [problems["add"]], scripted(tokenizer, WRONG, RIGHT, WRONG))
    assert len(episode.turns) == 2                       # stopped early: public tests passed at turn 2
    first, second = episode.turns
    assert first.public_result.verdict == "wrong_answer"
    assert "Input: add(-13, 43)" in first.feedback and "Expected output: 30" in first.feedback
    assert "Your output: -56" in first.feedback
    assert first.feedback in second.prompt               # the model saw it
    assert second.public_result.verdict == "pass" and second.feedback is None
    assert episode.final_passed and episode.private_result.pass_ratio == 1.0
    rewards = episode_rewards(episode)
    assert [float(r.sum()) for r in rewards] == [0.0, 1.0] and rewards[1][-1] == 1.0


def test_final_code_is_graded_on_private_tests(tokenizer, client, problems):
    [episode] = run(tokenizer, client, [problems["add"]], scripted(tokenizer, HARDCODED, RIGHT))
    assert len(episode.turns) == 1 and episode.turn_passed_public(0)
    assert not episode.final_passed and episode.private_result.verdict == "wrong_answer"
    assert float(episode_rewards(episode)[0][-1]) == -1.0


def test_per_turn_rewards_no_code_turns_and_max_turns(tokenizer, client, problems):
    [episode] = run(tokenizer, client, [problems["add"]], scripted(tokenizer, NO_CODE, WRONG, NO_CODE, RIGHT))
    assert len(episode.turns) == 3                       # max_turns=3: the fourth reply never happens
    assert episode.turns[0].extracted is None and "does not contain a Python code block" in episode.turns[0].feedback
    assert episode.private_result is None and not episode.final_passed
    rewards = episode_rewards(episode)
    assert [round(float(r[-1]), 6) for r in rewards] == [-0.2, 0.0, -1.2]
    assert all(not r[:-1].any() for r in rewards)
    [short] = run(tokenizer, client, [problems["add"]], scripted(tokenizer, WRONG, WRONG), max_turns=1)
    assert len(short.turns) == 1 and short.turns[0].feedback is None


def test_loss_mask_covers_exactly_the_replies(tokenizer, client, problems):
    episodes = run(tokenizer, client, [problems["add"], problems["other"]],
                   scripted(tokenizer, NO_CODE, WRONG, RIGHT))
    batch = episode_batch(episodes, batch_size=3, pad_id=0, max_turns=3, tokenizer=tokenizer)
    for row, episode in enumerate(episodes):
        tokens, mask = batch.ppo.tokens[row], batch.ppo.response_mask[row]
        replies = [t.text + tokenizer.eos_token for t in episode.turns]
        assert tokenizer.decode(tokens[mask]) == "".join(replies)
        for k, turn in enumerate(episode.turns):
            np.testing.assert_array_equal(tokens[batch.turn_ids[row] == k], turn.reply_ids)
            assert turn.context_matches             # canonical replies: joined prefix == sampler's prompt
            before = tokens[:batch.value_positions[row, k] + 1]
            assert tokenizer.decode(before).endswith("<|im_start|>assistant\n")
        environment = tokenizer.decode(tokens[batch.ppo.attention_mask[row] & ~mask])
        for turn in episode.turns[:-1]:
            assert turn.feedback in environment and turn.text not in environment
        assert batch.ppo.token_rewards[row][~mask].sum() == 0.0
    assert not batch.ppo.attention_mask[2].any() and batch.ppo.group_ids.tolist() == [0, 1, -1]
    assert episode_metrics(episodes)["episodes/final_pass_rate"] == pytest.approx(0.5)
    # a multi-process step adds each process's (sum, count) pairs: exactly the 1-process metrics
    shares = [episode_metric_sums(episodes[:1]), episode_metric_sums(episodes[1:])]
    added = {k: tuple(map(sum, zip(*(share[k] for share in shares)))) for k in shares[0]}
    assert ratios_of(added) == pytest.approx(episode_metrics(episodes))
    assert ratios_of(shares[0])["episodes/final_pass_rate"] != ratios_of(shares[1])["episodes/final_pass_rate"]
    # a multi-process step pads every share to the longest row over the processes (`agree`)
    asked = []
    padded = episode_batch(episodes, batch_size=3, pad_id=0, max_turns=3, tokenizer=tokenizer,
                           agree=lambda longest: asked.append(longest) or 2000)
    assert asked == [int(batch.ppo.attention_mask.sum(axis=1).max())]
    assert padded.ppo.tokens.shape[1] >= 2000 and padded.ppo.response_mask.sum() == batch.ppo.response_mask.sum()


def test_random_feedback_ablation_shows_another_problems_feedback(tokenizer, client, problems):
    pair = [problems["add"], problems["other"]]
    episodes = run(tokenizer, client, pair, scripted(tokenizer, WRONG, WRONG, WRONG), feedback_mode="random")
    for episode, other in zip(episodes, reversed(pair)):
        for turn in episode.turns[:-1]:
            assert turn.feedback_from == other.id != episode.problem.id
    add_feedback = episodes[0].turns[0].feedback
    assert "add(-13, 43)" not in add_feedback and problems["other"].fn_name in add_feedback
    real = run(tokenizer, client, pair, scripted(tokenizer, WRONG, WRONG, WRONG))
    assert "add(-13, 43)" in real[0].turns[0].feedback


def test_bad_config_is_refused(tokenizer, client, problems):
    with pytest.raises(ValueError, match="max_turns"):
        EpisodeConfig(max_turns=0)
    with pytest.raises(ValueError, match="feedback_mode"):
        EpisodeConfig(feedback_mode="shuffled")
    episodes = run(tokenizer, client, [problems["add"]], scripted(tokenizer, WRONG, WRONG, WRONG))
    with pytest.raises(ValueError, match="do not fit"):
        episode_batch(episodes * 2, batch_size=1, pad_id=0, max_turns=3)
    with pytest.raises(ValueError, match="max_turns=2"):
        episode_batch(episodes, batch_size=1, pad_id=0, max_turns=2)


class RecordingSampler:
    """The real Sampler; keeps each turn's Rollout to compare the episode against."""

    def __init__(self, sampler):
        self.sampler, self.rollouts = sampler, []

    def generate(self, prompts, params, rng, **kwargs):
        self.rollouts.append(self.sampler.generate(prompts, params, rng, **kwargs))
        return self.rollouts[-1]


@pytest.mark.slow
def test_tiny_policy_episodes_train_with_a_real_ppo_update(loaded, tokenizer, client, problems):
    train = load_problems("starter:train")
    source = RecordingSampler(Sampler(loaded))
    sampled = run_episodes(source, tokenizer, client, train[:2], samples_per_problem=2,
                           params=SamplingParams(max_new_tokens=24), rng=jax.random.key(1),
                           config=EpisodeConfig(max_turns=2))
    assert [len(e.turns) for e in sampled] == [2, 2, 2, 2] and len(source.rollouts) == 2
    for k, rollout in enumerate(source.rollouts):
        for row, episode in enumerate(sampled):
            n = int(rollout.response_mask[row].sum())
            np.testing.assert_array_equal(episode.turns[k].reply_ids, rollout.response_tokens[row, :n])
            np.testing.assert_allclose(episode.turns[k].reply_logprobs, rollout.response_logprobs[row, :n])
    first_prompt = source.rollouts[0].prompt_tokens[0][source.rollouts[0].prompt_mask[0]]
    np.testing.assert_array_equal(sampled[0].token_sequence()[0][:len(first_prompt)], first_prompt)
    # turn 2 was sampled from exactly the joined ids PPO trains on: env_1 ⧺ reply_1 ⧺ env_2
    second = source.rollouts[1]
    for row, episode in enumerate(sampled):
        joined = np.concatenate([episode.turns[0].env_ids, episode.turns[0].reply_ids, episode.turns[1].env_ids])
        np.testing.assert_array_equal(second.prompt_tokens[row][second.prompt_mask[row]], joined)
        assert episode.turns[1].context_matches

    # Scripted episodes on "add": one solves it at turn 1, one fails twice (GRPO group of 2).
    calls = itertools.count()
    source_text = TextReplies(tokenizer, lambda prompt: RIGHT if next(calls) == 0 else WRONG)
    scripted_eps = run_episodes(source_text, tokenizer, client, [problems["add"]], samples_per_problem=2,
                                params=PARAMS, rng=jax.random.key(0), config=EpisodeConfig(max_turns=2))
    assert [e.final_passed for e in scripted_eps] == [True, False]
    for episode in scripted_eps:
        episode.group_id += 2
    episodes = sampled + scripted_eps
    batch = episode_batch(episodes, batch_size=6, pad_id=0, max_turns=2, tokenizer=tokenizer,
                          reward_config=RLEFRewardConfig(fine_grained=True))

    config = ppo.PPOConfig(advantage="grpo", lr=5e-3, kl_coef=0.0, normalize_advantages=False)
    state, defs = ppo.init_train_state(loaded, config)
    update = ppo.make_update(defs, config)

    def reply_logprob(policy, row):
        """Mean log-prob of the row's reply tokens under `policy`."""
        logp, _, _ = ppo.forward(defs, config, policy, None, batch.ppo.tokens[row:row + 1],
                                 batch.ppo.attention_mask[row:row + 1])
        mask = batch.ppo.response_mask[row, 1:]
        return float(np.sum(np.where(mask, logp[0], 0.0)) / mask.sum())

    totals = [sum(float(r.sum()) for r in episode_rewards(e, tokenizer, RLEFRewardConfig(fine_grained=True)))
              for e in episodes]
    # sampled replies: truncated, no code: -0.2 and a global -0.3 per turn, -1 final; scripted: +1 / -1
    np.testing.assert_allclose(totals, [-2.0] * 4 + [1.0, -1.0], atol=1e-5)
    before = [reply_logprob(state.policy, row) for row in (4, 5)]
    for step in range(3):
        state, metrics = update(state, batch.ppo)
        assert all(np.isfinite(float(v)) for v in metrics.values())
        if step == 0:   # the step saw exactly the episode rewards on the reply tokens
            assert float(metrics["reward/env_per_seq"]) == pytest.approx(np.mean(totals), abs=1e-5)
    after = [reply_logprob(state.policy, row) for row in (4, 5)]
    # the replies share most tokens; what the update must do is separate the solved episode's
    # replies (advantage +1) from the failed one's (-1)
    assert after[0] - after[1] > before[0] - before[1] + 0.05
