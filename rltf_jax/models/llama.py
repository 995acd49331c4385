"""CausalLM: a Flax NNX Llama-family decoder (SmolLM2, Llama 3, Qwen2) with scanned, stacked layers.

Every decoder block's parameters are stacked on a leading `layers` axis and the blocks run under one
`jax.lax.scan`, so compile time is flat in depth (MaxText's `scan_layers`). Every parameter carries
logical axis names in its `out_sharding` metadata; `rltf_jax.parallel.mesh` maps them to mesh axes.

Numerics: parameters are stored in `config.param_dtype`, activations run in `config.dtype`, every
matmul accumulates in float32 (`preferred_element_type`), norms, softmax and RoPE run in float32 and
the logits are float32.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rltf_jax.models.attention import cached_attention, causal_attention
from rltf_jax.models.config import ModelConfig
from rltf_jax.models.matmul import matmul_f32, matmul_transposed_f32, stash, unstash

# Logical axis names (mapped to mesh axes by rltf_jax.parallel.mesh.LOGICAL_AXIS_RULES).
LAYER_PARAM_AXES = {
    "attn_norm": ("layers", "norm"),
    "wq": ("layers", "embed", "q_heads"),
    "wk": ("layers", "embed", "kv_heads"),
    "wv": ("layers", "embed", "kv_heads"),
    "bq": ("layers", "q_heads"),
    "bk": ("layers", "kv_heads"),
    "bv": ("layers", "kv_heads"),
    "wo": ("layers", "q_heads", "embed"),
    "mlp_norm": ("layers", "norm"),
    "w_gate": ("layers", "embed", "mlp"),
    "w_up": ("layers", "embed", "mlp"),
    "w_down": ("layers", "mlp", "embed"),
}
CACHE_KV_AXES = ("layers", "batch", "cache_heads", "cache_seq", "head_dim")
CACHE_VALID_AXES = ("batch", "cache_seq")


class KVCache(NamedTuple):
    """A preallocated key/value cache; slots are written left to right, the same slot for every row.

    k, v:  [L, B, K, S, hd] keys/values (after RoPE) in the cache dtype; head-major so attention
           reads each (row, head) block contiguously, without transposing the cache.
    valid: [B, S] bool, True where a slot holds a real (non-padding) token.
    index: [] int32, the next slot to write (== number of slots written).
    """

    k: jax.Array
    v: jax.Array
    valid: jax.Array
    index: jax.Array


def init_cache(config: ModelConfig, batch: int, max_len: int, dtype=None) -> KVCache:
    """An empty cache for `batch` rows of up to `max_len` tokens (prompt + generated)."""
    dtype = dtype or config.compute_dtype
    shape = (config.num_layers, batch, config.num_kv_heads, max_len, config.head_dim)
    return KVCache(k=jnp.zeros(shape, dtype), v=jnp.zeros(shape, dtype),
                   valid=jnp.zeros((batch, max_len), bool), index=jnp.zeros((), jnp.int32))


def _param(value: jax.Array, axes: tuple[str, ...]) -> nnx.Param:
    if value.ndim != len(axes):
        raise ValueError(f"parameter of shape {value.shape} given {len(axes)} logical axes {axes}")
    return nnx.Param(value, out_sharding=axes, eager_sharding=False)


def rope_inv_freq(config: ModelConfig) -> np.ndarray:
    """Inverse RoPE frequencies [head_dim // 2] float32, with HF's linear / llama3 scaling."""
    dim = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / dim))
    inv_freq = inv_freq.astype(np.float32)
    scaling = config.rope_scaling
    if not scaling:
        return inv_freq
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "linear":
        return (inv_freq / np.float32(scaling["factor"])).astype(np.float32)
    if kind == "llama3":
        factor = scaling["factor"]
        low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
        old_len = scaling["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old_len / low, old_len / high
        wavelen = 2 * math.pi / inv_freq
        scaled = np.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        return np.where(medium, smoothed, scaled).astype(np.float32)
    return inv_freq


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: jax.Array) -> jax.Array:
    """Rotary embedding (HF rotate-half convention). x [B, T, N, hd]; positions [B, T] int32."""
    angles = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, T, hd/2]
    cos, sin = jnp.cos(angles)[:, :, None, :], jnp.sin(angles)[:, :, None, :]
    xf = x.astype(jnp.float32)
    x1, x2 = jnp.split(xf, 2, axis=-1)
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def rms_norm(x: jax.Array, weight: jax.Array, eps: float) -> jax.Array:
    """RMSNorm over the last axis, computed in float32, returned in x's dtype."""
    xf = x.astype(jnp.float32)
    y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + eps)
    return (weight.astype(jnp.float32) * y).astype(x.dtype)


