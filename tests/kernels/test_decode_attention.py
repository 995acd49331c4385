"""The fused CPU decode-attention kernel (kernels/decode_attention.cc) against XLA's decode attention:
same outputs, the new key and value written at the right slot of the tiled cache, clear errors.
Built for real with the machine's C++ compiler (the first test pays the compile, ~5 s)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fp_bounds import U_F32, probabilistic_gamma
from rltf_jax.kernels import decode_attention as kernel
from rltf_jax.models.decode import TILE, _cached_attention, to_key_tiles


@pytest.fixture(scope="module", autouse=True)
def built():
    assert kernel.available(), "the kernel must build on this machine (g++ is installed)"


def _case(seed, rows, kv_heads, group, dim, slots, dtype):
    keys = jax.random.split(jax.random.key(seed), 6)
    normal = lambda k, shape: jax.random.normal(k, shape, jnp.float32).astype(dtype)
    q = normal(keys[0], (rows, kv_heads * group, dim))
    k_new, v_new = normal(keys[1], (rows, kv_heads, dim)), normal(keys[2], (rows, kv_heads, dim))
    cache_k = normal(keys[3], (rows, kv_heads, slots, dim))  # natural layout; tiled below
    cache_v = normal(keys[4], (rows, kv_heads, slots, dim))
    valid = jax.random.bernoulli(keys[5], 0.75, (rows, slots))
    return q, k_new, v_new, cache_k, cache_v, valid


def _reference(q, k_new, v_new, cache_k, cache_v, valid, index):
    """XLA's decode attention (models/decode.py) over the natural layout, after writing slot index."""
    ck = cache_k.at[:, :, index].set(k_new)
    cv = cache_v.at[:, :, index].set(v_new)
    visible = (valid & (jnp.arange(valid.shape[1]) <= index))[:, None, :]
    return _cached_attention(q[:, None], [(ck, cv, visible)])[:, 0], ck, cv


