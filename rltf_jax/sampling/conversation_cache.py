"""Conversation caches: a generate call's KV cache kept on device so the next turn prefills only its
new tokens.

An RLEF episode's turn k+1 prompt is turn k's prompt, its reply and the feedback message: without a
kept cache every turn prefills the whole conversation again, and prefill is most of a multi-turn
rollout on the CPU (docs/benchmarks.md, RLEF: what a step costs).
`Sampler.generate(..., keep_cache=True)` returns the rows' cache with the Rollout
(`Rollout.cache`); `Sampler.generate(..., prompt_ids=..., cache=that, cache_rows=...)` checks that
each prompt extends the conversation cached for its row, prefills only the tokens past it (at
their true positions, attending to the cached slots) and decodes as usual.

The kept cache is the call's buffers (prompt, decode slots or segments, and any earlier kept
prefix) concatenated into one buffer per layer. Its decode area holds slots a row wrote after it
stopped (the loop feeds padding to finished rows until all are done) and slots past a stop-string
cut: they are masked by `decode_kept` when the cache is used, so a row attends to exactly the ids
in `fed_ids`, at positions 0, 1, 2, ... as a full prefill of them would.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rltf_jax.models.decode import TILE, LayerCache, forward_unrolled, init_layer_cache, to_key_tiles
from rltf_jax.sampling.decode_loop import decode_tokens
from rltf_jax.sampling.shapes import prompt_bucket_size


class KeptBuffers(NamedTuple):
    """keys, values: L arrays [R, K, S, hd] each; valid [R, S] bool (R = the call's batch bucket)."""

    keys: tuple
    values: tuple
    valid: jax.Array


@dataclasses.dataclass(frozen=True)
class ConversationCache:
    """The device KV cache of one generate call's rows, for their next turn.

    buffers: KeptBuffers; decode_start: first slot of the last call's decode area; fed_ids: per
    real row, the ids in the cache in position order (prompt, then the reply but its last token,
    which was sampled and never fed); decode_kept [rows] int: decode slots of that reply in the
    cache (its kept tokens but the last)."""

    buffers: KeptBuffers
    decode_start: int
    fed_ids: tuple
    decode_kept: np.ndarray

    @property
    def slots(self) -> int:
        return int(self.buffers.valid.shape[1])


def _untiled(keys: jax.Array) -> jax.Array:
    """Keys in the fused kernel's tiles [B, K, S / 16, hd, 16] -> [B, K, S, hd]."""
    b, k, tiles, hd, _ = keys.shape
    return keys.transpose(0, 1, 2, 4, 3).reshape(b, k, tiles * TILE, hd)


def merge_buffers(buffers: Sequence[LayerCache]) -> KeptBuffers:
    """LayerCaches of the same rows in slot order -> one buffer per layer (traced, inside the call),
    padded with invalid slots to a prompt bucket (`prompt_bucket_size`): the next turn's call
    compiles once per bucket, not once per sum of the buffers' sizes."""
    layers = len(buffers[0].keys)
    slots = sum(c.valid.shape[1] for c in buffers)
    extra = prompt_bucket_size(slots) - slots
    filler = lambda like: [jnp.zeros(like.shape[:2] + (extra,) + like.shape[3:], like.dtype)] if extra else []

    def joined(parts):
        return jnp.concatenate(parts + filler(parts[0]), axis=2)

    keys = tuple(joined([_untiled(c.keys[l]) if c.keys[l].ndim == 5 else c.keys[l] for c in buffers])
                 for l in range(layers))
    values = tuple(joined([c.values[l] for c in buffers]) for l in range(layers))
    valid = jnp.concatenate([c.valid for c in buffers] + [jnp.zeros((buffers[0].valid.shape[0], extra), bool)] *
                            bool(extra), axis=1)
    return KeptBuffers(keys, values, valid)


def kept_cache(buffers: KeptBuffers, decode_start: int, prompts: Sequence[Sequence[int]],
               response_tokens: np.ndarray, response_mask: np.ndarray) -> ConversationCache:
    """The ConversationCache of a call's real rows: prompts (their full ids) and their replies
    (response_tokens / response_mask [rows, N] after stop-string cuts)."""
    kept = np.maximum(response_mask.sum(axis=1) - 1, 0).astype(np.int32)
    fed = tuple(np.concatenate([np.asarray(p, np.int32), response_tokens[r, :kept[r]]]).astype(np.int32)
                for r, p in enumerate(prompts))
    return ConversationCache(buffers, int(decode_start), fed, kept)


def continuation_suffixes(cache: ConversationCache, cache_rows: Sequence[int],
                          prompt_ids: Sequence[Sequence[int]]) -> tuple[list[list[int]], np.ndarray]:
    """(the ids of each prompt past its cached conversation, start position [rows] int32).
    Raises ValueError unless prompt j strictly extends the ids cached for row cache_rows[j]."""
    if len(cache_rows) != len(prompt_ids):
        raise ValueError(f"{len(cache_rows)} cache_rows for {len(prompt_ids)} prompts")
    suffixes, starts = [], []
    for j, (row, ids) in enumerate(zip(cache_rows, prompt_ids)):
        if not 0 <= row < len(cache.fed_ids):
            raise ValueError(f"cache_rows[{j}] = {row}: the cache holds rows 0..{len(cache.fed_ids) - 1}")
        fed = cache.fed_ids[row]
        ids = np.asarray(ids, np.int32)
        if len(ids) <= len(fed) or not np.array_equal(ids[:len(fed)], fed):
            raise ValueError(f"prompt {j} does not extend the conversation cached for row {row} "
                             f"({len(fed)} cached ids, prompt of {len(ids)}): pass the joined ids of "
                             "the earlier turns, or generate without the cache")
        suffixes.append(ids[len(fed):].tolist())
        starts.append(len(fed))
    return suffixes, np.asarray(starts, np.int32)


def _tiled_join(prefix: LayerCache, suffix: LayerCache, new_slots: int) -> LayerCache:
    """prefix and the prefilled suffix buffer, then new_slots empty decode slots -> one cache in the
    fused kernel's key tiles (`init_layer_cache(key_tiles=True)`), its index after the suffix."""
    b, kv, _, hd = prefix.values[0].shape
    total = prefix.valid.shape[1] + suffix.valid.shape[1] + new_slots
    pad = -total % TILE + new_slots

    def joined(a, c):
        return jnp.concatenate([a, c.astype(a.dtype), jnp.zeros((b, kv, pad, hd), a.dtype)], axis=2)

    keys = tuple(to_key_tiles(joined(a, c).transpose(0, 2, 1, 3)) for a, c in zip(prefix.keys, suffix.keys))
    values = tuple(joined(a, c) for a, c in zip(prefix.values, suffix.values))
    valid = jnp.concatenate([prefix.valid, suffix.valid, jnp.zeros((b, pad), bool)], axis=1)
    return LayerCache(keys, values, valid, jnp.asarray(prefix.valid.shape[1] + suffix.valid.shape[1], jnp.int32))


def continue_generation(config, weights, kept: KeptBuffers, slot_limit, cache_rows, suffix_tokens, suffix_mask,
                        start_pos, row_active, row_ids, eos_ids, fence_table, fence_limit, max_new, temperature,
                        top_p, rng, *, new_bucket: int, greedy: bool, top_k: int, use_top_p: bool, pad_id: int,
                        cache_dtype, segments: int = 0, return_cache: bool = False, fused_attention: bool = False,
                        mesh=None):
    """Prefill of the new tokens over a kept cache, then decode (`decode_loop.decode_tokens`).

    kept: the earlier call's KeptBuffers [R, ...]; slot_limit [R] int32: slots at or past it are not
    that row's (decode_start + decode_kept); cache_rows [B] int32: the kept row each row continues;
    suffix_tokens / suffix_mask [B, P] (left-padded): each row's new ids; start_pos [B] int32: the
    position of its first new id (= the number of ids cached for it). Other arguments as
    `sampling.prefill_decode`. Returns its outputs; with return_cache, the rows' cache (kept prefix,
    new tokens, decode slots) merged into one buffer. fused_attention: the new tokens are prefilled
    with XLA's attention over the prefix, then prefix, new tokens and decode slots are copied into
    one cache in key tiles and decoded by the fused kernel (kernels/decode_attention.cc), as a
    fresh generation decodes (segments are then 0)."""
    take = lambda x: jnp.take(x, cache_rows, axis=0)
    slots = jnp.arange(kept.valid.shape[1])
    prefix = LayerCache(tuple(map(take, kept.keys)), tuple(map(take, kept.values)),
                        take(kept.valid) & (slots[None, :] < take(slot_limit)[:, None]), jnp.zeros((), jnp.int32))
    b, p = suffix_tokens.shape
    positions = (start_pos[:, None] + jnp.maximum(jnp.cumsum(suffix_mask, axis=1) - 1, 0)).astype(jnp.int32)
    cache = init_layer_cache(config, b, p if segments or fused_attention else p + new_bucket, cache_dtype)
    hidden, cache = forward_unrolled(config, weights, suffix_tokens, positions, suffix_mask, cache, past=(prefix,))
    past = (prefix,)
    if fused_attention:
        cache, past, segments = _tiled_join(prefix, cache, new_bucket), (), 0
    decode_pos = (start_pos + suffix_mask.sum(axis=1)).astype(jnp.int32)
    out_tokens, out_lp, out_mask, steps, buffers = decode_tokens(
        config, weights, cache, past, hidden[:, -1], decode_pos, row_active, row_ids, eos_ids, fence_table,
        fence_limit, max_new, temperature, top_p, rng, new_bucket=new_bucket, greedy=greedy, top_k=top_k,
        use_top_p=use_top_p, pad_id=pad_id, cache_dtype=cache_dtype, segments=segments,
        mesh=mesh if fused_attention else None)
    if return_cache:
        return out_tokens, out_lp, out_mask, steps, merge_buffers(buffers)
    return out_tokens, out_lp, out_mask, steps
