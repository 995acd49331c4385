"""One generation on device: prefill of the distinct prompts, then the decode loop (`generate_on_device`).

`Sampler` jits this function once per shape bucket; everything here is traced, nothing touches the host.
"""

from __future__ import annotations

import jax.numpy as jnp

from rltf_jax.models.decode import forward_unrolled, init_layer_cache
from rltf_jax.sampling.conversation_cache import merge_buffers
from rltf_jax.sampling.decode_loop import decode_tokens


def generate_on_device(config, weights, prompt_tokens, prompt_mask, prompt_rows, row_active, row_ids, eos_ids,
              fence_table, fence_limit, max_new, temperature, top_p, rng, *, new_bucket: int, greedy: bool,
              top_k: int, use_top_p: bool, pad_id: int, cache_dtype, segments: int = 0,
              shared_prompts: bool = False, fused_attention: bool = False, mesh=None,
              return_cache: bool = False):
    """Prefill + decode on device. prompt_tokens/mask [U, P]: the distinct prompts; prompt_rows [B]
    int32: the prompt of each row (with shared_prompts, U <= B prompts are prefilled once each and
    their cache rows copied to every row that shares them: n samples per problem pay one prefill;
    without, U = B and row r is prompt r); row_active [B] bool (False = batch padding);
    row_ids [B] int32: each row's global index; row r's token at step i is drawn with the key
    fold_in(split(rng)_i, row_ids[r]), so a row samples the same tokens whatever batch it is in;
    weights: models.decode.UnrolledWeights; fence_table [V] int32 (``` runs per token) and
    fence_limit [] int32: a row stops at the token that brings its ``` count to fence_limit (0: never).
    fused_attention: decode with kernels/decode_attention.cc (one cache buffer in key tiles; no
    segments: the kernel writes in place and reads only the filled slots), per device of `mesh`.

    Returns (tokens [B, N] int32, logprobs [B, N] float32, mask [B, N] bool, steps [] int32), and
    with return_cache the rows' KV cache merged into one buffer (`conversation_cache.merge_buffers`).
    """
    u, p = prompt_tokens.shape
    positions = jnp.maximum(jnp.cumsum(prompt_mask, axis=1) - 1, 0).astype(jnp.int32)
    prompt_len = prompt_mask.sum(axis=1).astype(jnp.int32)
    # segments == 0: one cache buffer for prompt and decode slots; else the prompt has its own (see below).
    cache = init_layer_cache(config, u, p if segments else p + new_bucket, cache_dtype, key_tiles=fused_attention)
    hidden, cache = forward_unrolled(config, weights, prompt_tokens, positions, prompt_mask, cache,
                                     cache_is_empty=True)
    hidden = hidden[:, -1]
    if shared_prompts:  # [U, ...] -> [B, ...]: every row gets its prompt's cache rows and last hidden state
        rows = lambda x: jnp.take(x, prompt_rows, axis=0)
        cache = cache._replace(keys=tuple(map(rows, cache.keys)), values=tuple(map(rows, cache.values)),
                               valid=rows(cache.valid))
        hidden, prompt_len = rows(hidden), rows(prompt_len)
    # Decode slots: with `segments` > 0 they are split into that many cache buffers, each filled by
    # its own while_loop: a step writes only the current segment's buffer (XLA:CPU rewrites a whole
    # bf16 buffer on every in-place write, so rewriting prompt + decode slots at every token is a
    # measurable share of a large batch's step) and attends to the prompt's buffer (written once, by the prefill),
    # the finished segments and the current one, never to segments not reached yet. Each extra
    # buffer costs two more small dots per layer, a loss where the cache is small (`decode_segments`).
    out_tokens, out_lp, out_mask, steps, buffers = decode_tokens(
        config, weights, cache, (), hidden, prompt_len, row_active, row_ids, eos_ids, fence_table, fence_limit,
        max_new, temperature, top_p, rng, new_bucket=new_bucket, greedy=greedy, top_k=top_k,
        use_top_p=use_top_p, pad_id=pad_id, cache_dtype=cache_dtype, segments=segments, mesh=mesh)
    if return_cache:
        return out_tokens, out_lp, out_mask, steps, merge_buffers(buffers)
    return out_tokens, out_lp, out_mask, steps
