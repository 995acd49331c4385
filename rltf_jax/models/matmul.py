"""Dense matmuls with float32 accumulation whose bfloat16 backward pass stays on XLA:CPU's fast dot.

XLA:CPU runs a bfloat16 dot with float32 accumulation on its fast library path (YNNPACK, AMX) when
it reads its operands as they are: lhs [M, K] contracting its last axis and rhs [K, N] or [N, K].
A dot that reads a `transpose` op, or contracts the *first* axis of its lhs, is rewritten to take
float32 operands and runs at f32 speed (found in the compiled HLO: `convert` to f32 feeding the
dot; an optimization barrier around the transpose does not stop it). Autodiff of ``x @ w`` writes
both backward dots with transposes, so the whole backward pass (two thirds of a training step's
FLOPs) ran at f32 speed. Here the bfloat16 case has a custom VJP: the input gradient ``g @ w.T`` is
one dot contracting the last axes of g [M, N] and w [K, N] (no transpose op), and the weight
gradient ``x.T @ g`` reads a transpose of x that XLA cannot see through (`opaque_swap`).
The tied LM head (``x @ emb.T``) gets the same treatment. Float32 inputs, and every input on
other backends (kernels/platform.py), take the plain path.
tests/kernels/test_matmul.py checks the dot operand dtypes in the compiled HLO.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rltf_jax.kernels.platform import cpu_tuned_matmuls

_LAST_LAST = (((1,), (1,)), ((), ()))   # a [M, K] · b [N, K] -> [M, N]
_CANONICAL = (((1,), (0,)), ((), ()))   # a [M, K] · b [K, N] -> [M, N]


def _dot(a: jax.Array, b: jax.Array, dims) -> jax.Array:
    return jax.lax.dot_general(a, b, dims, preferred_element_type=jnp.float32)


def _flat(a: jax.Array) -> jax.Array:
    return a.reshape(-1, a.shape[-1])


def opaque_swap(a: jax.Array) -> jax.Array:
    """a [..., M, N] -> [..., N, M], materialised row-major where XLA cannot fold it into a dot.

    A transpose feeding a dot is folded into the dot (or, behind an optimization barrier, still
    seen as one) and the dot is rewritten to float32. Computed inside a while loop whose trip count
    XLA cannot know (1, or 2 if the first element is NaN: the result is the same either way), the
    transpose is a loop result in row-major layout, and the dot reading it stays bf16.
    """
    first = a.reshape(-1)[0].astype(jnp.float32)
    trips = 1 + jnp.isnan(first).astype(jnp.int32)
    shape = a.shape[:-2] + (a.shape[-1], a.shape[-2])
    return jax.lax.fori_loop(0, trips, lambda i, carry: jnp.swapaxes(a, -1, -2),
                             jnp.zeros(shape, a.dtype))


def stash(a: jax.Array) -> jax.Array:
    """A residual for the backward pass, bfloat16 bit-cast to uint16 (other dtypes as they are).

    Under the layer `scan`, residuals are stacked into [L, ...] buffers by dynamic-update-slice.
    XLA:CPU does a bfloat16 dynamic-update-slice in float32: it converts the whole stacked buffer to
    float32 and back on every layer, rewriting all of it instead of writing one slice in place
    (1.3 s of a 5 s SmolLM2 bf16 train step, read from the profile and the compiled HLO). As uint16
    the update is an in-place integer copy. The bit-cast is free; `unstash` undoes it.
    """
    return jax.lax.bitcast_convert_type(a, jnp.uint16) if a.dtype == jnp.bfloat16 else a


def unstash(a: jax.Array) -> jax.Array:
    """The inverse of `stash`."""
    return jax.lax.bitcast_convert_type(a, jnp.bfloat16) if a.dtype == jnp.uint16 else a


def x_transposed_at_g(x2: jax.Array, g2: jax.Array) -> jax.Array:
    """x2 [M, K], g2 [M, N] -> x2.T @ g2, float32 [K, N]: a weight gradient, as a bf16-fast dot."""
    return _dot(opaque_swap(x2), g2, _CANONICAL)


@jax.custom_vjp
def _matmul_bf16(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [..., K] @ w [K, N] -> float32 [..., N]."""
    return _dot(_flat(x), w, _CANONICAL).reshape(*x.shape[:-1], w.shape[-1])


def _matmul_bf16_fwd(x, w):
    return _matmul_bf16(x, w), (stash(x), stash(w))


def _matmul_bf16_bwd(residuals, g):
    x, w = map(unstash, residuals)
    g2 = _flat(g).astype(x.dtype)                          # [M, N], bf16 like torch autocast's
    dx = _dot(g2, w, _LAST_LAST).astype(x.dtype)           # [M, N] · [K, N] -> [M, K]: fast
    dw = x_transposed_at_g(_flat(x), g2).astype(w.dtype)  # [K, N]
    return dx.reshape(x.shape), dw


_matmul_bf16.defvjp(_matmul_bf16_fwd, _matmul_bf16_bwd)


@jax.custom_vjp
def _matmul_transposed_bf16(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [..., K] @ w.T for w [N, K] -> float32 [..., N]."""
    return _dot(_flat(x), w, _LAST_LAST).reshape(*x.shape[:-1], w.shape[0])


def _matmul_transposed_bf16_fwd(x, w):
    return _matmul_transposed_bf16(x, w), (stash(x), stash(w))


def _matmul_transposed_bf16_bwd(residuals, g):
    x, w = map(unstash, residuals)
    g2 = _flat(g).astype(x.dtype)                          # [M, N]
    dx = _dot(g2, w, _CANONICAL).astype(x.dtype)           # [M, N] · [N, K] -> [M, K]: fast
    # [K, N], transposed on the way out (x is far smaller than g: K << N); opaquely, or XLA
    # folds that transpose back into a dot it cannot run in bf16 at all.
    dw = opaque_swap(x_transposed_at_g(_flat(x), g2)).astype(w.dtype)
    return dx.reshape(x.shape), dw


_matmul_transposed_bf16.defvjp(_matmul_transposed_bf16_fwd, _matmul_transposed_bf16_bwd)


def matmul_f32(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [..., K] @ w [K, N] -> float32 [..., N], accumulating in float32.

    x is cast to w's dtype first. For bfloat16 weights both gradients run as bf16 dots XLA:CPU keeps
    on its fast path (module docstring); values and gradients equal the plain ``jnp.matmul`` ones up
    to bfloat16 rounding of the cotangent (as in torch's autocast).
    """
    x = x.astype(w.dtype)
    if w.dtype == jnp.bfloat16 and cpu_tuned_matmuls():
        return _matmul_bf16(x, w)
    return jnp.matmul(x, w, preferred_element_type=jnp.float32)


def matmul_transposed_f32(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [..., K] @ w.T for w [N, K] (a tied embedding used as the LM head) -> float32 [..., N]."""
    x = x.astype(w.dtype)
    if w.dtype == jnp.bfloat16 and cpu_tuned_matmuls():
        return _matmul_transposed_bf16(x, w)
    return jnp.einsum("...k,nk->...n", x, w, preferred_element_type=jnp.float32)
