"""The sampler's token loop: draw the first token from the prefill's last hidden state, then one
`lax.while_loop` step per token over a KV cache, until every row has stopped.

Shared by a fresh generation (`sampling.prefill_decode`: prefill of the whole prompt) and a continued one
(`conversation_cache`: prefill of the new turn's tokens only, over an episode's kept cache).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from rltf_jax.models.decode import forward_unrolled, init_layer_cache, logits_unrolled
from rltf_jax.sampling.token_draw import sample_tokens


def decode_tokens(config, weights, cache, past: tuple, hidden, decode_pos, row_active, row_ids, eos_ids,
                  fence_table, fence_limit, max_new, temperature, top_p, rng, *, new_bucket: int,
                  greedy: bool, top_k: int, use_top_p: bool, pad_id: int, cache_dtype, segments: int = 0,
                  mesh=None):
    """Samples up to max_new tokens per row after a prefill.

    cache: the prefilled buffer (a LayerCache with its index after the prompt); with segments == 0
    it also holds new_bucket decode slots, which the loop fills; with segments > 0 it is read-only
    and the decode slots are `segments` new buffers (why: `sampling.prefill_decode`). past: read-only
    LayerCaches of earlier tokens every step attends to as well. hidden [B, D]: the last prompt
    token's hidden state; decode_pos [B] int32: the position of the first generated token;
    row_active [B] bool (False = batch padding); row_ids [B] int32: row r's token at step i is drawn
    with fold_in(split(rng)_i, row_ids[r]); fence_table [V] int32 and fence_limit [] int32: a row
    stops at the token that brings its ``` count to fence_limit (0: never).

    Returns (tokens [B, N] int32, logprobs [B, N] float32, mask [B, N] bool, steps [] int32,
    buffers: every LayerCache the rows' tokens are in, in slot order: past, cache, segments).
    Generated token i sits at decode slot i (of the decode area that starts after the prompt
    slots of `cache`); the last sampled token of a row is never fed, so never in the cache."""
    b = row_active.shape[0]

    def sample(logits, step_rng):
        keys = jax.vmap(lambda row: jax.random.fold_in(step_rng, row))(row_ids)
        return sample_tokens(logits, keys, temperature, top_p, greedy=greedy, top_k=top_k,
                             use_top_p=use_top_p)

    rng, step_rng = jax.random.split(rng)
    tok, lp = sample(logits_unrolled(weights, hidden), step_rng)
    out_tokens = jnp.full((b, new_bucket), pad_id, jnp.int32).at[:, 0].set(tok)
    out_lp = jnp.zeros((b, new_bucket), jnp.float32).at[:, 0].set(lp)
    out_mask = jnp.zeros((b, new_bucket), bool).at[:, 0].set(row_active)
    fences = fence_table[tok]
    done = ~row_active | _finished(tok, fences, eos_ids, fence_limit)

    def cond(carry, end):
        _, (_, _, _, done, _, i, _) = carry
        return (i < end) & (i + 1 < max_new) & ~jnp.all(done)

    def body(carry, past):
        cache, (out_tokens, out_lp, out_mask, done, fences, i, rng) = carry
        tok_in = jax.lax.dynamic_slice_in_dim(out_tokens, i, 1, axis=1)
        pos = (decode_pos + i)[:, None]
        hidden, cache = forward_unrolled(config, weights, tok_in, pos, jnp.ones_like(tok_in, bool), cache,
                                         past=past, mesh=mesh)
        rng, step_rng = jax.random.split(rng)
        tok, lp = sample(logits_unrolled(weights, hidden[:, 0]), step_rng)
        tok = jnp.where(done, pad_id, tok)
        lp = jnp.where(done, 0.0, lp)
        out_tokens = jax.lax.dynamic_update_slice(out_tokens, tok[:, None], (0, i + 1))
        out_lp = jax.lax.dynamic_update_slice(out_lp, lp[:, None], (0, i + 1))
        out_mask = jax.lax.dynamic_update_slice(out_mask, ~done[:, None], (0, i + 1))
        fences = fences + jnp.where(done, 0, fence_table[tok])
        done = done | _finished(tok, fences, eos_ids, fence_limit)
        return cache, (out_tokens, out_lp, out_mask, done, fences, i + 1, rng)

    state = (out_tokens, out_lp, out_mask, done, fences, jnp.zeros((), jnp.int32), rng)
    state, buffers = _loop_over_segments(cond, body, cache, state, past, config=config, rows=b,
                                         new_bucket=new_bucket, segments=segments, cache_dtype=cache_dtype)
    out_tokens, out_lp, out_mask, _, _, steps, _ = state
    return out_tokens, out_lp, out_mask, steps + 1, buffers


def _finished(tok, fences, eos_ids, fence_limit):
    """[B] bool: the token is a stop token, or it brings the row's ``` count to ``fence_limit`` (> 0)."""
    return jnp.isin(tok, eos_ids) | ((fence_limit > 0) & (fences >= fence_limit))


def _loop_over_segments(cond, body, cache, state, past: tuple, *, config, rows: int, new_bucket: int,
                        segments: int, cache_dtype):
    """Runs the decode `while_loop`: over ``cache``'s own decode slots (segments == 0), or once per
    decode segment, each a fresh buffer of new_bucket / segments slots that later segments attend to.
    Returns (final loop state, every LayerCache the rows' tokens are in, in slot order)."""
    if not segments:
        cache, state = jax.lax.while_loop(functools.partial(cond, end=new_bucket),
                                          functools.partial(body, past=past), (cache, state))
        return state, past + (cache,)
    past, seg = past + (cache,), new_bucket // segments
    for j in range(segments):
        cache = init_layer_cache(config, rows, seg, cache_dtype)
        cache, state = jax.lax.while_loop(functools.partial(cond, end=(j + 1) * seg),
                                          functools.partial(body, past=past), (cache, state))
        past = past + (cache,)
    return state, past