@jax.custom_vjp
def swiglu(gate: jax.Array, up: jax.Array) -> jax.Array:
    """silu(gate) · up, computed in float32, returned in gate's dtype. gate, up [..., F].

    gate and up arrive in the compute dtype (as under torch's autocast) and the backward pass keeps
    them as they are: autodiff of the float32 formula kept float32 copies, 2 × [L, B, T, F] per step
    (755 MB for SmolLM2 at 8 × 256 tokens) with bfloat16 compute.
    """
    g, u = gate.astype(jnp.float32), up.astype(jnp.float32)
    return (jax.nn.silu(g) * u).astype(gate.dtype)


def _swiglu_fwd(gate, up):
    return swiglu(gate, up), (stash(gate), stash(up))


def _swiglu_bwd(residuals, d_out):
    gate, up = map(unstash, residuals)
    g, u, d = gate.astype(jnp.float32), up.astype(jnp.float32), d_out.astype(jnp.float32)
    sig = jax.nn.sigmoid(g)
    d_gate = d * u * sig * (1.0 + g * (1.0 - sig))   # d silu(g)/dg = σ(g)(1 + g(1 - σ(g)))
    return d_gate.astype(gate.dtype), (d * g * sig).astype(up.dtype)


swiglu.defvjp(_swiglu_fwd, _swiglu_bwd)


def _dense(x: jax.Array, w: jax.Array, dtype) -> jax.Array:
    """x [..., IN] @ w [IN, OUT] with float32 accumulation (fast bf16 dots on CPU, forward and
    backward: models/matmul.py), result in `dtype`."""
    return matmul_f32(x, w).astype(dtype)


