"""RLEF's episode rewards (Gehring et al. 2024, §3.2), per turn and per token.

An episode has K ≤ max_turns replies. With `final_passed` = the last reply's code passes every
*private* test:

    R_k = no_code · [reply k has no valid code block]          (-0.2)
        + (passed if final_passed else failed) · [k == K]       (+1 / -1, on the last reply)
        + repeated_code · [k > 1 and reply k's program == reply k-1's]   (this project's, off by default)
        + fine_k                                                (optional, this project's addition)

`R_k` sits on the last token of reply k (its stop token when it has one), so with γ = 1 the
return of every token of reply k is Σ_{i ≥ k} R_i: what RLEF's turn-level advantage
A_k = -V(c_k) + Σ_{i ≥ k} R_i uses. `fine_k` is RLTF's fine-grained penalty (rewards/
token_rewards.py) on the tokens of reply k that its error blames (the whole reply for global
errors, the error line for line errors), judged by the result that graded reply k's code: the
public tests for replies before the last, the private tests for the last. The per-token KL to the
initial policy is added inside the PPO step, like single-turn.

`repeated_code` targets what a small policy does after RLEF's own rewards: a reply is only asked
for after the previous program failed the public tests, and resubmitting that program unchanged
(the same syntax tree: comments and formatting do not count) is certain to fail them again.
SmolLM2-135M after 15 RLEF updates did that in 29 of 41 revisions on the held-out starter
problems (docs/benchmarks.md, "RLEF").
"""

from __future__ import annotations

import ast
import dataclasses
from typing import Sequence

import numpy as np

from rltf_jax.rewards.config import FINE_GRAINED_SCALINGS
from rltf_jax.rewards.error_class import classify_error
from rltf_jax.rewards.token_rewards import fine_grained_token_mask


@dataclasses.dataclass(frozen=True)
class RLEFRewardConfig:
    """RLEF reward values (a run config's `rlef.rewards` block maps onto this).

    Attributes:
      passed: final reward when the last reply's code passes all private tests (+1).
      failed: final reward otherwise (-1), also when the last reply has no code.
      no_code: reward of each reply without a valid code block (-0.2).
      repeated_code: reward of a reply (not the first) whose program is the previous reply's,
        unchanged; 0 = RLEF's rules.
      fine_grained: add RLTF's fine-grained penalties on each reply's code.
      fine_grained_penalty: RLTF's R_fine (-0.3) per faulty span.
      fine_grained_scaling: "span_total" (the span shares the penalty) | "per_token".
    """

    passed: float = 1.0
    failed: float = -1.0
    no_code: float = -0.2
    repeated_code: float = 0.0
    fine_grained: bool = False
    fine_grained_penalty: float = -0.3
    fine_grained_scaling: str = "span_total"

    def __post_init__(self):
        if self.fine_grained_scaling not in FINE_GRAINED_SCALINGS:
            raise ValueError(f"RLEFRewardConfig.fine_grained_scaling={self.fine_grained_scaling!r}; "
                             f"expected one of {FINE_GRAINED_SCALINGS}")


def normalized_program(program: str | None) -> str | None:
    """What a program does, for comparing replies: its syntax tree (comments, blank lines and
    formatting do not count), or for code that does not parse, its text without trailing spaces."""
    if program is None:
        return None
    try:
        return ast.dump(ast.parse(program))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "\n".join(line.rstrip() for line in program.strip("\n").splitlines()).strip()


def repeated_programs(programs: Sequence[str | None]) -> np.ndarray:
    """[K] bool: reply k (k ≥ 1) has code, and it is reply k-1's program (`normalized_program`)."""
    norm = [normalized_program(p) for p in programs]
    return np.array([k > 0 and norm[k] is not None and norm[k] == norm[k - 1]
                     for k in range(len(norm))], bool)


