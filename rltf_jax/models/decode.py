"""An unrolled decoder for generation: per-layer weight and cache buffers, no per-step copies.

Under `lax.scan`, XLA's CPU backend copies each layer's weight slice (and cache slice) out of the
stacked `[L, ...]` arrays before every dot, so a scanned decode step moves every weight byte twice.
Decoding is memory-bound, so the sampler instead runs this unrolled form: the stacked weights are split
once (`unstack_weights`, on each `set_weights`) into L separate buffers per parameter, the KV cache is
L separate buffers per layer, and the step is a Python loop over layers whose dots read those buffers in
place and whose cache writes are in-place dynamic-update-slices. Numerically it is the same block
(`llama.decoder_block`); only the attention reads a cache. Keys and values are both stored
`[B, K, S, hd]`, so writing a token's key is an in-place write of contiguous rows: with keys stored
transposed (`[B, K, hd, S]`, which makes the score dot canonical) XLA:CPU rewrote the whole key
buffer of every layer at every token,
while the score dot contracting both minor axes costs the same as the canonical one. A step may
attend over several cache buffers (`past`: the prompt's, finished decode segments) plus the one it
writes, with one softmax over all their slots; see `sampling.prefill_decode` for why large caches are split.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import PartitionSpec

from rltf_jax.kernels.decode_attention import decode_attention
from rltf_jax.models.attention import MASK_VALUE
from rltf_jax.models.config import ModelConfig
from rltf_jax.models.llama import LAYER_PARAM_AXES, decoder_block, rms_norm, rope_inv_freq
from rltf_jax.parallel.mesh import BATCH_AXES

TILE = 16  # slots per key tile of the fused kernel's layout (kernels/decode_attention.cc)


class UnrolledWeights(NamedTuple):
    """embed [V, D]; final_norm [D]; lm_head [D, V] or None (tied); layers: L dicts of per-layer arrays."""

    embed: jax.Array
    final_norm: jax.Array
    lm_head: jax.Array | None
    layers: tuple


class LayerCache(NamedTuple):
    """keys, values: L arrays [B, K, S, hd] each (keys [B, K, S / 16, hd, 16] in the fused kernel's
    tiles, see `init_layer_cache`); valid [B, S] bool; index [] int32 (next free slot)."""

    keys: tuple
    values: tuple
    valid: jax.Array
    index: jax.Array


@jax.jit
def _split(stacked: dict) -> tuple:
    n = next(iter(stacked.values())).shape[0]
    return tuple({name: arr[l] for name, arr in stacked.items()} for l in range(n))


def unstack_weights(state: nnx.State) -> UnrolledWeights:
    """A CausalLM state -> UnrolledWeights (new device buffers: one per layer and parameter)."""
    layers = state["layers"]
    stacked = {name: layers[name][...] for name in LAYER_PARAM_AXES if name in layers}
    lm_head = state["lm_head"][...] if "lm_head" in state else None
    return UnrolledWeights(state["embed"][...], state["final_norm"][...], lm_head, _split(stacked))


def init_layer_cache(config: ModelConfig, batch: int, max_len: int, dtype, *, key_tiles: bool = False) -> LayerCache:
    """An empty cache of max_len slots. key_tiles: the layout of kernels/decode_attention.cc, keys in
    tiles of 16 slots [B, K, S / 16, hd, 16] (S = max_len rounded up to a multiple of 16)."""
    if key_tiles:
        max_len = -(-max_len // TILE) * TILE
    shape = (batch, config.num_kv_heads, max_len, config.head_dim)
    key_shape = shape[:2] + (max_len // TILE, config.head_dim, TILE) if key_tiles else shape
    n = config.num_layers
    return LayerCache(tuple(jnp.zeros(key_shape, dtype) for _ in range(n)),
                      tuple(jnp.zeros(shape, dtype) for _ in range(n)),
                      jnp.zeros((batch, max_len), bool), jnp.zeros((), jnp.int32))


def to_key_tiles(k: jax.Array) -> jax.Array:
    """k [B, T, K, hd] (slots from 0) -> [B, K, ceil(T / 16), hd, 16], zero-padded past T."""
    b, t, kv, hd = k.shape
    k = jnp.pad(k, ((0, 0), (0, -t % TILE), (0, 0), (0, 0)))
    return k.reshape(b, -1, TILE, kv, hd).transpose(0, 3, 1, 4, 2)


def _cached_attention(q, pieces):
    """q [B, T, H, hd]; pieces: (keys, values, visible) per cache buffer, keys/values [B, K, S_i, hd]
    (the buffer being written already holds the T new tokens), visible [B, T, S_i] bool (valid slot
    and causal). One softmax over the slots of all pieces. Returns [B, T, H, hd]."""
    b, t, h, hd = q.shape
    kv = pieces[0][0].shape[1]
    g = h // kv
    dt = q.dtype
    qg = (q.astype(jnp.float32) * (hd ** -0.5)).astype(dt).reshape(b, t, kv, g, hd)
    qg = qg.transpose(0, 2, 1, 3, 4).reshape(b, kv, t * g, hd)  # rows ordered (t, g)
    scores = []
    for keys, _, visible in pieces:
        s = jnp.einsum("bkqd,bksd->bkqs", qg, keys.astype(dt), preferred_element_type=jnp.float32)  # [B, K, T*G, S_i]
        mask = jnp.repeat(visible, g, axis=1)[:, None]  # [B, 1, T*G, S_i]
        scores.append(jnp.where(mask, s, MASK_VALUE))
    probs = jax.nn.softmax(jnp.concatenate(scores, axis=-1) if len(scores) > 1 else scores[0], axis=-1)
    out, start = None, 0
    for keys, values, _ in pieces:
        size = keys.shape[2]
        part = jnp.matmul(probs[..., start:start + size].astype(dt), values.astype(dt),
                          preferred_element_type=jnp.float32)  # [B, K, T*G, hd]
        out = part if out is None else out + part
        start += size
    return out.reshape(b, kv, t, g, hd).transpose(0, 2, 1, 3, 4).reshape(b, t, h, hd).astype(dt)


def _fused_decode_attention(mesh, *args, round_probs_bf16: bool):
    """kernels.decode_attention.decode_attention, per device over the rows of a mesh (a custom call
    has no partitioning rule: under shard_map each device attends its own rows; heads replicated)."""
    call = functools.partial(decode_attention, round_probs_bf16=round_probs_bf16)
    if mesh is None or mesh.size == 1:
        return call(*args)


    rows = PartitionSpec(BATCH_AXES)
    return jax.shard_map(call, mesh=mesh, in_specs=(rows,) * 6 + (PartitionSpec(),), out_specs=(rows,) * 3,
                         check_vma=False)(*args)


def forward_unrolled(config: ModelConfig, w: UnrolledWeights, tokens, positions, attention_mask,
                     cache: LayerCache, *, past: tuple = (), cache_is_empty: bool = False, mesh=None):
    """As CausalLM.hidden_states with a cache. tokens/positions/attention_mask [B, T]; the T tokens are
    written at slots [cache.index, cache.index + T) and attend to every valid slot up to their own,
    and to every valid slot of the read-only caches in `past` (LayerCaches of earlier tokens).
    Returns (hidden [B, T, D] after the final norm, the updated cache).

    Each layer writes its new keys/values into the cache *before* attending over it, so the only
    reader of the old buffer is the in-place update (XLA would otherwise copy the cache every step).
    A cache in key tiles (`init_layer_cache(key_tiles=True)`) is filled by a prefill into an empty
    cache and then decoded one token at a time by the fused CPU kernel, which writes and attends
    (on `mesh`, each device its own rows).
    """
    c, dt = config, config.compute_dtype
    b, t = tokens.shape
    mask = attention_mask.astype(bool)
    x = jnp.take(w.embed, tokens, axis=0).astype(dt)
    inv_freq = jnp.asarray(rope_inv_freq(c))
    self_mask = jnp.tril(jnp.ones((t, t), bool))[None] & mask[:, None, :]
    keys, values = list(cache.keys), list(cache.values)
    idx = cache.index
    valid = jax.lax.dynamic_update_slice(cache.valid, mask, (0, idx))
    slots = jnp.arange(valid.shape[1])
    visible = valid[:, None, :] & (slots[None, None, :] <= idx + jnp.arange(t)[None, :, None])  # [B, T, S]

    tiled = cache.keys[0].ndim == 5
    if tiled and not (cache_is_empty or (t == 1 and not past)):
        raise ValueError("a cache in key tiles takes a prefill into an empty cache, then one token per step")

    def write(l, k, v):
        if tiled:  # prefill at slot 0: whole tiles
            keys[l] = jax.lax.dynamic_update_slice(keys[l], to_key_tiles(k).astype(keys[l].dtype), (0, 0, 0, 0, 0))
        else:
            keys[l] = jax.lax.dynamic_update_slice(keys[l], k.transpose(0, 2, 1, 3).astype(keys[l].dtype),
                                                   (0, 0, idx, 0))
        values[l] = jax.lax.dynamic_update_slice(values[l], v.transpose(0, 2, 1, 3).astype(values[l].dtype),
                                                 (0, 0, idx, 0))

    for l, p in enumerate(w.layers):
        if cache_is_empty:
            x, k, v = decoder_block(c, p, x, positions, self_mask, inv_freq)
            write(l, k, v)
        elif tiled:
            attend_fused = _fused_attend(keys, values, l, valid, idx, dt, mesh)
            x, _, _ = decoder_block(c, p, x, positions, self_mask, inv_freq, attend=attend_fused)
        else:
            def attend(q, k, v, l=l):
                write(l, k, v)
                pieces = [(pc.keys[l], pc.values[l], jnp.broadcast_to(pc.valid[:, None, :], (b, t, pc.valid.shape[1])))
                          for pc in past]
                return _cached_attention(q, pieces + [(keys[l], values[l], visible)])

            x, _, _ = decoder_block(c, p, x, positions, self_mask, inv_freq, attend=attend)
    hidden = rms_norm(x, w.final_norm, c.rms_norm_eps)
    return hidden, LayerCache(tuple(keys), tuple(values), valid, idx + t)


def _fused_attend(keys: list, values: list, layer: int, valid, idx, dt, mesh):
    """The `attend` of one decode step through the fused CPU kernel: it writes the token's key and
    value into ``keys[layer]`` / ``values[layer]`` (replaced in the lists) and attends over the valid slots."""
    def attend(q, k, v):
        hd = q.shape[-1]
        q_scaled = (q[:, 0].astype(jnp.float32) * (hd ** -0.5)).astype(dt).astype(jnp.float32)
        store = keys[layer].dtype
        out, keys[layer], values[layer] = _fused_decode_attention(
            mesh, q_scaled, k[:, 0].astype(store), v[:, 0].astype(store), keys[layer], values[layer],
            valid, idx, round_probs_bf16=jnp.dtype(dt) == jnp.bfloat16)
        return out[:, None].astype(dt)

    return attend


def logits_unrolled(w: UnrolledWeights, hidden: jax.Array) -> jax.Array:
    """hidden [..., D] -> float32 logits [..., V]."""
    if w.lm_head is None:
        return jnp.einsum("...d,vd->...v", hidden.astype(w.embed.dtype), w.embed,
                          preferred_element_type=jnp.float32)
    return jnp.matmul(hidden.astype(w.lm_head.dtype), w.lm_head, preferred_element_type=jnp.float32)
