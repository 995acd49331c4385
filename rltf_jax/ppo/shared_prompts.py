"""Shared prompts: the K replies to one prompt packed behind a single copy of it.

An RL step samples K replies per problem (the GRPO / RLOO group). Padded row by row, the update runs
its forwards and the backward over the prompt K times; on the starter set the chat prompt (~70
tokens) is longer than a typical reply (~34, at most 128), so most of the update's work is repeated
prompt. Packed, a row of the model's input is `prefix ⧺ reply_1 ⧺ … ⧺ reply_n`: each reply attends
to the prefix and to itself only (segment ids, `CausalLM.hidden_states(segment_ids=...)`), and its tokens sit at
the positions they have in the unpacked row, so every reply's log-probabilities are those of its
own row up to float summation order.

`pack_shared_prompts` turns a PPOBatch into a `PackedBatch`:

* ``rows``: a PPOBatch in a compact layout [B, R + 1]: column 0 holds the last prompt token and
  columns 1..n the row's n reply tokens (with their response mask, rewards and penalties), so that
  the update's per-action arrays ([:, 1:], action j predicts reply token j) are [B, R] and every
  statistic (KL, advantages, whitening, metrics) is computed on them unchanged.
* ``packing``: the model's input, `PackedRows`: packed rows [P, S] and, per row and action, the
  flat index of the packed position whose hidden state predicts that action.

Microbatches: rows are grouped by prompt (first occurrence order) and cut into `microbatches`
equal slices of B / M rows; microbatch m owns rows [m B/M, (m + 1) B/M) and packed rows
[m p, (m + 1) p). Within a slice consecutive rows with the same prompt form a pack (cut when it
would pass `max_pack_length`), one packed row each. A group cut by a slice boundary keeps its
rows: the prompt is simply packed twice. The update must not permute rows (it does not in packed
mode) since a row's `source` indexes its own microbatch's packed rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from rltf_jax.ppo.length_groups import bucket_lengths, row_spans
from rltf_jax.ppo.types import PPOBatch, complete_batch

PAD_SEGMENT = -1  # a packed position that holds no token
PREFIX_SEGMENT = 0  # the shared prompt; reply k of a pack has segment k (1-based)


class PackedRows(NamedTuple):
    """The model's input in packed mode. tokens, segment_ids, positions [P, S] int32 (P = M × p
    packed rows; segment -1 = padding, 0 = prompt, k = the pack's k-th reply; positions count the
    tokens of the unpacked row); source [B, R] int32: for row b's action j, the index into its
    microbatch's packed rows flattened to [p × S] of the position whose hidden state predicts it."""

    tokens: Any
    segment_ids: Any
    positions: Any
    source: Any


class PackedBatch(NamedTuple):
    """rows: a PPOBatch over the compact [B, R + 1] layout (module docstring); packing: PackedRows."""

    rows: PPOBatch
    packing: PackedRows


def _row_parts(batch: PPOBatch):
    """Each row's (prompt tokens, first reply column, end column) on the original [B, T] layout."""
    first, length = row_spans(batch.attention_mask)
    out = []
    for r in range(batch.tokens.shape[0]):
        start, end = int(first[r]), int(first[r] + length[r])
        replied = np.flatnonzero(batch.response_mask[r, start:end])
        reply = start + int(replied[0]) if replied.size else end
        if reply == start:
            raise ValueError(f"row {r} has no prompt token before its reply: packing needs the token "
                             "that predicts the reply's first token")
        out.append((tuple(batch.tokens[r, start:reply].tolist()), reply, end))
    return out


def _packs(parts, rows, max_pack_length):
    """Consecutive rows of one prompt, as lists of row indices, each pack ≤ max_pack_length long
    (a pack always takes at least one row)."""
    packs, current, length = [], [], 0
    for r in rows:
        prompt, reply, end = parts[r]
        if current and parts[current[0]][0] == prompt and length + end - reply <= max_pack_length:
            current.append(r)
            length += end - reply
            continue
        if current:
            packs.append(current)
        current, length = [r], len(prompt) + end - reply
    if current:
        packs.append(current)
    return packs