def _float64_attention(q, ck, cv, valid, index):
    """Decode attention in float64 from the float32 inputs (q scaled and rounded to float32 as both
    float32 paths do), and a bound on any float32 evaluation's error, per output element:

    scores s = q.k over D: |ds| <= Delta = gamma~_D(4) sum_d |q_d k_d| (fp_bounds.probabilistic_gamma);
    softmax weights: relative error 2 Delta (shift-invariance: an error in s_i and in the max or the
    log-sum) + u |s - max| (exp of a rounded argument) + gamma~_S(4) (the sum of S weights) + (S/16 + 4) u
    (exp, the division, and the online softmax's rescale per tile of 16 slots); out_j = sum_s p_s v_sj
    over S slots adds gamma~_S(4). All in units of sum_s p_s |v_sj|."""
    rows, heads, dim = q.shape
    kv_heads, slots = ck.shape[1], ck.shape[2]
    q_scaled = np.asarray((q.astype(jnp.float32) * dim ** -0.5), np.float64)
    k = np.repeat(np.asarray(ck, np.float64), heads // kv_heads, axis=1)  # [rows, heads, slots, dim]
    v = np.repeat(np.asarray(cv, np.float64), heads // kv_heads, axis=1)
    visible = (np.asarray(valid) & (np.arange(slots) <= index))[:, None, :]
    scores = np.where(visible, np.einsum("rhd,rhsd->rhs", q_scaled, k), -np.inf)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    exact = np.einsum("rhs,rhsd->rhd", p, v)
    delta = probabilistic_gamma(dim, 4.0) * np.einsum("rhd,rhsd->rhs", np.abs(q_scaled), np.abs(k))
    delta = np.where(visible, delta, 0.0).max(-1)[..., None]
    spread = np.where(visible, scores.max(-1, keepdims=True) - scores, 0.0).max(-1)[..., None]
    relative = (2 * delta + U_F32 * spread + 2 * probabilistic_gamma(slots, 4.0)
                + (slots / 16 + 4) * U_F32)
    return exact, relative * np.einsum("rhs,rhsd->rhd", p, np.abs(v))


def _fused(q, k_new, v_new, cache_k, cache_v, valid, index):
    dt, dim = q.dtype, q.shape[-1]
    q_scaled = (q.astype(jnp.float32) * dim ** -0.5).astype(dt).astype(jnp.float32)
    tiles = to_key_tiles(cache_k.transpose(0, 2, 1, 3))
    run = jax.jit(lambda *a: kernel.decode_attention(*a, round_probs_bf16=dt == jnp.bfloat16))
    out, tiles, values = run(q_scaled, k_new, v_new, tiles, cache_v, valid, jnp.int32(index))
    return out, tiles, values


@pytest.mark.parametrize("kv_heads,group,dim", [(3, 3, 64), (2, 4, 128), (1, 7, 64), (2, 2, 16), (1, 5, 48)])
@pytest.mark.parametrize("index", [0, 15, 16, 37, 63])
def test_float32_output_and_cache_writes_equal_xla_decode_attention(kv_heads, group, dim, index):
    """GQA groups of 1-7 heads (chunks of up to 4), head dims on the templated (64, 128) and generic
    (16, 48) paths, write slots on and off tile boundaries, masked slots before and after `index`."""
    q, k_new, v_new, cache_k, cache_v, valid = _case(index, 3, kv_heads, group, dim, 64, jnp.float32)
    valid = valid.at[:, index].set(True)  # decoding: the slot being written is a real token
    want, ck, cv = _reference(q, k_new, v_new, cache_k, cache_v, valid, index)
    out, tiles, values = _fused(q, k_new, v_new, cache_k, cache_v, valid, index)
    # The kernel (built with -march=native: its FMAs and vector width are the CPU's) and XLA are two
    # float32 programs: each is bounded against float64 (was: atol = rtol = 2e-6 between them).
    exact, bound = _float64_attention(q, ck, cv, valid, index)
    for got in (out, want):
        excess = np.abs(np.asarray(got, np.float64) - exact) / bound
        assert excess.max() <= 1, excess.max()
    np.testing.assert_array_equal(np.asarray(values), np.asarray(cv))
    np.testing.assert_array_equal(np.asarray(tiles), np.asarray(to_key_tiles(ck.transpose(0, 2, 1, 3))))


def test_slots_after_index_are_never_read():
    """Garbage (NaN) in every slot past `index`, as in a cache not filled that far, changes nothing."""
    q, k_new, v_new, cache_k, cache_v, valid = _case(1, 2, 3, 3, 64, 48, jnp.float32)
    valid = valid.at[:, 20].set(True)
    clean, _, _ = _fused(q, k_new, v_new, cache_k, cache_v, valid, 20)
    dirty, _, _ = _fused(q, k_new, v_new, cache_k.at[:, :, 21:].set(jnp.nan), cache_v.at[:, :, 21:].set(jnp.nan),
                         valid.at[:, 21:].set(True), 20)
    np.testing.assert_array_equal(np.asarray(clean), np.asarray(dirty))


def test_bfloat16_matches_xla_to_bfloat16_rounding():
    q, k_new, v_new, cache_k, cache_v, valid = _case(2, 4, 3, 3, 64, 96, jnp.bfloat16)
    valid = valid.at[:, 70].set(True)
    want, _, cv = _reference(q, k_new, v_new, cache_k, cache_v, valid, 70)
    out, _, values = _fused(q, k_new, v_new, cache_k, cache_v, valid, 70)
    assert values.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(values), np.asarray(cv))
    got = np.asarray(out.astype(jnp.bfloat16).astype(jnp.float32))
    want = np.asarray(want.astype(jnp.float32))
    np.testing.assert_allclose(got, want, atol=2e-2)  # one bf16 step at |x| ~ 1
    assert np.mean(got == want) > 0.9


def test_bad_shapes_and_index_fail_with_a_message_that_names_them():
    q, k_new, v_new, cache_k, cache_v, valid = _case(3, 2, 3, 3, 64, 32, jnp.float32)
    tiles = to_key_tiles(cache_k.transpose(0, 2, 1, 3))
    call = jax.jit(lambda *a: kernel.decode_attention(*a, round_probs_bf16=False))
    with pytest.raises(Exception, match="index 32 outside the cache's 32 slots"):
        jax.block_until_ready(call(q, k_new, v_new, tiles, cache_v, valid, jnp.int32(32)))
    with pytest.raises(Exception, match=r"keys \[B, K, S / 16, D, 16\]"):
        jax.block_until_ready(call(q, k_new, v_new, cache_k, cache_v, valid, jnp.int32(3)))  # untiled keys
    with pytest.raises(Exception, match="must all be f32 or all bf16"):
        jax.block_until_ready(call(q, k_new.astype(jnp.bfloat16), v_new, tiles, cache_v, valid, jnp.int32(3)))


def test_a_missing_compiler_is_a_build_error_that_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RLTF_JAX_CACHE", str(tmp_path))
    with pytest.raises(kernel.KernelBuildError, match="no-such-c\\+\\+"):
        kernel.build(cxx="no-such-c++")
    built = kernel.build()  # a fresh cache directory: compiles, then reuses the file
    assert built.parent == tmp_path / "kernels" and built.exists()
    assert kernel.build() == built and TILE == 16
