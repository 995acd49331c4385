"""Grouped-query attention whose dots XLA:CPU runs on its fast path, forward and backward.

(Accelerators use `jax.nn.dot_product_attention` instead; kernels/platform.py chooses.)

XLA:CPU's fast dot (YNNPACK / oneDNN, AMX for bfloat16) takes operands laid out as they are:
batch axes first, lhs contracting its last axis, rhs [S, d] or [d, S]. Einsums over the model's
natural `[B, T, heads, hd]` layout ("btkgd,bskd->bkgts") are batched dots whose operands must be
transposed first, and XLA:CPU ran them (and their autodiff, which contracts leading axes) as slow
generic loops, several times slower than the canonical dots (docs/benchmarks.md, PPO update). Here queries, keys and values are moved once into head-major layouts
(`[B·K, G·T, hd]` for queries: the G query heads sharing a key head are stacked as rows, so
keys are never repeated) and the backward pass is written out (custom VJP) so that each of its four
dots is canonical too; the two that need a transposed operand read one materialised where XLA
cannot fold it back into the dot (`matmul.opaque_swap`).

Softmax, masking and the softmax backward run in float32. The backward pass keeps only each
query's max and log-sum-exp and recomputes the probabilities from the scores (one more score dot, as flash
attention does): saving them would keep a [layers, B·K, G·T, T] float32 buffer per training step,
zero-filled and stacked across the layer scan.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rltf_jax.kernels.platform import training_attention
from rltf_jax.models.matmul import opaque_swap, stash, unstash

MASK_VALUE = -1e30  # finite: a fully masked (padding) query row gets a uniform softmax, never NaN
_CAUSAL_BLOCKS = 2

# One batch axis (B·K): with two, XLA:CPU falls back to its slow loops again.
_SCORES = (((2,), (2,)), ((0,), (0,)))  # [N, M, d] · [N, S, d] -> [N, M, S]
_MIX = (((2,), (1,)), ((0,), (0,)))     # [N, M, S] · [N, S, d] -> [N, M, d]


def _dot(a: jax.Array, b: jax.Array, dims) -> jax.Array:
    return jax.lax.dot_general(a, b, dims, preferred_element_type=jnp.float32)


def _scores(qh, kh, mask):
    """Masked scores, float32 [B·K, G·T, T]; mask [B·K, G·T, T] bool."""
    return jnp.where(mask, _dot(qh, kh, _SCORES), MASK_VALUE)


@jax.custom_vjp
def _head_major_attention(qh, kh, vh, mask):
    """qh [B·K, G·T, hd] (scaled); kh, vh [B·K, T, hd]; mask [B·K, G·T, T] -> [B·K, G·T, hd]."""
    return _head_major_attention_fwd(qh, kh, vh, mask)[0]


def _head_major_attention_fwd(qh, kh, vh, mask):
    scores = _scores(qh, kh, mask)
    # Each row's max and log Σ exp(s - max), [N, M, 1] each: all the backward keeps. (Kept apart:
    # for a padding query, all scores are MASK_VALUE and max + log T rounds back to MASK_VALUE.)
    row_max = jnp.max(scores, axis=-1, keepdims=True)
    exps = jnp.exp(scores - row_max)   # one exp per score: on this CPU exp is what attention waits on
    total = jnp.sum(exps, axis=-1, keepdims=True)
    probs, log_sum = exps / total, jnp.log(total)
    out = _dot(probs.astype(qh.dtype), vh, _MIX).astype(qh.dtype)
    return out, (stash(qh), stash(kh), stash(vh), mask, row_max, log_sum)


def _head_major_attention_bwd(residuals, d_out):
    qh, kh, vh, mask, row_max, log_sum = map(unstash, residuals)
    dt = qh.dtype
    probs = jnp.exp(_scores(qh, kh, mask) - row_max - log_sum)          # recomputed [N, M, S]
    d_probs = _dot(d_out, vh, _SCORES)                                  # [N, M, S]
    d_vh = _dot(opaque_swap(probs.astype(dt)), d_out, _MIX)             # [N, S, d]
    d_scores = probs * (d_probs - jnp.sum(d_probs * probs, axis=-1, keepdims=True))
    # Masked scores were replaced by a constant: no gradient (a padding query's row is all masked,
    # its softmax uniform, so probs alone would not zero it).
    d_scores = jnp.where(mask, d_scores, 0.0).astype(dt)
    d_qh = _dot(d_scores, kh, _MIX)                                     # [N, M, d]
    d_kh = _dot(opaque_swap(d_scores), qh, _MIX)                        # [N, S, d]
    return d_qh.astype(dt), d_kh.astype(dt), d_vh.astype(dt), None


_head_major_attention.defvjp(_head_major_attention_fwd, _head_major_attention_bwd)


def causal_attention(q, k, v, self_mask, impl: str | None = None):
    """Attention of T queries over the same T keys. q [B, T, H, hd]; k, v [B, T, K, hd];
    self_mask [B, T, T] bool (query t may see key s: causal and s is a real token). -> [B, T, H, hd].

    impl (default: `kernels.platform.training_attention` for q's dtype and the backend):
    "einsum" (float32 on the CPU: the parity reference; the head-major form's different
    accumulation order drifts further from transformers in float64), "head_major" (bfloat16 on the
    CPU, module docstring), "xla" / "cudnn" (`jax.nn.dot_product_attention`, accelerators).
    A padding query sees no key; its output (a uniform average over the keys of its causal block)
    means nothing and no real position reads it.
    """
    impl = impl or training_attention(q.dtype)
    if impl == "einsum":
        return _einsum_attention(q, k, v, self_mask)
    if impl in ("xla", "cudnn"):
        return _library_attention(q, k, v, self_mask, impl)
    if impl != "head_major":
        raise ValueError(f"unknown attention implementation {impl!r}")
    t = q.shape[1]
    blocks = _CAUSAL_BLOCKS if t % _CAUSAL_BLOCKS == 0 and t >= 64 else 1
    # Causal: query block i sees keys [0, end of block i) only, so the scores above the diagonal
    # blocks are never computed (1/4 fewer with 2 blocks).
    outs = []
    for i in range(blocks):
        lo, hi = i * t // blocks, (i + 1) * t // blocks
        outs.append(_prefix_attention(q[:, lo:hi], k[:, :hi], v[:, :hi], self_mask[:, lo:hi, :hi]))
    return outs[0] if blocks == 1 else jnp.concatenate(outs, axis=1)


def _library_attention(q, k, v, self_mask, implementation: str):
    """causal_attention through `jax.nn.dot_product_attention` (GQA native, [B, T, heads, hd]).

    Each query also sees its own key: a padding query would otherwise see none, and a fully masked
    row is where fused kernels may return NaN; no real query's mask changes (causal: it sees itself).
    """
    t = q.shape[1]
    mask = self_mask | jnp.eye(t, dtype=bool)[None]
    return jax.nn.dot_product_attention(q, k, v, mask=mask[:, None], implementation=implementation)


def _prefix_attention(q, k, v, mask):
    """q [B, Tq, H, hd] over k, v [B, S, K, hd]; mask [B, Tq, S] bool -> [B, Tq, H, hd], head-major."""
    b, t, h, hd = q.shape
    s, kv = k.shape[1], k.shape[2]
    g = h // kv
    scaled = (q.astype(jnp.float32) * (hd ** -0.5)).astype(q.dtype)
    qh = scaled.reshape(b, t, kv, g, hd).transpose(0, 2, 3, 1, 4).reshape(b * kv, g * t, hd)
    kh = k.transpose(0, 2, 1, 3).reshape(b * kv, s, hd)
    vh = v.transpose(0, 2, 1, 3).reshape(b * kv, s, hd)
    # Broadcast in full: masking the dot's output through a 5-D view of it cost 2x in the forward.
    mask = jnp.broadcast_to(mask[:, None, None], (b, kv, g, t, s)).reshape(b * kv, g * t, s)
    out = _head_major_attention(qh, kh, vh, mask)
    return out.reshape(b, kv, g, t, hd).transpose(0, 3, 1, 2, 4).reshape(b, t, h, hd)


def _einsum_attention(q, k, v, self_mask):
    """causal_attention as einsums over the natural [B, T, heads, hd] layout (autodiff backward)."""
    b, t, h, hd = q.shape
    kv = k.shape[2]
    qg = (q.astype(jnp.float32) * (hd ** -0.5)).astype(q.dtype).reshape(b, t, kv, h // kv, hd)
    scores = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=jnp.float32)
    probs = jax.nn.softmax(jnp.where(self_mask[:, None, None], scores, MASK_VALUE), axis=-1)
    out = jnp.einsum("bkgts,bskd->btkgd", probs.astype(q.dtype), v, preferred_element_type=jnp.float32)
    return out.reshape(b, t, h, hd).astype(q.dtype)


def cached_attention(q, k, v, self_mask, cache_k, cache_v, cache_mask):
    """T new queries over [cached slots ⧺ the T new keys] (CausalLM.hidden_states with a filled cache;
    the sampler decodes with models/decode.py instead). q [B, T, H, hd]; k, v [B, T, K, hd];
    self_mask [B, T, T]; cache_k, cache_v [B, K, S, hd]; cache_mask [B, 1, S] bool. -> [B, T, H, hd]."""
    b, t, h, hd = q.shape
    kv = k.shape[2]
    qg = (q.astype(jnp.float32) * (hd ** -0.5)).astype(q.dtype).reshape(b, t, kv, h // kv, hd)
    scores = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=jnp.float32)
    scores = jnp.where(self_mask[:, None, None], scores, MASK_VALUE)
    cache_scores = jnp.einsum("btkgd,bksd->bkgts", qg, cache_k.astype(q.dtype),
                              preferred_element_type=jnp.float32)
    cache_scores = jnp.where(cache_mask[:, None, None], cache_scores, MASK_VALUE)
    s_cache = cache_scores.shape[-1]
    probs = jax.nn.softmax(jnp.concatenate([cache_scores, scores], axis=-1), axis=-1)
    p_cache, p_self = probs[..., :s_cache], probs[..., s_cache:]
    out = jnp.einsum("bkgts,bksd->btkgd", p_cache.astype(q.dtype), cache_v.astype(q.dtype),
                     preferred_element_type=jnp.float32)
    out = out + jnp.einsum("bkgts,bskd->btkgd", p_self.astype(q.dtype), v,
                           preferred_element_type=jnp.float32)
    return out.reshape(b, t, h, hd).astype(q.dtype)
