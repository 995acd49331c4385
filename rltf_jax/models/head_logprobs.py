"""log π(target) and entropy straight from the final hidden states: the LM head, log-softmax and
their backward pass fused, chunk by chunk along the sequence, never holding the [B, T, V] logits.

PPO needs two numbers per position from the vocabulary distribution: the log-probability of the
token that was generated and (as a metric, or a bonus) the entropy. Computed from materialised
logits, SmolLM2's [8, 255, 49152] float32 logits are 400 MB, and autodiff of log-softmax, of
`take_along_axis` (a scatter into a zeroed [B, T, V] array) and of the entropy makes several more
full passes, three of them with an `exp` over 100M elements: a large share of the bfloat16 train
step in a profile. Here (as in Liger's fused linear cross-entropy):

- forward, per chunk of the sequence: logits = h · Wᵀ / τ, m = max, e = exp(logits - m) once,
  lse = m + log Σe, entropy = lse - Σ e·logits / Σe, log π(target) = logits[target] - lse;
  besides the inputs, only lse and the entropy (per position) are kept for the backward pass;
- backward, per chunk: the logits are recomputed (one more head matmul, cheaper than keeping and
  re-reading them), p = exp(logits - lse), and
      d logits = (g_logp · (onehot(target) - p) - g_ent · p · (log p + H)) / τ,
  then dh = d logits · W and dW accumulates d logitsᵀ · h. bfloat16 weights take bfloat16 d logits
  into both dots (as torch's autocast does), on XLA:CPU's fast dot path (models/matmul.py).

The chunks run in a `lax.scan` (the batch axis is untouched, so a batch sharded over the mesh stays
sharded); the sequence is padded to a multiple of the chunk length and the padding dropped.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from rltf_jax.models.matmul import opaque_swap, x_transposed_at_g

_ROWS_PER_CHUNK = 1024  # batch × chunk length: [1024, 49152] float32 logits are 200 MB


def _logits(h: jax.Array, weight: jax.Array, tied: bool) -> jax.Array:
    """h [R, D] -> float32 [R, V]; weight [V, D] if tied (the embedding) else [D, V]."""
    dims = (((1,), (1,)), ((), ())) if tied else (((1,), (0,)), ((), ()))
    return jax.lax.dot_general(h.astype(weight.dtype), weight, dims, preferred_element_type=jnp.float32)


def _chunk_stats(h, weight, targets, tied, temperature):
    """One chunk. h [R, D]; targets [R] -> (logp [R], entropy [R], lse [R]), float32."""
    logits = _logits(h, weight, tied) / temperature
    m = jnp.max(logits, axis=-1, keepdims=True)
    e = jnp.exp(logits - m)
    total = jnp.sum(e, axis=-1)
    lse = m[:, 0] + jnp.log(total)
    entropy = lse - jnp.sum(e * logits, axis=-1) / total
    picked = jnp.take_along_axis(logits, targets[:, None], axis=-1)[:, 0]
    return picked - lse, entropy, lse


def _split(x: jax.Array, chunk: int) -> jax.Array:
    """[B, T', ...] (T' a multiple of chunk) -> [n, B·chunk, ...], chunk-major (scan's xs)."""
    b, t = x.shape[:2]
    x = x.reshape(b, t // chunk, chunk, *x.shape[2:])
    return jnp.moveaxis(x, 1, 0).reshape(t // chunk, b * chunk, *x.shape[3:])


def _join(x: jax.Array, b: int) -> jax.Array:
    """The inverse of _split: [n, B·chunk, ...] -> [B, n·chunk, ...]."""
    n, rows = x.shape[:2]
    x = x.reshape(n, b, rows // b, *x.shape[2:])
    return jnp.moveaxis(x, 0, 1).reshape(b, n * (rows // b), *x.shape[3:])


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _fused(hidden, weight, targets, tied, temperature, chunk):
    return _fused_fwd(hidden, weight, targets, tied, temperature, chunk)[0]


def _fused_fwd(hidden, weight, targets, tied, temperature, chunk):
    b = hidden.shape[0]

    def body(_, xs):
        h, tgt = xs
        return None, _chunk_stats(h, weight, tgt, tied, temperature)

    _, (logp, entropy, lse) = jax.lax.scan(body, None, (_split(hidden, chunk), _split(targets, chunk)))
    logp, entropy, lse = _join(logp, b), _join(entropy, b), _join(lse, b)
    return (logp, entropy), (hidden, weight, targets, lse, entropy)


def _fused_bwd(tied, temperature, chunk, residuals, cotangents):
    hidden, weight, targets, lse, entropy = residuals
    g_logp, g_ent = cotangents
    b, dt = hidden.shape[0], weight.dtype
    vocab = weight.shape[0] if tied else weight.shape[1]

    def body(d_weight_t, xs):
        h, tgt, lse_c, ent_c, g_lp, g_en = xs
        logits = _logits(h, weight, tied) / temperature
        log_p = logits - lse_c[:, None]
        p = jnp.exp(log_p)
        onehot = jax.lax.broadcasted_iota(jnp.int32, logits.shape, 1) == tgt[:, None]
        d_logits = (g_lp[:, None] * (onehot.astype(jnp.float32) - p)
                    - g_en[:, None] * p * (log_p + ent_c[:, None])) / temperature
        d_logits = d_logits.astype(dt)
        h = h.astype(dt)
        if tied:   # d_logits [R, V] · W [V, D]
            d_h = jax.lax.dot_general(d_logits, weight, (((1,), (0,)), ((), ())),
                                      preferred_element_type=jnp.float32)
        else:      # d_logits [R, V] · W [D, V], contracting V
            d_h = jax.lax.dot_general(d_logits, weight, (((1,), (1,)), ((), ())),
                                      preferred_element_type=jnp.float32)
        return d_weight_t + x_transposed_at_g(h, d_logits), d_h.astype(hidden.dtype)

    xs = tuple(_split(a, chunk) for a in (hidden, targets, lse, entropy, g_logp, g_ent))
    d_weight_t = jnp.zeros((hidden.shape[-1], vocab), jnp.float32)   # [D, V]
    d_weight_t, d_hidden = jax.lax.scan(body, d_weight_t, xs)
    d_weight = opaque_swap(d_weight_t.astype(dt)) if tied else d_weight_t.astype(dt)
    return _join(d_hidden, b), d_weight, None


_fused.defvjp(_fused_fwd, _fused_bwd)


def token_logprobs_and_entropy_from_hidden(hidden: jax.Array, weight: jax.Array, targets: jax.Array, *,
                                           tied: bool, temperature: float = 1.0):
    """log π(target) and the entropy of π from final hidden states, π = softmax(h·Wᵀ / temperature).

    hidden [B, T, D] (after the final norm); weight: the embedding [V, D] if `tied`, else the LM head
    [D, V] (its dtype is the matmul dtype); targets [B, T] int32.
    Returns (logprobs [B, T] float32, entropy [B, T] float32), differentiable in hidden and weight.
    """
    b, t, _ = hidden.shape
    if targets.shape != (b, t):
        raise ValueError(f"targets {targets.shape} must be [batch, seq] = {(b, t)}")
    chunk = max(1, min(t, _ROWS_PER_CHUNK // b))
    padded = math.ceil(t / chunk) * chunk
    if padded != t:
        hidden = jnp.pad(hidden, ((0, 0), (0, padded - t), (0, 0)))
        targets = jnp.pad(targets, ((0, 0), (0, padded - t)))
    logp, entropy = _fused(hidden, weight, targets.astype(jnp.int32), tied, float(temperature), chunk)
    return logp[:, :t], entropy[:, :t]
