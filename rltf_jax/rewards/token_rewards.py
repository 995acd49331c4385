"""Per-token rewards `[batch, response_len]` from sandbox results: the contract with PPO.

For sample b with n_b response tokens (response_mask[b] True on the first n_b positions):

    token_rewards[b, t] = outcome_b * [t == n_b - 1]                    (scalar outcome on the last token)
                        + fine_b * mask_b[t] / scale_b                  (fine-grained penalty on the span)

    outcome_b = adaptive reward if config.adaptive else coarse reward   (rewards/outcome.py)
    fine_b    = config.fine_grained_penalty if class is global/line and config.fine_grained, else 0
    mask_b    = all n_b tokens (global) | tokens of the error line (line) | nothing (ignore)
    scale_b   = mask_b.sum() for "span_total" (the span sums to fine_b), 1 for "per_token" (RLTF's code)

The outcome sits on the last response token (the stop token when there is one), so with γ = 1 every
token's return includes it; the fine-grained penalty sits on the blamed tokens, so only the tokens
up to and including the faulty line see it in their return. KL terms are added inside the PPO step.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rltf_jax.rewards.config import RewardConfig
from rltf_jax.rewards.error_class import ERROR_CLASSES, GLOBAL, LINE, ErrorLocation, classify_error
from rltf_jax.rewards.outcome import NO_CODE, adaptive_reward, check_verdict, coarse_reward
from rltf_jax.rewards.token_offsets import span_token_mask, token_char_offsets


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) to exclude leading/trailing whitespace (indentation is not the error)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def fine_grained_token_mask(location: ErrorLocation, extracted, tokenizer, ids: Sequence[int],
                            text: str | None = None) -> np.ndarray:
    """[n] bool mask of the response tokens blamed by `location`.

    Args:
      location: the error class (rewards/error_class.py).
      extracted: the `ExtractedCode` the program came from (None if there was no code).
      tokenizer: the policy's tokenizer.
      ids: the n sampled response token ids (padding removed).
      text: the response text the code was extracted from (Rollout.texts[b]); it must be a prefix
        of `tokenizer.decode(ids, skip_special_tokens=True)` (the sampler cuts at stop strings).
    Returns:
      global: all True; ignore: all False; line: True on the tokens overlapping the error line's
      non-whitespace characters (empty when the line is in the prepended prefix, not the model's).
    """
    n = len(ids)
    if location.kind == GLOBAL:
        return np.ones(n, bool)
    if location.kind != LINE:
        return np.zeros(n, bool)
    if extracted is None:
        raise ValueError("a 'line' error needs the ExtractedCode it was located in")
    decoded, offsets = token_char_offsets(tokenizer, ids)
    if text is not None and not decoded.startswith(text):
        raise ValueError(
            "the response text the code was extracted from is not a prefix of the decoded "
            f"response tokens ({text[:40]!r} vs {decoded[:40]!r}); pass Rollout.texts[b] and the "
            "same sample's token ids")
    span = extracted.line_span_in_response(location.line)
    if span is None:
        return np.zeros(n, bool)
    start, end = _strip_span(decoded, *span)
    return span_token_mask(offsets, start, end)


def _response_lengths(results, extracted, truncated, response_tokens: np.ndarray,
                      response_mask: np.ndarray) -> np.ndarray:
    """[B] response lengths, after checking that every input has B rows and the mask is a non-empty
    prefix of each row (right padding)."""
    batch, length = response_tokens.shape
    for name, seq in (("results", results), ("extracted", extracted), ("truncated", truncated)):
        if len(seq) != batch:
            raise ValueError(f"score_batch: len({name})={len(seq)} but response_tokens has {batch} rows")
    if response_mask.shape != (batch, length):
        raise ValueError(f"response_mask shape {response_mask.shape} != tokens shape {(batch, length)}")
    lengths = response_mask.sum(axis=1)
    if not np.array_equal(response_mask, np.arange(length)[None, :] < lengths[:, None]):
        raise ValueError("response_mask must be True on a prefix of each row (right padding)")
    if (lengths == 0).any():
        raise ValueError(f"rows {np.flatnonzero(lengths == 0).tolist()} have no response tokens")
    return lengths


def score_batch(results: Sequence, extracted: Sequence, response_tokens: np.ndarray,
                response_mask: np.ndarray, truncated: Sequence[bool], tokenizer,
                config: RewardConfig = RewardConfig(),
                texts: Sequence[str] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Token rewards for a batch of executed responses (formula in the module docstring).

    Args:
      results: B sandbox `ExecutionResult`s (None where extracted[b] is None). A `sandbox_error`
        raises: the loop drops those samples before scoring.
      extracted: B `ExtractedCode | None` (None: no code in the reply → syntax-error reward).
      response_tokens: [B, N] int32 sampled ids, right-padded.
      response_mask: [B, N] bool, True on the n_b generated tokens (a prefix of each row).
      truncated: B bools, True when the response hit max length (no stop).
      tokenizer: the policy's tokenizer (line → token mapping).
      config: reward values.
      texts: B response texts the code was extracted from (Rollout.texts), checked when given.
    Returns:
      token_rewards [B, N] float32 (0 on padding) and components, each [B]:
      "coarse", "adaptive", "outcome", "fine_grained" (sum of the fine terms, float32),
      "fine_tokens" (int32, tokens penalised), "error_class" (int32 index into ERROR_CLASSES).
    """
    response_tokens = np.asarray(response_tokens)
    batch, length = response_tokens.shape
    lengths = _response_lengths(results, extracted, truncated, response_tokens, np.asarray(response_mask, bool))
    token_rewards = np.zeros((batch, length), np.float32)
    parts = {k: np.zeros(batch, np.float32) for k in ("coarse", "adaptive", "outcome", "fine_grained")}
    parts["fine_tokens"] = np.zeros(batch, np.int32)
    parts["error_class"] = np.zeros(batch, np.int32)
    for b in range(batch):
        result, code, n = results[b], extracted[b], int(lengths[b])
        if code is None:
            verdict, ratio = NO_CODE, 0.0
        else:
            if result is None:
                raise ValueError(f"sample {b} has code but no ExecutionResult")
            check_verdict(result.verdict)
            verdict, ratio = result.verdict, float(result.pass_ratio)
        parts["coarse"][b] = coarse_reward(verdict, config)
        parts["adaptive"][b] = adaptive_reward(verdict, ratio, config)
        parts["outcome"][b] = parts["adaptive"][b] if config.adaptive else parts["coarse"][b]
        token_rewards[b, n - 1] += parts["outcome"][b]

        location = classify_error(result, code.program if code is not None else None,
                                  bool(truncated[b]))
        parts["error_class"][b] = ERROR_CLASSES.index(location.kind)
        if not config.fine_grained:
            continue
        ids = response_tokens[b, :n]
        mask = fine_grained_token_mask(location, code, tokenizer, ids,
                                       texts[b] if texts is not None else None)
        count = int(mask.sum())
        if count:
            scale = count if config.fine_grained_scaling == "span_total" else 1
            token_rewards[b, :n] += np.where(mask, config.fine_grained_penalty / scale, 0.0)
            parts["fine_grained"][b] = config.fine_grained_penalty * count / scale
            parts["fine_tokens"][b] = count
    return token_rewards, parts


def reward_metrics(components: dict[str, np.ndarray]) -> dict[str, float]:
    """Flat metrics from `score_batch` components: means, and the share of each error class."""
    metrics = {f"reward/{k}": float(np.mean(v)) for k, v in components.items()
               if k not in ("error_class", "fine_tokens")}
    metrics["reward/fine_tokens"] = float(np.mean(components["fine_tokens"]))
    for i, kind in enumerate(ERROR_CLASSES):
        metrics[f"reward/class_{kind}"] = float(np.mean(components["error_class"] == i))
    return metrics
