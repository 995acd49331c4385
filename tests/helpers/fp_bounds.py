"""Rounding-error bounds for the numeric tests, from the arithmetic rather than from one machine.

Two float32 implementations of the same function (ours and transformers', XLA on one CPU and on
another, one device and a sharded mesh) differ by the sum of their rounding errors, and those depend
on the CPU's kernels (accumulation order, FMA, blocking, thread count). A bound fitted to their
difference on one machine fails on the next. The tests here compare each float32 result with a
float64 reference instead and bound the distance by what float32 arithmetic allows; docs/testing.md
lists every bound and what it rests on.

u is the unit roundoff: 2^-24 for float32, 2^-8 for bfloat16 (inputs rounded to bfloat16).

* Worst case (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., Lemma 3.1 and
  eq. 3.5): a dot product of length n accumulated in any order satisfies
  |fl(a.b) - a.b| <= gamma_n * sum_i |a_i b_i|, gamma_n = n u / (1 - n u).
* Probabilistic (Higham & Mary, SIAM J. Sci. Comput. 41(5), 2019, Theorem 3.1): with rounding
  errors independent and of mean zero, the same holds with gamma_n replaced by about lambda sqrt(n) u.
  Their guarantee, probability at least 1 - 2n exp(-lambda^2 (1 - u)^2 / 2), is a union bound over the
  n errors and says little for large n; what the tests rely on is the sqrt(n) growth itself, with
  lambda = 4 as the safety factor, and the measured ratios quoted below show the headroom. It is the
  useful form where a worst case over a whole network (every error adding up with the same sign) is
  orders of magnitude loose.
"""

from __future__ import annotations

import math

import numpy as np

U_F32 = 2.0 ** -24
U_BF16 = 2.0 ** -8


def gamma(n: int, u: float = U_F32) -> float:
    """Higham's gamma_n = n u / (1 - n u): the worst-case relative error of a length-n sum/dot."""
    assert n * u < 1, (n, u)
    return n * u / (1 - n * u)


def probabilistic_gamma(n: int, lam: float, u: float = U_F32) -> float:
    """Higham & Mary's gamma~_n(lambda) = exp(lambda sqrt(n) u + n u^2 / (1 - u)) - 1 ~ lambda sqrt(n) u."""
    return math.expm1(lam * math.sqrt(n) * u + n * u * u / (1 - u))


def decoder_path_terms(*, layers: int, hidden: int, heads: int, head_dim: int, kv_heads: int,
                       intermediate: int, seq: int) -> int:
    """How many float32 terms a logit's rounding errors accumulate over, along the longest path
    through a Llama-style decoder: per layer the attention norm's mean of squares (hidden), the
    q/k/v projection (hidden), the scores (head_dim), softmax's sum and the probabilities times the
    values (2 seq), the output projection (heads * head_dim), the MLP norm (hidden), gate/up (hidden),
    down (intermediate); then the final norm (hidden) and the LM head (hidden).

    Used as n in probabilistic_gamma: the logit's error is the sum, weighted by sensitivities that the
    normalisations keep O(1), of one rounding error per accumulated term (kv_heads is kept in the
    signature only so the call names the whole configuration)."""
    del kv_heads
    per_layer = hidden + hidden + head_dim + 2 * seq + heads * head_dim + hidden + hidden + intermediate
    return layers * per_layer + 2 * hidden


def logit_error_bound(hidden_f64: np.ndarray, head_f64: np.ndarray, n_terms: int, lam: float = 4.0,
                      u: float = U_F32) -> np.ndarray:
    """Per-logit bound on |float32 logit - float64 logit| for a decoder forward pass.

    hidden_f64: [..., D] the float64 reference's final (normed) hidden states; head_f64: [V, D] the LM
    head. S = sum_j |h_j W_vj| is the scale of the last dot; every rounding error upstream reaches the
    logit through that dot, so it enters in units of S too (relative error of h times S). The bound is
    probabilistic_gamma(n_terms, lam) * S: lambda = 4 standard deviations of a random walk of n_terms
    rounding errors. Measured on an AMD EPYC (AVX-512), err / (sqrt(n) u S) is at most 0.20 for XLA's
    and 0.13 for torch's float32 logits on the 2-layer test models and 0.053 on SmolLM2 (30 layers),
    so the bound (lambda = 4) has 20x headroom or more; a real bug (a wrong weight, a dropped mask,
    RoPE off by one position) moves logits by O(0.1 S): thousands of times the bound.
    """
    scale = np.abs(hidden_f64) @ np.abs(head_f64).T
    return probabilistic_gamma(n_terms, lam, u) * scale


def log_softmax_error_bound(lse: np.ndarray | float, logp: np.ndarray | float, n_terms: int, sums: int = 1,
                            lam: float = 4.0, u: float = U_F32):
    """Bound on |float32 log p - float64 log p| for log p = x_t - logsumexp(x) (float32 inputs taken as
    exact), optionally renormalised over a nucleus (one more sum: sums=2).

    Each sum of n_terms positive terms (the softmax denominator, a nucleus' mass) has a relative error
    of at most probabilistic_gamma(n_terms, lam), an absolute error once through the log; exp, log,
    the max shift and the subtractions add a few roundings of size u times the magnitudes involved,
    8 u (1 + |lse| + |log p|) being a generous count of them."""
    return sums * probabilistic_gamma(n_terms, lam, u) + 8 * u * (1 + np.abs(lse) + np.abs(logp))
