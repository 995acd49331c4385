"""Dense matmuls with float32 accumulation whose bfloat16 backward pass stays on XLA:CPU's fast dot.

XLA:CPU runs a bfloat16 dot with float32 accumulation fast (oneDNN / AMX) only when both operands
are in canonical layout: lhs [M, K] contracting its last axis, rhs [K, N] contracting its first.
Autodiff of ``x @ w`` produces ``g @ w.T`` and ``x.T @ g``; XLA folds those transposes into the dot's
dimension numbers, the dot falls off the fast path and the backward (two thirds of a training
step's FLOPs) runs at float32 speed (diagnosis in docs/benchmarks.md, "PPO update throughput").
`matmul_f32` gives the bfloat16 case a custom VJP that materialises the transposed operand behind
``lax.optimization_barrier`` (so the simplifier cannot fold it back) and feeds every dot canonical
operands; the extra copies are O(K·N + M·K) bytes against O(M·K·N) FLOPs. Float32 inputs take
the plain path (every f32 layout runs at the same speed here).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _dot(a: jax.Array, b: jax.Array) -> jax.Array:
    """a [M, K] @ b [K, N] -> float32 [M, N], canonical dimension numbers."""
    return jax.lax.dot_general(a, b, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)


def _materialised_transpose(a: jax.Array) -> jax.Array:
    """a [M, N] -> a.T [N, M] as a real array (an optimization barrier keeps XLA from folding it)."""
    return jax.lax.optimization_barrier(jnp.transpose(a))


@jax.custom_vjp
def _matmul_bf16(x: jax.Array, w: jax.Array) -> jax.Array:
    return _dot(x.reshape(-1, x.shape[-1]), w).reshape(*x.shape[:-1], w.shape[-1])


def _matmul_bf16_fwd(x, w):
    return _matmul_bf16(x, w), (x, w)


def _matmul_bf16_bwd(residuals, g):
    x, w = residuals
    x2 = x.reshape(-1, x.shape[-1])                                 # [M, K]
    g2 = g.reshape(-1, g.shape[-1]).astype(x.dtype)                 # [M, N], bf16 like autocast's
    dx = _dot(g2, _materialised_transpose(w)).astype(x.dtype)       # [M, N] @ [N, K]
    dw = _dot(_materialised_transpose(x2), g2).astype(w.dtype)      # [K, M] @ [M, N]
    return dx.reshape(x.shape), dw


_matmul_bf16.defvjp(_matmul_bf16_fwd, _matmul_bf16_bwd)


def matmul_f32(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [..., K] @ w [K, N] -> float32 [..., N], accumulating in float32.

    x is cast to w's dtype first. For bfloat16 weights the gradient runs through canonical-layout
    dots (module docstring); the values and gradients equal the plain ``jnp.matmul`` ones up to
    bfloat16 rounding of the cotangent (as in torch's autocast).
    """
    x = x.astype(w.dtype)
    if w.dtype == jnp.bfloat16:
        return _matmul_bf16(x, w)
    return jnp.matmul(x, w, preferred_element_type=jnp.float32)


def matmul_transposed_f32(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [..., K] @ w.T for w [N, K] (a tied embedding used as the LM head) -> float32 [..., N].

    For bfloat16 the transpose is materialised once so that forward and backward dots are canonical.
    """
    if w.dtype == jnp.bfloat16:
        return matmul_f32(x, _materialised_transpose(w))
    return jnp.einsum("...k,nk->...n", x.astype(w.dtype), w, preferred_element_type=jnp.float32)