class DecoderLayers(nnx.Module):
    """The L decoder blocks' parameters, each stacked on a leading `layers` axis."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        c, pd = config, config.storage_dtype
        L, D, F = c.num_layers, c.hidden_size, c.intermediate_size
        q_dim, kv_dim = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
        normal = nnx.initializers.normal(0.02)

        def weight(name, shape):
            return _param(normal(rngs.params(), shape, pd), LAYER_PARAM_AXES[name])

        def const(name, shape, fill):
            return _param(jnp.full(shape, fill, pd), LAYER_PARAM_AXES[name])

        self.attn_norm = const("attn_norm", (L, D), 1.0)
        self.wq = weight("wq", (L, D, q_dim))
        self.wk = weight("wk", (L, D, kv_dim))
        self.wv = weight("wv", (L, D, kv_dim))
        if c.attention_bias:
            self.bq = weight("bq", (L, q_dim))
            self.bk = weight("bk", (L, kv_dim))
            self.bv = weight("bv", (L, kv_dim))
        else:
            self.bq = self.bk = self.bv = None
        self.wo = weight("wo", (L, q_dim, D))
        self.mlp_norm = const("mlp_norm", (L, D), 1.0)
        self.w_gate = weight("w_gate", (L, D, F))
        self.w_up = weight("w_up", (L, D, F))
        self.w_down = weight("w_down", (L, F, D))

    def stacked(self) -> dict[str, jax.Array]:
        """{name: [L, ...] array} of every present parameter (the scan's xs)."""
        return {name: getattr(self, name)[...] for name in LAYER_PARAM_AXES
                if getattr(self, name) is not None}


def decoder_block(config: ModelConfig, p: dict, x, positions, self_mask, inv_freq,
                  cache_k=None, cache_v=None, cache_mask=None, attend=None):
    """One pre-norm block. x [B, T, D] -> (x, k [B, T, K, hd] after RoPE, v [B, T, K, hd]).

    attend: optional (q [B, T, H, hd], k, v [B, T, K, hd]) -> [B, T, H, hd] replacing the built-in
    attention (the unrolled decoder in models/decode.py brings its own cache layout).
    """
    c, dt = config, config.compute_dtype
    b, t, _ = x.shape
    h = rms_norm(x, p["attn_norm"], c.rms_norm_eps)
    q, k, v = _dense(h, p["wq"], dt), _dense(h, p["wk"], dt), _dense(h, p["wv"], dt)
    if "bq" in p:
        q, k, v = q + p["bq"].astype(dt), k + p["bk"].astype(dt), v + p["bv"].astype(dt)
    q = apply_rope(q.reshape(b, t, c.num_heads, c.head_dim), positions, inv_freq)
    k = apply_rope(k.reshape(b, t, c.num_kv_heads, c.head_dim), positions, inv_freq)
    v = v.reshape(b, t, c.num_kv_heads, c.head_dim)
    if attend is not None:
        attn = attend(q, k, v)
    elif cache_k is not None:
        attn = cached_attention(q, k, v, self_mask, cache_k, cache_v, cache_mask)
    else:
        attn = causal_attention(q, k, v, self_mask)
    x = x + _dense(attn.reshape(b, t, -1), p["wo"], dt)
    h = rms_norm(x, p["mlp_norm"], c.rms_norm_eps)
    gate, up = _dense(h, p["w_gate"], dt), _dense(h, p["w_up"], dt)
    x = x + _dense(swiglu(gate, up), p["w_down"], dt)
    return x, k, v


def _scan_with_cache(c: ModelConfig, params, x, positions, attention_mask, self_mask, inv_freq, cache: KVCache,
                     cache_is_empty: bool):
    """The layer scan of `CausalLM.hidden_states` with a cache: x [B, T, D] attends to the cache's valid
    slots (none when ``cache_is_empty``) and its own causal tokens; the T new keys / values are written at
    slots [cache.index, cache.index + T). Returns (x after the last block, the updated KVCache)."""
    cache_mask = cache.valid[:, None, :]

    def body(x, xs):
        p, ck, cv = xs
        x, k, v = decoder_block(c, p, x, positions, self_mask, inv_freq, ck, cv, cache_mask)
        return x, (k, v)

    def prefill_body(x, p):
        x, k, v = decoder_block(c, p, x, positions, self_mask, inv_freq)
        return x, (k, v)

    if cache_is_empty:
        x, (ks, vs) = jax.lax.scan(prefill_body, x, params)
    else:
        x, (ks, vs) = jax.lax.scan(body, x, (params, cache.k, cache.v))
    start = (0, 0, 0, cache.index, 0)
    ks, vs = ks.swapaxes(2, 3), vs.swapaxes(2, 3)  # [L, B, T, K, hd] -> [L, B, K, T, hd]
    return x, KVCache(
        k=jax.lax.dynamic_update_slice(cache.k, ks.astype(cache.k.dtype), start),
        v=jax.lax.dynamic_update_slice(cache.v, vs.astype(cache.v.dtype), start),
        valid=jax.lax.dynamic_update_slice(cache.valid, attention_mask, (0, cache.index)),
        index=cache.index + x.shape[1])


class CausalLM(nnx.Module):
    """Llama-family decoder-only LM: embed -> L scanned blocks -> final RMSNorm -> logits."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        c, pd = config, config.storage_dtype
        self.config = config
        normal = nnx.initializers.normal(0.02)
        self.embed = _param(normal(rngs.params(), (c.vocab_size, c.hidden_size), pd), ("vocab", "embed"))
        self.layers = DecoderLayers(config, rngs=rngs)
        self.final_norm = _param(jnp.ones((c.hidden_size,), pd), ("norm",))
        self.lm_head = (None if c.tie_word_embeddings else
                        _param(normal(rngs.params(), (c.hidden_size, c.vocab_size), pd), ("embed", "vocab")))

    def init_cache(self, batch: int, max_len: int, dtype=None) -> KVCache:
        return init_cache(self.config, batch, max_len, dtype)

    def hidden_states(self, tokens, positions, attention_mask, cache: KVCache | None = None, *,
                      cache_is_empty: bool = False, layer_dtype=None, segment_ids=None):
        """tokens, positions [B, T] int32; attention_mask [B, T] bool (True = real token).

        Returns (hidden [B, T, D] after the final norm, in the compute dtype; the updated cache or None).
        With a cache, the T tokens are written at slots [cache.index, cache.index + T) and attend to
        every valid earlier slot; without, attention is causal over the T tokens (left padding is fine:
        positions come from the caller, padding keys are masked out). cache_is_empty=True (prefill of a
        fresh cache) skips attending to the cache's empty slots. (The sampler decodes with the
        unrolled form in models/decode.py, which avoids XLA CPU's per-layer slice copies.)

        layer_dtype (cache-free forward only): cast each layer's parameters to this dtype inside the
        layer scan. Mixed-precision training stores float32 parameters and computes in bfloat16:
        cast before the scan, their gradients would leave it as stacked bfloat16 arrays, which
        XLA:CPU assembles by converting the whole stack to float32 and back at every layer.

        segment_ids [B, T] int32 (cache-free forward only): packed rows (ppo/shared_prompts.py). A
        query sees a key of segment 0 (the shared prompt) or of its own segment, never another's.
        """
        c, dt = self.config, self.config.compute_dtype
        if tokens.ndim != 2 or positions.shape != tokens.shape or attention_mask.shape != tokens.shape:
            raise ValueError(f"tokens {tokens.shape}, positions {positions.shape} and attention_mask "
                             f"{attention_mask.shape} must all be [batch, seq]")
        t = tokens.shape[1]
        attention_mask = attention_mask.astype(bool)
        x = jnp.take(self.embed[...], tokens, axis=0).astype(dt)
        causal = jnp.tril(jnp.ones((t, t), bool))
        self_mask = causal[None] & attention_mask[:, None, :]
        if segment_ids is not None:
            if cache is not None or segment_ids.shape != tokens.shape:
                raise ValueError(f"segment_ids {segment_ids.shape} need a cache-free forward of tokens {tokens.shape}")
            keys = segment_ids[:, None, :]
            self_mask = self_mask & ((keys == 0) | (keys == segment_ids[:, :, None]))
        inv_freq = jnp.asarray(rope_inv_freq(c))
        params = self.layers.stacked()

        if cache is None:
            def body(x, p):
                if layer_dtype is not None:
                    p = {name: w.astype(layer_dtype) for name, w in p.items()}
                x, _, _ = decoder_block(c, p, x, positions, self_mask, inv_freq)
                return x, None

            if c.remat_blocks(*tokens.shape):
                body = jax.checkpoint(body, prevent_cse=False)  # inside a scan CSE cannot undo it
            x, _ = jax.lax.scan(body, x, params)
            new_cache = None
        else:
            x, new_cache = _scan_with_cache(c, params, x, positions, attention_mask, self_mask, inv_freq, cache,
                                            cache_is_empty)
        return rms_norm(x, self.final_norm[...], c.rms_norm_eps), new_cache

    def logits(self, hidden: jax.Array) -> jax.Array:
        """hidden [..., D] -> float32 logits [..., V] (tied: hidden @ embed.T)."""
        weight, tied = self.head_weight()
        return matmul_transposed_f32(hidden, weight) if tied else matmul_f32(hidden, weight)

    def head_weight(self) -> tuple[jax.Array, bool]:
        """(the LM head's weight, tied): the embedding [V, D] if tied, else the head [D, V]."""
        if self.lm_head is None:
            return self.embed[...], True
        return self.lm_head[...], False

    def __call__(self, tokens, positions, attention_mask, cache: KVCache | None = None):
        """tokens [B, T] int32; positions [B, T] int32; attention_mask [B, T] bool.

        Returns (logits [B, T, V] float32, hidden [B, T, D] after the final norm, cache).
        """
        hidden, cache = self.hidden_states(tokens, positions, attention_mask, cache)
        return self.logits(hidden), hidden, cache
