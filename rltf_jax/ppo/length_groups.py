"""Length groups: one PPO batch split into rows of similar length, each padded to its own length.

A batch padded to its longest row spends the update's compute on padding. RLEF's batches are the
worst case: an episode solved at the first reply is ~300 tokens, one that used three replies and two
feedback messages ~1,100, and all rows are padded to the longest. `split_by_length` sorts the rows
by their real length and cuts them into `groups` equal slices; each slice is shifted to start at
column 0 and padded to a bucket of its own longest row. The jitted update (ppo.py) takes the tuple
of slices: the model's forward and backward passes run per slice at that slice's length, while the
advantages, whitening and metrics are computed over all rows together, so the update is the same
computation as on the single padded batch (up to float summation order).

Buckets (`bucket_lengths`) are multiples of 64 up to 512 and eight per doubling above, as coarse
as the single padded batch's up to there, so that a run compiles a few (T_1, ..., T_G) signatures.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from rltf_jax.ppo.types import PPOBatch, complete_batch

PER_TOKEN_FIELDS = ("tokens", "attention_mask", "response_mask", "token_rewards", "token_penalties",
                    "turn_ids")


def bucket_lengths(length: int, multiple: int = 64) -> int:
    """`length` rounded up to a multiple of max(multiple, 2^⌊log2(length - 1)⌋ / 8): steps of
    `multiple` up to 8 × multiple, then eight steps per doubling (≤ 12.5% padding)."""
    length = max(int(length), 1)
    step = max(multiple, (1 << max(length - 1, 1).bit_length() - 1) // 8)
    return -(-length // step) * step


def row_spans(attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[B, T] bool -> (first real column [B], real length [B]); an all-padding row is (0, 0).

    A row's real tokens must be contiguous (prompts left-padded, replies right-padded)."""
    mask = np.asarray(attention_mask, bool)
    length = mask.sum(axis=1)
    first = np.where(length > 0, mask.argmax(axis=1), 0)
    columns = np.arange(mask.shape[1])[None, :]
    contiguous = mask == ((columns >= first[:, None]) & (columns < (first + length)[:, None]))
    if not contiguous.all():
        bad = np.flatnonzero(~contiguous.all(axis=1))
        raise ValueError(f"rows {bad[:5].tolist()} have gaps in their attention_mask: a length group "
                         "needs each row's real tokens contiguous")
    return first, length


def split_by_length(batch: PPOBatch, groups: int, *, rows_multiple: int = 1, multiple: int = 64,
                    agree=None) -> tuple[PPOBatch, ...]:
    """`batch` ([B, T] arrays, host numpy) -> `groups` PPOBatches of B / groups rows each, shortest
    rows first, each [B / groups, T_g] with T_g = bucket_lengths(longest real row of the group).

    Rows keep their own data; they are shifted left so that their first real token is at column 0
    (positions count real tokens, so nothing the model sees changes) and ``value_positions`` move
    with them. `rows_multiple`: each group's row count must divide into the update's
    num_minibatches × grad_accum microbatches. `agree(int) -> int` makes every process use the same
    T_g in a multi-process run (multihost.agree_max).
    """
    batch = complete_batch(PPOBatch(*(None if x is None else np.asarray(x) for x in batch)))
    rows = batch.tokens.shape[0]
    if groups < 1 or rows % (groups * rows_multiple):
        raise ValueError(f"a batch of {rows} rows does not split into {groups} length groups of a "
                         f"multiple of {rows_multiple} rows (num_minibatches × grad_accum)")
    first, length = row_spans(batch.attention_mask)
    order = np.argsort(length, kind="stable")
    size = rows // groups
    parts = []
    for g in range(groups):
        picked = order[g * size:(g + 1) * size]
        longest = max(int(length[picked].max()), 2)
        width = bucket_lengths(agree(longest) if agree else longest, multiple)
        fields = {}
        for name in PER_TOKEN_FIELDS:
            source = getattr(batch, name)
            out = np.zeros((size, width), source.dtype)
            if name == "turn_ids":
                out[:] = -1
            for i, row in enumerate(picked):
                n = int(length[row])
                out[i, :n] = source[row, first[row]:first[row] + n]
            fields[name] = out
        positions = batch.value_positions[picked]
        fields["value_positions"] = np.where(positions >= 0, positions - first[picked, None], -1).astype(np.int32)
        fields["group_ids"] = batch.group_ids[picked]
        fields["baselines"] = batch.baselines[picked]
        parts.append(PPOBatch(**fields))
    return tuple(parts)


def join_rows(parts: Sequence, length: int, fill=0):
    """[b_g, T_g, ...] arrays (jnp or numpy) -> [Σ b_g, length, ...]: each padded with `fill` on axis 1."""

    padded = [jnp.pad(p, [(0, 0), (0, length - p.shape[1])] + [(0, 0)] * (p.ndim - 2), constant_values=fill)
              for p in parts]
    return jnp.concatenate(padded, axis=0)


def split_rows(full, widths: Sequence[int], sizes: Sequence[int]):
    """Inverse of join_rows: [Σ b_g, L, ...] -> [b_g, widths[g], ...] slices."""
    out, start = [], 0
    for width, size in zip(widths, sizes):
        out.append(full[start:start + size, :width])
        start += size
    return out