def turn_rewards(has_code: Sequence[bool], final_passed: bool,
                 config: RLEFRewardConfig = RLEFRewardConfig(),
                 repeated: Sequence[bool] | None = None) -> np.ndarray:
    """Scalar reward of each reply, before fine-grained terms: ``[K]`` float32 (formula above).
    repeated: [K] bools from `repeated_programs` (None: no reply repeats)."""
    has_code = np.asarray(has_code, bool)
    if has_code.ndim != 1 or has_code.size == 0:
        raise ValueError(f"turn_rewards needs one flag per reply (≥ 1 reply), got shape {has_code.shape}")
    rewards = np.where(has_code, 0.0, config.no_code).astype(np.float32)
    if repeated is not None:
        repeated = np.asarray(repeated, bool)
        if repeated.shape != has_code.shape:
            raise ValueError(f"turn_rewards: {repeated.shape} repeated flags for {has_code.shape} replies")
        rewards += np.where(repeated, config.repeated_code, 0.0).astype(np.float32)
    rewards[-1] += config.passed if final_passed else config.failed
    return rewards


def turn_fine_grained(result, extracted, reply_ids: np.ndarray, text: str, truncated: bool,
                      tokenizer, config: RLEFRewardConfig) -> np.ndarray:
    """RLTF's fine-grained penalty on one reply's tokens: ``[n]`` float32 (0 where not blamed).

    Args:
      result: the ExecutionResult that graded this reply's code (None when it had no code).
      extracted: the reply's ExtractedCode (None: no code).
      reply_ids: [n] the sampled reply token ids. text: the reply text the code came from.
      truncated: the reply hit max_new_tokens without a stop.
    """
    reply_ids = np.asarray(reply_ids)
    location = classify_error(result, extracted.program if extracted is not None else None, truncated)
    mask = fine_grained_token_mask(location, extracted, tokenizer, reply_ids, text)
    count = int(mask.sum())
    if not count:
        return np.zeros(len(reply_ids), np.float32)
    scale = count if config.fine_grained_scaling == "span_total" else 1
    return np.where(mask, config.fine_grained_penalty / scale, 0.0).astype(np.float32)


def episode_token_rewards(reply_ids: Sequence[np.ndarray], extracted: Sequence, results: Sequence,
                          texts: Sequence[str], truncated: Sequence[bool], final_passed: bool,
                          tokenizer=None,
                          config: RLEFRewardConfig = RLEFRewardConfig()) -> list[np.ndarray]:
    """Per-token rewards of each reply of one episode (module docstring).

    Args:
      reply_ids: K arrays [n_k] of sampled ids (n_k ≥ 1).
      extracted: K ExtractedCode | None. results: K ExecutionResults that graded each reply's code
        (public tests for k < K, private for the last; None where there was no code); only read
        when ``config.fine_grained``. texts: K reply texts. truncated: K bools.
      final_passed: the last reply's code passed every private test.
      tokenizer: needed when ``config.fine_grained`` (line → tokens).
    Returns:
      K float32 arrays [n_k]: R_k on the last token of reply k, plus fine-grained terms.
    """
    count = len(reply_ids)
    for name, seq in (("extracted", extracted), ("results", results), ("texts", texts),
                      ("truncated", truncated)):
        if len(seq) != count:
            raise ValueError(f"episode_token_rewards: {len(seq)} {name} for {count} replies")
    if any(len(ids) == 0 for ids in reply_ids):
        raise ValueError("episode_token_rewards: a reply has no tokens; its reward has nowhere to go")
    if config.fine_grained and tokenizer is None:
        raise ValueError("fine-grained RLEF rewards need the tokenizer (error line → tokens)")
    repeated = repeated_programs([e.program if e is not None else None for e in extracted])
    scalars = turn_rewards([e is not None for e in extracted], final_passed, config, repeated)
    rewards = []
    for k, ids in enumerate(reply_ids):
        tokens = np.zeros(len(ids), np.float32)
        tokens[-1] += scalars[k]
        if config.fine_grained:
            tokens += turn_fine_grained(results[k], extracted[k], ids, texts[k], bool(truncated[k]),
                                        tokenizer, config)
        rewards.append(tokens)
    return rewards
