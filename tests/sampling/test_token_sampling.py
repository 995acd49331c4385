"""The token draw (rltf_jax/token_sampling.py) against the exact distributions it claims to sample:
frequencies over many rows, the logprobs it reports, the nucleus read from the top candidates and
the sort-free nucleus of flat rows both drawing what a full sort draws (ties included), and a row's
draw independent of the rest of its batch."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fp_bounds import log_softmax_error_bound
from rltf_jax.sampling.token_draw import _threshold_nucleus, _uniforms, first_argmax, full_sort_nucleus, sample_tokens

ROWS = 20_000


def exact_distribution(logits, temperature, top_p=1.0, top_k=0):
    """Reference in numpy: softmax(logits / T), restricted to top-k then the top-p nucleus, renormalised."""
    x = np.asarray(logits, np.float64) / temperature
    order = np.argsort(-x, kind="stable")
    keep = np.zeros_like(x, bool)
    keep[order[:top_k] if top_k else order] = True
    p = np.where(keep, np.exp(x - x.max()), 0.0)
    p /= p.sum()
    if top_p < 1.0:
        sorted_p = p[order]
        kept = np.cumsum(sorted_p) - sorted_p < top_p
        nucleus = np.zeros_like(keep)
        nucleus[order[kept]] = True
        p = np.where(nucleus, p, 0.0)
        p /= p.sum()
    return p


def sorted_draw_float64(x, top_p, u):
    """numpy float64 reference of one row's nucleus draw: (token, margin), margin = how far top_p and
    u x nucleus mass are from any cumulative-mass boundary (a draw that close is a rounding call)."""
    x = np.asarray(x, np.float64)
    order = np.argsort(-x, kind="stable")
    p = np.exp(x[order] - x.max())
    p /= p.sum()
    before = np.cumsum(p) - p
    kept = before < top_p
    cdf = np.cumsum(p[kept])
    target = u * cdf[-1]
    index = int(np.sum(cdf < target))
    margin = min(np.abs(before - top_p).min(), np.abs(cdf - target).min())
    return int(order[index]), margin


@functools.partial(jax.jit, static_argnames=("top_k", "use_top_p", "candidates"))
def draw_many(logits, key, temperature, top_p, top_k, use_top_p, candidates):
    batch = jnp.broadcast_to(logits, (ROWS, logits.shape[-1]))
    keys = jax.random.split(key, ROWS)
    return sample_tokens(batch, keys, temperature, top_p, greedy=False, top_k=top_k, use_top_p=use_top_p,
                         nucleus_candidates=candidates)


def logits_with_tail(v=300, seed=0):
    """A peaked head and a long flat tail, like a language model's next-token logits."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=v).astype(np.float32)
    x[:6] += np.array([6.0, 5.5, 5.0, 4.0, 3.5, 3.0], np.float32)
    return rng.permutation(x)


@pytest.mark.parametrize("mode", ["temperature", "top_k", "top_k+top_p", "top_p_fast", "top_p_threshold"])
def test_frequencies_and_logprobs_match_the_exact_distribution(mode):
    logits = logits_with_tail()
    temperature, top_p, top_k, candidates = 0.7, 1.0, 0, 64
    if mode.startswith("top_k"):
        top_k = 20
    if "top_p" in mode:
        top_p = 0.9
    if mode == "top_p_threshold":
        temperature, candidates = 2.5, 8  # flat enough that 8 candidates hold < 90%: the sort-free path
    expected = exact_distribution(logits, temperature, top_p, top_k)
    if mode == "top_p_fast":
        assert np.sort(expected)[::-1][:64].sum() > 0.99  # the 64 candidates hold the nucleus
    if mode == "top_p_threshold":
        x = logits / temperature
        head = np.sort(np.exp(x - x.max()) / np.exp(x - x.max()).sum())[::-1][:8].sum()
        assert head < top_p
    tokens, logp = draw_many(jnp.asarray(logits), jax.random.key(1), temperature, top_p, top_k,
                             top_p < 1.0, candidates)
    tokens, logp = np.asarray(tokens), np.asarray(logp)
    assert set(np.unique(tokens)) <= set(np.flatnonzero(expected > 0))
    np.testing.assert_allclose(logp, np.log(expected[tokens]), atol=2e-5)
    # Pearson's chi-square over the tokens of nonzero probability against df + 6 sd (p ~ 1e-6 for a
    # correct sampler); a sampler off by a few percent on the head tokens fails it by far.
    observed = np.bincount(tokens, minlength=len(logits))[expected > 0]
    counts = ROWS * expected[expected > 0]
    chi2, df = float(((observed - counts) ** 2 / counts).sum()), len(counts) - 1
    assert chi2 < df + 6 * np.sqrt(2 * df), (chi2, df)


