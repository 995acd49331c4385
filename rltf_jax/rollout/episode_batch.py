"""Multi-turn episodes -> the PPO step's arrays (docs/interfaces.md), plus RLEF's turn indices.

Each kept episode is one row: its joined conversation ``env_1 ⧺ reply_1 ⧺ env_2 ⧺ reply_2 ...``
(`Episode.token_sequence`), right-padded to a bucketed length. ``response_mask`` is True on reply
tokens only (prompt and feedback are environment text, out of the policy loss); the rewards of
`rewards/rlef.py` sit on the reply tokens. For RLEF's turn-level value, ``turn_ids`` says which
reply a token belongs to and ``value_positions`` where each reply's state value is read: the last
environment token before it (in the PPO step's action axis L = T - 1, the action at index p
predicts token p + 1, so index p is also the first action of that reply, see ppo.py).
Episodes hit by a sandbox failure (``dropped``) are left out; their rows are padding.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np

from rltf_jax.ppo import PPOBatch
from rltf_jax.rewards.rlef import RLEFRewardConfig, episode_token_rewards, repeated_programs
from rltf_jax.rollout.episodes import Episode
from rltf_jax.ppo.length_groups import bucket_lengths
from rltf_jax.ppo.types import padded_rows


class EpisodeBatch(NamedTuple):
    """A PPOBatch over [B, T] and the turn structure of each row.

    turn_ids [B, T] int32: k on the tokens of reply k, -1 elsewhere (environment, padding).
    value_positions [B, K] int32: token index of the last environment token before reply k,
      -1 where row b has fewer than k + 1 replies (and on padding rows).
    episodes: the episodes of rows 0..len(episodes)-1 (the rest is padding).
    """

    ppo: PPOBatch
    turn_ids: np.ndarray
    value_positions: np.ndarray
    episodes: list


def episode_rewards(episode: Episode, tokenizer=None,
                    config: RLEFRewardConfig = RLEFRewardConfig()) -> list[np.ndarray]:
    """Per-token rewards of each reply ([n_k] float32 each): replies before the last are judged by
    their public-test result, the last by the private tests (rewards/rlef.py)."""
    if episode.dropped:
        raise ValueError(f"episode on {episode.problem.id} was dropped (sandbox_error); never score it")
    turns = episode.turns
    results = [t.public_result for t in turns[:-1]] + [episode.private_result]
    return episode_token_rewards([t.reply_ids for t in turns], [t.extracted for t in turns], results,
                                 [t.text for t in turns], [t.truncated for t in turns],
                                 episode.final_passed, tokenizer, config)


def episode_batch(episodes: Sequence[Episode], *, batch_size: int, pad_id: int, max_turns: int,
                  tokenizer=None, reward_config: RLEFRewardConfig = RLEFRewardConfig(),
                  length_multiple: int = 64, agree: Callable[[int], int] = int) -> EpisodeBatch:
    """Rows of the kept episodes (module docstring), padded to ``batch_size`` rows and to the bucket
    of ``agree(longest row)`` (``multihost.agree_max`` in a multi-process step: its shares must have
    one T, the longest over all processes).

    Returns an EpisodeBatch whose PPOBatch holds tokens [B, T] int32, attention_mask [B, T] bool,
    response_mask [B, T] bool, token_rewards [B, T] float32, group_ids [B] int32 (-1 on padding).
    """
    kept = [e for e in episodes if not e.dropped]
    if len(kept) > batch_size:
        raise ValueError(f"{len(kept)} episodes do not fit a batch of {batch_size}")
    too_long = [e.problem.id for e in kept if len(e.turns) > max_turns]
    if too_long:
        raise ValueError(f"episodes with more than max_turns={max_turns} replies: {too_long[:3]}")
    sequences = [e.token_sequence() for e in kept]
    length = bucket_lengths(max(agree(max((len(s[0]) for s in sequences), default=0)), 1), length_multiple)
    tokens, attention, response = padded_rows([(seq, mask) for seq, mask, _, _ in sequences],
                                              batch_size=batch_size, length=length, pad_id=pad_id)
    rewards = np.zeros((batch_size, length), np.float32)
    turn_ids = np.full((batch_size, length), -1, np.int32)
    positions = np.full((batch_size, max_turns), -1, np.int32)
    groups = np.full((batch_size,), -1, np.int32)
    for row, (episode, (seq, mask, turns, starts)) in enumerate(zip(kept, sequences)):
        n = len(seq)
        turn_ids[row, :n] = turns
        positions[row, :len(starts)] = starts
        groups[row] = episode.group_id
        for k, reply_rewards in enumerate(episode_rewards(episode, tokenizer, reward_config)):
            rewards[row, :n][turns == k] = reply_rewards
    batch = PPOBatch(tokens=tokens, attention_mask=attention, response_mask=response,
                     token_rewards=rewards, group_ids=groups)
    return EpisodeBatch(batch, turn_ids, positions, list(kept))


def episode_metrics(episodes: Sequence[Episode]) -> dict[str, float]:
    """Flat metrics of a batch of episodes (final pass rate on private tests, turns, no-code...)."""
    return ratios_of(episode_metric_sums(episodes))


EPISODE_COUNTS = ("episodes/total", "episodes/dropped")  # plain counts: their sum is the metric


def ratios_of(sums: dict[str, tuple[float, float]]) -> dict[str, float]:
    """{name: (sum, count)} -> {name: sum / count}, or the sum itself for EPISODE_COUNTS; rates
    with a zero count are left out (the later-turn rates are 0.0 then)."""
    metrics = {k: total if k in EPISODE_COUNTS else total / count
               for k, (total, count) in sums.items() if count or k in EPISODE_COUNTS}
    if "episodes/final_pass_rate" in metrics:  # some episode was kept: rates over later turns exist
        for key in ("episodes/context_mismatch", "episodes/repeated_code"):
            metrics.setdefault(key, 0.0)
    return metrics


def episode_metric_sums(episodes: Sequence[Episode]) -> dict[str, tuple[float, float]]:
    """`episode_metrics` as (sum, count) pairs, which add up exactly over the processes of a
    multi-process step (multihost.combine_sums) where means of means would not."""
    kept = [e for e in episodes if not e.dropped]
    turns = [t for e in kept for t in e.turns]
    later = [t for e in kept for t in e.turns[1:]]
    # replies after a public-test failure that resubmit the failed program unchanged
    repeated = [r for e in kept for r in
                repeated_programs([t.extracted.program if t.extracted else None for t in e.turns])[1:]]

    def mean_of(values) -> tuple[float, float]:
        return float(np.sum(values)) if len(values) else 0.0, float(len(values))

    return {
        "episodes/total": (float(len(episodes)), 1.0),
        "episodes/dropped": (float(len(episodes) - len(kept)), 1.0),
        "episodes/final_pass_rate": mean_of([e.final_passed for e in kept]),
        "episodes/first_turn_public_pass": mean_of([e.turn_passed_public(0) for e in kept]),
        "episodes/turns": mean_of([len(e.turns) for e in kept]),
        "episodes/no_code": mean_of([t.extracted is None for t in turns]),
        "episodes/truncated": mean_of([t.truncated for t in turns]),
        "episodes/reply_tokens": mean_of([len(t.reply_ids) for t in turns]),
        "episodes/context_mismatch": mean_of([not t.context_matches for t in later]),
        "episodes/repeated_code": mean_of(repeated),
    }
