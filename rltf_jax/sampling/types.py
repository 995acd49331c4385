"""What a generation is asked for (`SamplingParams`) and what it returns (`Rollout`)."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from rltf_jax.sampling.conversation_cache import ConversationCache


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """max_new_tokens: response budget; temperature / top_p / top_k (0 = off) shape the distribution;
    greedy: argmax (logprobs are then those of the untempered softmax); stop_strings: cut points;
    stop_after_code_block: stop a row once it closes its first ``` fenced block (on device)."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    greedy: bool = False
    stop_strings: tuple[str, ...] = ()
    stop_after_code_block: bool = False

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.greedy and self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (use greedy=True for argmax), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        object.__setattr__(self, "stop_strings", tuple(self.stop_strings))


class Rollout(NamedTuple):
    """Host numpy arrays for B prompts (P = prompt bucket, N = max_new_tokens)."""

    prompt_tokens: np.ndarray      # [B, P] int32, left-padded
    prompt_mask: np.ndarray        # [B, P] bool
    response_tokens: np.ndarray    # [B, N] int32, right-padded
    response_logprobs: np.ndarray  # [B, N] float32, log p of each sampled token under the sampler's distribution
    response_mask: np.ndarray      # [B, N] bool, True on generated tokens up to and including the stop token
    texts: list[str]               # decoded responses (special tokens skipped), cut at a stop string
    cache: ConversationCache | None = None  # the rows' KV cache, with generate(keep_cache=True)
