"""models/matmul.py: same values and gradients as plain autodiff, and bf16 backward dots that
XLA:CPU keeps in bfloat16 (checked on the compiled HLO, not by timing)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hlo_dots import dot_operand_dtypes
from rltf_jax.models.matmul import matmul_f32, matmul_transposed_f32



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


def test_every_bf16_dot_of_the_gradient_stays_bf16_where_plain_autodiff_upcasts():
    args = _arrays(jnp.bfloat16)
    plain = dot_operand_dtypes(_plain, *args)
    ours = dot_operand_dtypes(_ours, *args)
    # Forward dots (dense, head): bf16 either way. Plain autodiff's four backward dots read
    # transposes, which XLA:CPU rewrites to f32 operands; ours keeps all of them bf16.
    assert len(plain) == len(ours) == 6, (plain, ours)
    assert plain.count("bf16") == 2 and ours == ["bf16"] * 6, (plain, ours)


def test_opaque_swap_is_a_transpose_of_the_last_two_axes_even_for_nan():
    from rltf_jax.models.matmul import opaque_swap

    a = jnp.arange(12.0, dtype=jnp.bfloat16).reshape(3, 4)
    assert np.array_equal(np.asarray(jax.jit(opaque_swap)(a)), np.asarray(a).T)
    a = a.at[0, 0].set(jnp.nan)  # two loop trips: still the transpose
    np.testing.assert_array_equal(np.asarray(jax.jit(opaque_swap)(a), np.float32), np.asarray(a, np.float32).T)
    batched = jnp.arange(24.0, dtype=jnp.bfloat16).reshape(2, 3, 4)
    assert np.array_equal(np.asarray(jax.jit(opaque_swap)(batched)), np.asarray(batched).swapaxes(1, 2))


@pytest.mark.parametrize("fn", [matmul_f32, lambda x, w: matmul_transposed_f32(x, w.T)])
def test_leading_axes_and_a_2d_input(fn):
    x, w, _ = _arrays(jnp.bfloat16)
    assert fn(x, w).shape == (2, 24, 48) and fn(x[0], w).shape == (24, 48)
    assert fn(x, w).dtype == jnp.float32
