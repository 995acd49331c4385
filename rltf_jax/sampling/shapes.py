"""Static shapes of the sampler's compiled calls: batch, prompt and new-token buckets, decode segments.

Every distinct shape compiles the generation loop once (seconds on the CPU), so requests are padded
up to a few bucket sizes; every padded slot costs compute at every step, so the buckets should be
no coarser than they need to be.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def sampling_row_ids(rows: int, row_offset: int = 0, row_ids: Sequence[int] | None = None) -> np.ndarray:
    """The sampling-key id of each of `rows` prompts: `row_ids` as given, else row_offset + i.
    [rows] int64; raises ValueError unless they are distinct, non-negative and fit int32 with room
    for the padding rows' ids after them."""
    ids = np.arange(row_offset, row_offset + rows) if row_ids is None else np.asarray(row_ids, np.int64)
    if ids.shape != (rows,) or len(np.unique(ids)) != rows or ids.min() < 0 or ids.max() >= 2 ** 30:
        raise ValueError(f"row_ids must be {rows} distinct non-negative int32 ids, one per prompt; "
                         f"got {ids.tolist()[:8]}")
    return ids


def bucket_size(n: int, minimum: int = 16) -> int:
    """Smallest power of two >= max(n, minimum)."""
    return max(minimum, 1 << max(0, int(n) - 1).bit_length())


def prompt_bucket_size(n: int, minimum: int = 16) -> int:
    """Smallest of 2^k and 3 * 2^(k-1) (16, 24, 32, 48, 64, 96, ...) >= max(n, minimum): at most
    twice the compiled shapes of powers of two, and a prompt pads by at most a third instead of
    a half (chat prompts of 42-45 tokens: 48 slots, not 64)."""
    n = max(int(n), minimum)
    power = bucket_size(n, 1)
    three_halves = 3 * power // 4
    return three_halves if three_halves >= n else power


# Cache slots (batch x (prompt + decode)) from which a separate prompt buffer and decode segments
# pay for their extra dots. Measured on the 2-core CPU (SmolLM2-135M, bf16, 128 new tokens): batch
# 64 x 192 slots +10-13% tok/s, batch 8 x 1152 (a 945-token prompt) +10%, batch 32 x 192 -3%,
# batch 8 x 192 even.
SEGMENT_MIN_SLOTS = 8192


def decode_segments(batch: int, prompt_bucket: int, new_bucket: int, segment_tokens: int,
                    max_segments: int, min_slots: int = SEGMENT_MIN_SLOTS) -> int:
    """0 (one cache buffer for prompt and decode) for small caches; else how many decode segments:
    one per `segment_tokens` slots, at most `max_segments` (each adds a copy of the decoder to the
    compiled program)."""
    if max_segments < 1 or batch * (prompt_bucket + new_bucket) < min_slots:
        return 0
    return max(1, min(max_segments, new_bucket // max(segment_tokens, 1)))
