"""models/matmul.py: same values and gradients as plain autodiff, and bf16 backward dots in the
canonical layout XLA:CPU's fast bf16 path needs (checked on the compiled HLO, not by timing)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rltf_jax.models.matmul import matmul_f32, matmul_transposed_f32

CANONICAL = re.compile(r"lhs_contracting_dims=\{1\}, rhs_contracting_dims=\{0\}")


def _arrays(dtype):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 24, 32)), dtype)   # [B, T, K]
    w = jnp.asarray(rng.normal(size=(32, 48)), dtype)      # [K, N]
    emb = jnp.asarray(rng.normal(size=(40, 32)), dtype)    # [V, K], a tied LM head
    return x, w, emb


def _ours(x, w, emb):
    return jnp.sum(jnp.tanh(matmul_f32(x, w))) + jnp.sum(jnp.sin(matmul_transposed_f32(x, emb)))


def _plain(x, w, emb):
    dense = jnp.matmul(x, w, preferred_element_type=jnp.float32)
    logits = jnp.einsum("...k,nk->...n", x, emb, preferred_element_type=jnp.float32)
    return jnp.sum(jnp.tanh(dense)) + jnp.sum(jnp.sin(logits))


def _dots(fn, *args):
    hlo = jax.jit(jax.grad(fn, argnums=(0, 1, 2))).lower(*args).compile().as_text()
    return [line for line in hlo.splitlines() if " dot(" in line]


def test_bf16_values_and_gradients_match_plain_autodiff():
    args = _arrays(jnp.bfloat16)
    assert np.array_equal(np.asarray(matmul_f32(args[0], args[1])),
                          np.asarray(jnp.matmul(args[0], args[1], preferred_element_type=jnp.float32)))
    ours = jax.grad(_ours, argnums=(0, 1, 2))(*args)
    # the reference: the same bf16 inputs, differentiated entirely in float32
    reference = jax.grad(_plain, argnums=(0, 1, 2))(*(a.astype(jnp.float32) for a in args))
    for got, want in zip(ours, reference):
        assert got.dtype == jnp.bfloat16 and got.shape == want.shape
        scale = float(jnp.max(jnp.abs(want)))
        np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want), atol=0.02 * scale)


def test_float32_takes_the_plain_path_exactly():
    args = _arrays(jnp.float32)
    for got, want in zip(jax.grad(_ours, argnums=(0, 1, 2))(*args), jax.grad(_plain, argnums=(0, 1, 2))(*args)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)


def test_bf16_backward_dots_are_canonical_where_plain_autodiff_is_not():
    args = _arrays(jnp.bfloat16)
    plain = _dots(_plain, *args)
    assert any(not CANONICAL.search(line) for line in plain), "XLA now keeps plain dots canonical"
    ours = _dots(_ours, *args)
    assert len(ours) >= 5  # dense dx and dw, the head's forward-for-sin, dx and dw
    bad = [line.strip()[:200] for line in ours if not CANONICAL.search(line)]
    assert not bad, bad


@pytest.mark.parametrize("fn", [matmul_f32, lambda x, w: matmul_transposed_f32(x, w.T)])
def test_leading_axes_and_a_2d_input(fn):
    x, w, _ = _arrays(jnp.bfloat16)
    assert fn(x, w).shape == (2, 24, 48) and fn(x[0], w).shape == (24, 48)
    assert fn(x, w).dtype == jnp.float32