def test_nucleus_from_candidates_equals_the_full_sort_and_rows_are_independent():
    rng = np.random.default_rng(3)
    peaked = np.stack([logits_with_tail(seed=s) for s in range(6)]) / 0.7
    flat = rng.normal(size=(2, 300)).astype(np.float32) * 0.1  # candidates hold < top_p: sort-free path
    x = jnp.asarray(np.concatenate([peaked, flat]).astype(np.float32))
    keys = jax.random.split(jax.random.key(7), x.shape[0])
    tokens, logp = sample_tokens(x, keys, 1.0, 0.9, greedy=False, top_k=0, use_top_p=True)
    uniforms = _uniforms(keys, x.shape[0])
    ref_tokens, ref_logp = full_sort_nucleus(x, 0.9, uniforms)
    np.testing.assert_array_equal(tokens, ref_tokens)
    for row in range(x.shape[0]):  # alone, each row draws what it drew in the mixed batch
        alone, alone_logp = sample_tokens(x[row:row + 1], keys[row:row + 1], 1.0, 0.9, greedy=False,
                                          top_k=0, use_top_p=True)
        assert int(alone[0]) == int(tokens[row])
        # The draws are equal by the arithmetic, not by luck: top_p and u x mass are > 1e-5 (in
        # float64) from every cumulative-mass boundary, more than float32 cumulative sums of <= 300
        # probabilities can move (probabilistic_gamma(300, 4) = 4.2e-6, plus a few u per term).
        token, margin = sorted_draw_float64(x[row], 0.9, float(uniforms[row]))
        assert margin > 1e-5 and int(tokens[row]) == token, (row, margin)
        # log p of the draw: the candidate path, the full sort and the row alone are three float32
        # programs, so each is bounded against float64 (was: 1e-6 between them, 2 ulps at |log p| ~ 5).
        row64 = np.asarray(x[row], np.float64)
        lse = row64.max() + np.log(np.exp(row64 - row64.max()).sum())
        want = np.log(exact_distribution(row64, 1.0, 0.9)[token])
        bound = log_softmax_error_bound(lse, want, x.shape[1], sums=2)
        for got in (logp[row], ref_logp[row], alone_logp[0]):
            assert abs(float(got) - want) <= bound, (row, float(got), want, bound)


def test_sort_free_nucleus_draws_what_a_stable_sort_draws_including_ties():
    """Rows full of exact ties (logits rounded to a grid) and rows of distinct logits, several top_p:
    the same token as the float64 sorted reference wherever the draw is not a rounding call, and
    log p of that token under the nucleus."""
    rng = np.random.default_rng(11)
    checked = 0
    for trial in range(12):
        grid = (1.0, 0.5, 0.001)[trial % 3]  # 1.0: many ties at every level; 0.001: nearly none
        x = np.round(rng.normal(size=(64, 200)) * 2 / grid) * grid
        x = jnp.asarray(x.astype(np.float32))
        keys = jax.random.split(jax.random.key(trial), x.shape[0])
        uniforms = _uniforms(keys, x.shape[0])
        for top_p in (0.2, 0.7, 0.95):
            tokens, logp = jax.jit(_threshold_nucleus)(x, top_p, uniforms)
            ref_tokens, ref_logp = full_sort_nucleus(x, top_p, uniforms)
            for row in range(x.shape[0]):
                token, margin = sorted_draw_float64(x[row], top_p, float(uniforms[row]))
                if margin < 1e-5:
                    continue
                checked += 1
                assert int(tokens[row]) == token == int(ref_tokens[row]), (trial, top_p, row)
                np.testing.assert_allclose(logp[row], ref_logp[row], atol=2e-5)
    assert checked > 0.9 * 12 * 3 * 64


def test_first_argmax_is_argmax_including_ties():
    x = jax.random.normal(jax.random.key(0), (16, 1000))
    np.testing.assert_array_equal(first_argmax(x), jnp.argmax(x, axis=-1))
    tied = jnp.zeros((2, 10)).at[0, 3].set(1.0).at[0, 7].set(1.0)
    np.testing.assert_array_equal(first_argmax(tied), [3, 0])
    tokens, logp = sample_tokens(x, jax.random.key(0), 1.0, 1.0, greedy=True, top_k=0, use_top_p=False)
    np.testing.assert_array_equal(tokens, jnp.argmax(x, axis=-1))
    # log p of the argmax against float64 (was: 1e-6, 2 ulps, against jax's float32 log_softmax)
    x64 = np.asarray(x, np.float64)
    lse = x64.max(-1) + np.log(np.exp(x64 - x64.max(-1, keepdims=True)).sum(-1))
    want = x64.max(-1) - lse
    assert np.all(np.abs(np.asarray(logp) - want) <= log_softmax_error_bound(lse, want, x.shape[-1]))
    tied_tokens, tied_logp = sample_tokens(tied, jax.random.key(0), 1.0, 1.0, greedy=True, top_k=0,
                                           use_top_p=False)
    np.testing.assert_array_equal(tied_tokens, [3, 0])
    np.testing.assert_allclose(tied_logp, [np.log(np.e / (2 * np.e + 8)), -np.log(10.0)], rtol=1e-6)
