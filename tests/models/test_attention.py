"""models/attention.py: the head-major bfloat16 attention equals the einsum form (values and
gradients), keeps every dot of its gradient in bfloat16 on XLA:CPU, and handles padding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hlo_dots import dot_operand_dtypes
from rltf_jax.models.attention import _einsum_attention, causal_attention

B, T, H, K, HD = 2, 12, 6, 2, 16


def _inputs(dtype, pad=3, t=T):
    """q, k, v, a cotangent and the mask of a batch whose second row has `pad` left-padding tokens."""
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.normal(size=shape), dtype)
               for shape in [(B, t, H, HD), (B, t, K, HD), (B, t, K, HD)])
    cotangent = jnp.asarray(rng.normal(size=(B, t, H, HD)), jnp.float32)
    real = np.ones((B, t), bool)
    real[1, :pad] = False
    self_mask = jnp.tril(jnp.ones((t, t), bool))[None] & jnp.asarray(real)[:, None, :]
    return q, k, v, cotangent, self_mask


def _loss(attention, self_mask, cotangent):
    return lambda q, k, v: jnp.sum(attention(q, k, v, self_mask).astype(jnp.float32) * cotangent)


@pytest.mark.parametrize("t", [T, 64])  # 64: two causal query blocks over key prefixes
def test_bf16_head_major_matches_the_float32_einsum_form_in_value_and_gradient(t):
    pad = 40 if t == 64 else 3
    q, k, v, cotangent, self_mask = _inputs(jnp.bfloat16, pad=pad, t=t)
    # A padding query sees no key: its output is a meaningless average (over its causal block's
    # keys, in the blocked form) that no real position reads. The loss reads real positions only.
    real = np.asarray(jnp.diagonal(self_mask, axis1=1, axis2=2))  # a real token sees itself
    cotangent = cotangent * real[:, :, None, None]
    ours = causal_attention(q, k, v, self_mask)
    f32 = [a.astype(jnp.float32) for a in (q, k, v)]
    reference = _einsum_attention(*f32, self_mask)
    assert ours.dtype == jnp.bfloat16 and ours.shape == (B, t, H, HD)
    assert not real[1, :pad].any() and real[1, pad:].all()
    np.testing.assert_allclose(np.asarray(ours, np.float32)[real], np.asarray(reference)[real], atol=0.03)
    grads = jax.grad(_loss(causal_attention, self_mask, cotangent), argnums=(0, 1, 2))(q, k, v)
    want = jax.grad(_loss(_einsum_attention, self_mask, cotangent), argnums=(0, 1, 2))(*f32)
    for got, ref in zip(grads, want):
        assert got.dtype == jnp.bfloat16
        scale = float(jnp.max(jnp.abs(ref)))
        np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(ref), atol=0.02 * scale)


def test_float32_is_the_einsum_form_exactly():
    q, k, v, _, self_mask = _inputs(jnp.float32)
    np.testing.assert_array_equal(np.asarray(causal_attention(q, k, v, self_mask)),
                                  np.asarray(_einsum_attention(q, k, v, self_mask)))


def test_every_dot_of_the_bf16_gradient_stays_bf16():
    q, k, v, cotangent, self_mask = _inputs(jnp.bfloat16)
    ours = dot_operand_dtypes(_loss(causal_attention, self_mask, cotangent), q, k, v)
    einsum = dot_operand_dtypes(_loss(_einsum_attention, self_mask, cotangent), q, k, v)
    # the forward's scores (its mix is not needed for the gradient); d_probs, d_v, d_q, d_k
    assert ours == ["bf16"] * 5, ours
    assert "f32" in einsum, einsum  # autodiff of the einsum form reads transposed operands


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_padding_queries_stay_finite_and_padding_keys_get_no_gradient(dtype):
    q, k, v, cotangent, self_mask = _inputs(dtype, pad=5)
    out = causal_attention(q, k, v, self_mask)
    assert np.isfinite(np.asarray(out, np.float32)).all()
    # The loss reads real positions only, as the PPO losses do.
    cotangent = cotangent.at[1, :5].set(0.0)
    dq, dk, dv = jax.grad(_loss(causal_attention, self_mask, cotangent), argnums=(0, 1, 2))(q, k, v)
    # Row 1's first 5 tokens are padding: no real query attends to them, and a padding query's
    # scores are all masked (a uniform softmax of constants: no gradient to its q).
    for grad in (dq, dk, dv):
        assert np.all(np.asarray(grad[1, :5], np.float32) == 0)
        assert np.any(np.asarray(grad[0, :5], np.float32) != 0)
