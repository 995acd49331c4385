"""models/head_logprobs.py: the fused, chunked LM head + log-softmax equals the plain computation from
materialised logits, in value and gradient, tied or untied, over several chunks with padding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fp_bounds import U_F32, gamma, log_softmax_error_bound
from hlo_dots import dot_operand_dtypes
from rltf_jax.models import head_logprobs as H
from rltf_jax.ppo.losses import token_logprobs_and_entropy

B, T, D, V = 2, 10, 16, 40


@pytest.fixture
def small_chunks(monkeypatch):
    """8 rows per chunk: with B=2, chunks of 4 positions, T=10 padded to 12 (three chunks)."""
    monkeypatch.setattr(H, "_ROWS_PER_CHUNK", 8)


def _inputs(dtype, tied):
    rng = np.random.default_rng(1)
    hidden = jnp.asarray(rng.normal(size=(B, T, D)), dtype)
    weight = jnp.asarray(rng.normal(size=(V, D) if tied else (D, V)) * 0.5, dtype)
    targets = jnp.asarray(rng.integers(0, V, (B, T)), jnp.int32)
    weights = jnp.asarray(rng.normal(size=(2, B, T)), jnp.float32)  # cotangents of logp and entropy
    return hidden, weight, targets, weights


def _plain(hidden, weight, targets, tied, temperature):
    w = weight.T if tied else weight
    logits = jnp.einsum("btd,dv->btv", hidden, w, preferred_element_type=jnp.float32)
    return token_logprobs_and_entropy(logits, targets, temperature)


def _objective(fn, targets, weights, tied, temperature):
    def objective(hidden, weight):
        logp, entropy = fn(hidden, weight, targets, tied, temperature)
        return jnp.sum(weights[0] * logp) + jnp.sum(weights[1] * entropy)
    return objective


def _fused(hidden, weight, targets, tied, temperature):
    return H.token_logprobs_and_entropy_from_hidden(hidden, weight, targets, tied=tied, temperature=temperature)


def _float64_values_and_bounds(hidden, weight, targets, tied, temperature):
    """log p(target) and entropy in float64 from the same (float32) inputs, and a bound on the error of
    any float32 evaluation of them (a dot per logit, then log-softmax):

    * logits z = (h . w) / T: |dz_v| <= gamma_D sum_d |h_d w_dv| / T + 2 u |z_v| (Higham's worst case
      for a length-D dot, then the scaling and the store);
    * log p_t = z_t - lse: |dz_t| + max |dz| (lse is 1-Lipschitz in the max norm) plus the rounding of
      the log-softmax itself (fp_bounds.log_softmax_error_bound, over V terms);
    * entropy = lse - sum_v p_v z_v: max |dz| sum_v p_v |z_v - mean_p z| (its sensitivity to z), the
      lse rounding, and the sum's own: each p_v is off by u (|z_v - lse| + 3) relatively (exp of a
      rounded argument), the sum by gamma_V, all in units of sum_v p_v |z_v|."""
    h = np.asarray(hidden, np.float64)
    w = np.asarray(weight, np.float64)
    w = w.T if tied else w
    z = np.einsum("btd,dv->btv", h, w) / temperature
    dz = gamma(h.shape[-1]) * np.einsum("btd,dv->btv", np.abs(h), np.abs(w)) / temperature + 2 * U_F32 * np.abs(z)
    top = z.max(-1, keepdims=True)
    lse = top[..., 0] + np.log(np.exp(z - top).sum(-1))
    p = np.exp(z - lse[..., None])
    t = np.asarray(targets)[..., None]
    logp = np.take_along_axis(z, t, -1)[..., 0] - lse
    entropy = lse - (p * z).sum(-1)
    n = z.shape[-1]
    lse_error = log_softmax_error_bound(lse, 0.0, n)
    logp_bound = np.take_along_axis(dz, t, -1)[..., 0] + dz.max(-1) + log_softmax_error_bound(lse, logp, n)
    spread = (p * np.abs(z - (p * z).sum(-1, keepdims=True))).sum(-1)
    entropy_bound = (dz.max(-1) * spread + lse_error
                     + (p * np.abs(z) * (U_F32 * (np.abs(z - lse[..., None]) + 3) + gamma(n))).sum(-1)
                     + U_F32 * (np.abs(lse) + np.abs(entropy)))
    return (logp, entropy), (logp_bound, entropy_bound)


def _float64_gradients_and_bounds(hidden, weight, targets, weights, tied, temperature):
    """The gradient of sum(w0 log p + w1 entropy) with respect to hidden and weight, in float64 from the
    float32 inputs, and a bound on any float32 evaluation of it.

    With z = h W / T: d/dz_v = w0 (onehot_v - p_v) - w1 p_v (z_v - zbar), zbar = sum_v p_v z_v; then
    d hidden = g W^T / T (a sum over V) and d W = h^T g / T (a sum over the B T positions). Errors:
    the logits' (dz, as for the values) and the log-sum-exp's (L) make each p_v off by a relative
    eps_v = dz_v + L + u (|z_v - lse| + 4); zbar is off by sum p (dz + eps |z|) + (gamma_V + 2u) sum p |z|;
    g_v by what those do to its two terms plus 4 roundings; each dot adds its own gamma_n + 2u."""
    h = np.asarray(hidden, np.float64)
    w = np.asarray(weight, np.float64)
    w = w.T if tied else w                                        # [D, V]
    c0, c1 = (np.asarray(x, np.float64)[..., None] for x in weights)
    z = np.einsum("btd,dv->btv", h, w) / temperature
    dz = gamma(h.shape[-1]) * np.einsum("btd,dv->btv", np.abs(h), np.abs(w)) / temperature + 2 * U_F32 * np.abs(z)
    top = z.max(-1, keepdims=True)
    lse = top + np.log(np.exp(z - top).sum(-1, keepdims=True))
    p = np.exp(z - lse)
    zbar = (p * z).sum(-1, keepdims=True)
    onehot = np.arange(z.shape[-1]) == np.asarray(targets)[..., None]
    g = c0 * (onehot - p) - c1 * p * (z - zbar)
    n_vocab, n_rows = z.shape[-1], h.shape[0] * h.shape[1]
    lse_error = dz.max(-1, keepdims=True) + log_softmax_error_bound(lse, 0.0, n_vocab)
    eps = dz + lse_error + U_F32 * (np.abs(z - lse) + 4)
    zbar_error = ((p * (dz + eps * np.abs(z))).sum(-1, keepdims=True)
                  + (gamma(n_vocab) + 2 * U_F32) * (p * np.abs(z)).sum(-1, keepdims=True))
    g_error = (np.abs(c0) * (p * eps + U_F32 * (1 + p))
               + np.abs(c1) * p * (eps * np.abs(z - zbar) + dz + zbar_error + 4 * U_F32 * (np.abs(z) + np.abs(zbar))))
    d_hidden = np.einsum("btv,dv->btd", g, w) / temperature
    d_hidden_error = (np.einsum("btv,dv->btd", g_error, np.abs(w))
                      + (gamma(n_vocab) + 2 * U_F32) * np.einsum("btv,dv->btd", np.abs(g), np.abs(w))) / temperature
    d_w = np.einsum("btd,btv->dv", h, g) / temperature
    d_w_error = (np.einsum("btd,btv->dv", np.abs(h), g_error)
                 + (gamma(n_rows) + 2 * U_F32) * np.einsum("btd,btv->dv", np.abs(h), np.abs(g))) / temperature
    if tied:
        d_w, d_w_error = d_w.T, d_w_error.T
    return (d_hidden, d_w), (d_hidden_error, d_w_error)


@pytest.mark.parametrize("tied", [True, False])
def test_float32_values_and_gradients_equal_the_plain_computation(small_chunks, tied):
    hidden, weight, targets, weights = _inputs(jnp.float32, tied)
    got = _fused(hidden, weight, targets, tied, 0.7)
    plain = _plain(hidden, weight, targets, tied, 0.7)
    # The fused (chunked) and the plain computation are two float32 programs: each is bounded against
    # float64 (was: rtol = atol = 1e-5 between them, 3.5x above their difference on one CPU).
    wants, bounds = _float64_values_and_bounds(hidden, weight, targets, tied, 0.7)
    for g, pl, w, bound in zip(got, plain, wants, bounds):
        assert g.shape == (B, T) and g.dtype == jnp.float32
        for value in (g, pl):
            excess = np.abs(np.asarray(value, np.float64) - w) / bound
            assert excess.max() <= 1, excess.max()
    grads = jax.grad(_objective(_fused, targets, weights, tied, 0.7), argnums=(0, 1))(hidden, weight)
    reference = jax.grad(_objective(_plain, targets, weights, tied, 0.7), argnums=(0, 1))(hidden, weight)
    # each against float64 too (was: rtol 1e-4, atol 1e-5 between them)
    wants, bounds = _float64_gradients_and_bounds(hidden, weight, targets, weights, tied, 0.7)
    for g, pl, w, bound in zip(grads, reference, wants, bounds):
        assert g.shape == pl.shape == w.shape
        for value in (g, pl):
            excess = np.abs(np.asarray(value, np.float64) - w) / bound
            assert excess.max() <= 1, excess.max()


@pytest.mark.parametrize("tied", [True, False])
def test_bfloat16_matches_float32_within_rounding_and_keeps_every_dot_bf16(small_chunks, tied):
    hidden, weight, targets, weights = _inputs(jnp.bfloat16, tied)
    got = _fused(hidden, weight, targets, tied, 1.0)
    f32 = [a.astype(jnp.float32) for a in (hidden, weight)]
    want = _plain(*f32, targets, tied, 1.0)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-3, atol=1e-3)
    objective = _objective(_fused, targets, weights, tied, 1.0)
    grads = jax.grad(objective, argnums=(0, 1))(hidden, weight)
    reference = jax.grad(_objective(_plain, targets, weights, tied, 1.0), argnums=(0, 1))(*f32)
    for g, w in zip(grads, reference):
        assert g.dtype == jnp.bfloat16
        scale = float(jnp.max(jnp.abs(w)))
        np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w), atol=0.03 * scale)
    dots = dot_operand_dtypes(objective, hidden, weight, argnums=(0, 1))
    # forward head; backward: recomputed head, d_hidden, d_weight
    assert dots == ["bf16"] * 4, dots


def test_targets_must_match_the_hidden_states():
    hidden, weight, targets, _ = _inputs(jnp.float32, True)
    with pytest.raises(ValueError, match="targets"):
        H.token_logprobs_and_entropy_from_hidden(hidden, weight, targets[:, :-1], tied=True)
