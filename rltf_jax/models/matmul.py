"""Dense matmuls with float32 accumulation whose bfloat16 backward pass stays on XLA:CPU's fast dot.

XLA:CPU runs a bfloat16 dot with float32 accumulation on its fast library path (YNNPACK, AMX) when
it reads its operands as they are: lhs [M, K] contracting its last axis and rhs [K, N] or [N, K].
A dot that reads a `transpose` op, or contracts the *first* axis of its lhs, is rewritten to take
float32 operands and runs at f32 speed (found in the compiled HLO: `convert` to f32 feeding the
dot; an optimization barrier around the transpose does not stop it). Autodiff of ``x @ w`` writes
both backward dots with transposes, so the whole backward pass (two thirds of a training step's
FLOPs) ran at f32 speed. Here the bfloat16 case has a custom VJP: the input gradient ``g @ w.T`` is
one dot contracting the last axes of g [M, N] and w [K, N] (no transpose op), and the weight
gradient ``x.T @ g`` reads a transpose of x that XLA cannot see through (`_opaque_transpose`).
The tied LM head (``x @ emb.T``) gets the same treatment. Float32 inputs take the plain path.
tests/test_matmul.py checks the dot operand dtypes in the compiled HLO.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_LAST_LAST = (((1,), (1,)), ((), ()))   # a [M, K] · b [N, K] -> [M, N]
_CANONICAL = (((1,), (0,)), ((), ()))   # a [M, K] · b [K, N] -> [M, N]


def _dot(a: jax.Array, b: jax.Array, dims) -> jax.Array:
    return jax.lax.dot_general(a, b, dims, preferred_element_type=jnp.float32)


def _flat(a: jax.Array) -> jax.Array:
    return a.reshape(-1, a.shape[-1])


def _opaque_transpose(a: jax.Array) -> jax.Array:
    """a [M, N] -> a.T [N, M], materialised row-major where XLA cannot fold it into a dot.

    A transpose feeding a dot is folded into the dot (or, behind an optimization barrier, still
    seen as one) and the dot is rewritten to float32. Computed inside a while loop whose trip count
    XLA cannot know (1, or 2 if a[0, 0] is NaN: the result is the same either way), the transpose
    is a loop result in row-major layout, and the dot reading it stays bf16.
    """
    trips = 1 + jnp.isnan(a[0, 0].astype(jnp.float32)).astype(jnp.int32)
    return jax.lax.fori_loop(0, trips, lambda i, carry: jnp.transpose(a),
                             jnp.zeros(a.shape[::-1], a.dtype))


def _x_transposed_at_g(x2: jax.Array, g2: jax.Array) -> jax.Array:
    """x2 [M, K], g2 [M, N] -> x2.T @ g2, float32 [K, N]: a weight gradient, as a bf16-fast dot."""
    return _dot(_opaque_transpose(x2), g2, _CANONICAL)


@jax.custom_vjp
def _matmul_bf16(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [..., K] @ w [K, N] -> float32 [..., N]."""
    return _dot(_flat(x), w, _CANONICAL).reshape(*x.shape[:-1], w.shape[-1])


def _matmul_bf16_fwd(x, w):
    return _matmul_bf16(x, w), (x, w)


def _matmul_bf16_bwd(residuals, g):
    x, w = residuals
    g2 = _flat(g).astype(x.dtype)                          # [M, N], bf16 like torch autocast's
    dx = _dot(g2, w, _LAST_LAST).astype(x.dtype)           # [M, N] · [K, N] -> [M, K]: fast
    dw = _x_transposed_at_g(_flat(x), g2).astype(w.dtype)  # [K, N]
    return dx.reshape(x.shape), dw


_matmul_bf16.defvjp(_matmul_bf16_fwd, _matmul_bf16_bwd)


@jax.custom_vjp
def _matmul_transposed_bf16(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [..., K] @ w.T for w [N, K] -> float32 [..., N]."""
    return _dot(_flat(x), w, _LAST_LAST).reshape(*x.shape[:-1], w.shape[0])


def _matmul_transposed_bf16_fwd(x, w):
    return _matmul_transposed_bf16(x, w), (x, w)


def _matmul_transposed_bf16_bwd(residuals, g):
    x, w = residuals
    g2 = _flat(g).astype(x.dtype)                          # [M, N]
    dx = _dot(g2, w, _CANONICAL).astype(x.dtype)           # [M, N] · [N, K] -> [M, K]: fast
    # [K, N], transposed on the way out (x is far smaller than g: K << N); opaquely, or XLA
    # folds that transpose back into a dot it cannot run in bf16 at all.
    dw = _opaque_transpose(_x_transposed_at_g(_flat(x), g2)).astype(w.dtype)
    return dx.reshape(x.shape), dw


_matmul_transposed_bf16.defvjp(_matmul_transposed_bf16_fwd, _matmul_transposed_bf16_bwd)


def matmul_f32(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [..., K] @ w [K, N] -> float32 [..., N], accumulating in float32.

    x is cast to w's dtype first. For bfloat16 weights both gradients run as bf16 dots XLA:CPU keeps
    on its fast path (module docstring); values and gradients equal the plain ``jnp.matmul`` ones up
    to bfloat16 rounding of the cotangent (as in torch's autocast).
    """
    x = x.astype(w.dtype)
    if w.dtype == jnp.bfloat16:
        return _matmul_bf16(x, w)
    return jnp.matmul(x, w, preferred_element_type=jnp.float32)


def matmul_transposed_f32(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [..., K] @ w.T for w [N, K] (a tied embedding used as the LM head) -> float32 [..., N]."""
    x = x.astype(w.dtype)
    if w.dtype == jnp.bfloat16:
        return _matmul_transposed_bf16(x, w)
    return jnp.einsum("...k,nk->...n", x, w, preferred_element_type=jnp.float32)
