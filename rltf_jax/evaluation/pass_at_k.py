"""Unbiased pass@k, n@k and their confidence intervals.

pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", eq. 1): with n
samples of which c are correct, the unbiased estimate for one problem is

    pass@k = 1 - C(n - c, k) / C(n, k)  = 1 - prod_{i = n-c+1}^{n} (1 - k / i)   (= 1 if n - c < k),

averaged over problems. n@k (Li et al. 2022, AlphaCode): the fraction of problems solved when k
samples are drawn and n of them may be submitted; with at most n submissions chosen by passing the
public tests, a problem counts as solved when one of the first n public-passing samples (in draw
order) is correct. For multi-turn RLEF episodes with one final answer each, n@k over episodes is
pass@k over their final answers. Confidence intervals: a percentile bootstrap over problems
(resampling problems, the dominant source of variance) with a fixed seed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def pass_at_k_one(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``n`` samples, ``c`` of them correct."""
    if not (0 <= c <= n):
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if k < 1 or k > n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def estimate_pass_at_k(num_samples: Sequence[int] | int, num_correct: Sequence[int], k: int) -> np.ndarray:
    """Per-problem unbiased pass@k: ``[problems]`` float64 (``num_samples`` may be one int)."""
    correct = np.asarray(num_correct, dtype=np.int64)
    samples = np.broadcast_to(np.asarray(num_samples, dtype=np.int64), correct.shape)
    return np.array([pass_at_k_one(int(n), int(c), k) for n, c in zip(samples, correct)],
                    dtype=np.float64)


def bootstrap_ci(values: Sequence[float], *, confidence: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of per-problem ``values`` ``[problems]``."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def n_at_k_one(passed_public: Sequence[bool], correct: Sequence[bool], n: int, k: int) -> float:
    """n@k for one problem from one ordered draw of samples (1.0 solved / 0.0 not).

    Of the first ``k`` samples, the first ``n`` that pass the public tests are submitted.
    ``passed_public`` / ``correct``: ``[samples]`` bools, in draw order (at least k).
    """
    if len(passed_public) != len(correct):
        raise ValueError("passed_public and correct need the same length")
    if k > len(correct) or n < 1 or k < 1:
        raise ValueError(f"need 1 <= n, 1 <= k <= samples ({len(correct)}), got n={n}, k={k}")
    submitted = [c for p, c in zip(passed_public[:k], correct[:k]) if p][:n]
    return 1.0 if any(submitted) else 0.0


def summarize(values: Sequence[float], **ci_kwargs) -> dict:
    """``{"mean", "ci_low", "ci_high", "num_problems"}`` for per-problem values."""
    values = np.asarray(values, dtype=np.float64)
    low, high = bootstrap_ci(values, **ci_kwargs)
    return {"mean": float(values.mean()), "ci_low": low, "ci_high": high,
            "num_problems": int(values.size)}