def _write_packs(batch: PPOBatch, parts, packs, *, width: int, window: int, per_micro: int):
    """The packed rows ({tokens, segment_ids, positions} [M p, S]), source [B, R] and the compact
    rows' per-token arrays [B, R + 1], rows in pack order."""
    rows = batch.tokens.shape[0]
    packed = {"tokens": np.zeros((len(packs) * per_micro, width), np.int32),
              "segment_ids": np.full((len(packs) * per_micro, width), PAD_SEGMENT, np.int32),
              "positions": np.zeros((len(packs) * per_micro, width), np.int32)}
    source = np.zeros((rows, window - 1), np.int32)
    compact = {"tokens": np.zeros((rows, window), np.int32), "attention_mask": np.zeros((rows, window), bool),
               "response_mask": np.zeros((rows, window), bool),
               "token_rewards": np.zeros((rows, window), np.float32),
               "token_penalties": np.zeros((rows, window), np.float32)}
    out_row = 0
    for m, micro_packs in enumerate(packs):
        for k, pack in enumerate(micro_packs):
            row = m * per_micro + k
            prompt = parts[pack[0]][0]
            n = len(prompt)
            packed["tokens"][row, :n] = prompt
            packed["segment_ids"][row, :n] = PREFIX_SEGMENT
            packed["positions"][row, :n] = np.arange(n)
            at = n
            for segment, r in enumerate(pack, start=1):
                _, reply, end = parts[r]
                count = end - reply
                packed["tokens"][row, at:at + count] = batch.tokens[r, reply:end]
                packed["segment_ids"][row, at:at + count] = segment
                packed["positions"][row, at:at + count] = n + np.arange(count)  # the unpacked row's
                # action 0 is predicted from the prompt's last token, action j from reply token j - 1
                local = k * width
                source[out_row, 0] = local + n - 1
                source[out_row, 1:count] = local + at + np.arange(count - 1)
                compact["tokens"][out_row, 0] = prompt[-1]
                compact["attention_mask"][out_row, :count + 1] = True
                for name in ("tokens", "response_mask", "token_rewards", "token_penalties"):
                    compact[name][out_row, 1:count + 1] = getattr(batch, name)[r, reply:end]
                at += count
                out_row += 1
    return packed, source, compact


def pack_shared_prompts(batch: PPOBatch, microbatches: int, *, multiple: int = 64, max_pack_length: int = 1024,
                        packed_rows_multiple: int = 1) -> PackedBatch:
    """A PPOBatch ([B, T] host arrays, prompts left-padded, replies right-padded, critic-free fields)
    -> a PackedBatch of the same rows grouped by prompt (module docstring).

    microbatches: num_minibatches × grad_accum of the update (B must divide by it). multiple: the
    packed width S and the reply window R are `bucket_lengths(·, multiple)`, coarse so that a run
    compiles few update signatures (each new one costs a compile). packed_rows_multiple:
    P / M is rounded up to a multiple of it (the batch axis's device count divides P).
    """
    batch = complete_batch(PPOBatch(*(None if x is None else np.asarray(x) for x in batch)))
    rows = batch.tokens.shape[0]
    if microbatches < 1 or rows % microbatches:
        raise ValueError(f"a batch of {rows} rows does not split into {microbatches} microbatches "
                         "(num_minibatches × grad_accum)")
    if (batch.turn_ids >= 0).any():
        raise ValueError("shared prompts pack single-turn rows; multi-turn episodes (turn_ids) need "
                         "share_prompts=False")
    parts = _row_parts(batch)
    first_seen: dict = {}
    order = sorted(range(rows), key=lambda r: (first_seen.setdefault(parts[r][0], len(first_seen)), r))
    size = rows // microbatches
    slices = [order[m * size:(m + 1) * size] for m in range(microbatches)]
    packs = [_packs(parts, s, max_pack_length) for s in slices]
    longest = max(len(parts[p[0]][0]) + sum(parts[r][2] - parts[r][1] for r in p) for ps in packs for p in ps)
    widest = max(max(end - reply for _, reply, end in parts), 1)
    width = bucket_lengths(longest, multiple)
    window = bucket_lengths(widest, multiple) + 1
    per_micro = -(-max(len(ps) for ps in packs) // packed_rows_multiple) * packed_rows_multiple

    packed, source, compact = _write_packs(batch, parts, packs, width=width, window=window, per_micro=per_micro)
    order = np.asarray(order)
    rows_batch = PPOBatch(**compact, group_ids=batch.group_ids[order], baselines=batch.baselines[order],
                          turn_ids=np.full((rows, window), -1, np.int32),
                          value_positions=np.full((rows, 1), -1, np.int32))
    return PackedBatch(rows_batch, PackedRows(source=source, **packed))
