"""Which sampled tokens two float32 sampler programs must agree on, from the arithmetic
(docs/testing.md).

Two sampler programs (one cache buffer vs segments, whole batch vs row chunks, a fused kernel vs XLA,
a kept cache vs a full prefill) compute each step's logits with different rounding. Each is within
`f64_reference`'s bound B_v of the float64 logits (tiny-llama's exported weights in transformers
float64). A step's token then follows from the arithmetic only where the float64 draw has a margin
beyond those bounds:

* greedy: the float64 top-1 exceeds the top-2 by more than B_top1 + B_top2 (as test_sharding.py);
* inverse-CDF draw (`token_sampling._inverse_cdf`: the first j with cdf_j >= u * cdf_V, u the row's
  uniform, reconstructed here from the key exactly as `decode_loop` derives it: the step's key is the
  i-th split of the request's key, folded with the row id): each float32 probability p_v is within
  a relative expm1(eps_v) of float64, eps_v = ((B_v + max B) + u (|z_v| + max|z|)) / T + the
  log-softmax's own bound (fp_bounds.log_softmax_error_bound), so each normalised cdf_j is within
  delta = 2 sum_v p_v expm1(eps_v) + 2 gamma~_V(4) + 4 u of float64 (the cumsum and the product
  u * cdf_V add the last two). A draw whose uniform is more than delta from both ends of its
  token's cdf interval is the float64 draw in every float32 program.

`first_rounding_calls` returns, per row of a rollout, the first step that is a rounding call (or the
row's length), after asserting every earlier token is the float64 draw.

Used for greedy steps only (test_sampling.py). The inverse-CDF check is not used: on tiny-llama
(random weights) the next-token distribution is nearly flat (max p ~ 5e-5 over 49,152 tokens), so
every token's cdf interval is ~2e-5 wide while delta is ~2.7e-4 (T = 0.8 and 1): by this bound every
inverse-CDF draw is a rounding call, and a test that compares two programs only up to the first call
compares nothing. The greedy check and the uniforms' rebuild
work (the sampler's tokens were the float64 draws at every step checked). Grounding the sampled-token
equalities needs either a peaked test distribution (a model or temperature where the drawn token's
interval is wider than 2 delta) or a bound on the two programs' *difference* that uses the fact that
the sampling code after the logits is the same operations in both (docs/testing.md, open item).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from fp_bounds import U_F32, log_softmax_error_bound, probabilistic_gamma


def step_uniforms(rng, row_id: int, steps: int) -> np.ndarray:
    """The uniforms `decode_loop.decode_tokens` draws for one row: step i uses fold_in(k_i, row_id),
    (rng_{i+1}, k_i) = split(rng_i), rng_0 = the request's key; threefry and uniform's bit
    arithmetic are integer operations, so these are the sampler's bits on any CPU."""
    tiny = jnp.finfo(jnp.float32).tiny
    out = []
    for _ in range(steps):
        rng, key = jax.random.split(rng)
        out.append(float(jax.random.uniform(jax.random.fold_in(key, row_id), (), minval=tiny, maxval=1.0)))
    return np.asarray(out, np.float64)


def _draw_margin(z, bound, uniform, temperature):
    """(float64 draw, margin / delta) of one inverse-CDF step; z, bound: [V] float64 logits, bounds."""
    x = z / temperature
    top = x.max()
    lse = top + np.log(np.exp(x - top).sum())
    logp = x - lse
    p = np.exp(logp)
    eps = ((bound + bound.max()) + U_F32 * (np.abs(z) + np.abs(z).max())) / temperature \
        + log_softmax_error_bound(lse, logp, len(z))
    delta = 2 * float(np.sum(p * np.expm1(eps))) + 2 * probabilistic_gamma(len(z), 4.0) + 4 * U_F32
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    j = int(min(np.searchsorted(cdf, uniform, side="left"), len(z) - 1))
    lower = cdf[j - 1] if j > 0 else 0.0
    margin = min(uniform - lower, cdf[j] - uniform)
    return j, margin / delta


def _greedy_margin(z, bound):
    order = np.argsort(-z, kind="stable")
    a, b = order[0], order[1]
    return int(a), (z[a] - z[b]) / (bound[a] + bound[b])


def first_rounding_calls(f64, rollout, rng, *, greedy: bool, temperature: float = 1.0, row_ids=None,
                         rows=None, prompt_ids=None, stats: list | None = None) -> dict:
    """{row: the first step whose token is a rounding call, or the row's length}; asserts every earlier
    token of `rollout` is the float64 draw (greedy or inverse-CDF at `temperature`, no top-k/top-p).
    row_ids default to 0..B-1 (row_offset 0); prompt_ids[row] overrides the rollout's prompt (a turn
    over a kept cache: the whole conversation so far). `stats` collects every step's margin / delta."""
    out = {}
    for row in range(len(rollout.response_tokens)) if rows is None else rows:
        m = rollout.response_mask[row]
        reply = rollout.response_tokens[row][m].tolist()
        prompt = (list(prompt_ids[row]) if prompt_ids is not None
                  else rollout.prompt_tokens[row][rollout.prompt_mask[row]].tolist())
        z, bound = f64.logits(prompt + reply)
        z, bound = z[len(prompt) - 1:], bound[len(prompt) - 1:]
        uniforms = None if greedy else step_uniforms(rng, row if row_ids is None else row_ids[row], len(reply))
        out[row] = len(reply)
        for i, token in enumerate(reply):
            if greedy:
                want, ratio = _greedy_margin(z[i], bound[i])
            else:
                want, ratio = _draw_margin(z[i], bound[i], uniforms[i], temperature)
            if stats is not None:
                stats.append(ratio)
                if os.environ.get("RLTF_PRINT_MARGINS"):
                    print("MARGIN", min(stats), sum(r <= 1 for r in stats), len(stats))
            if ratio <= 1:
                out[row] = i
                break
            assert token == want, (row, i, token, want, ratio)
    return out


def assert_same_draws(calls: dict, a, b, names=("response_tokens", "response_mask")) -> None:
    """a and b (two programs' rollouts) equal on every row up to its first rounding call (`calls`)."""
    for row, upto in calls.items():
        for name in names:
            np.testing.assert_array_equal(getattr(a, name)[row][:upto], getattr(b, name)[row][:upto],
                                          err_msg=f"{name} row {row}")
        if upto == int(a.response_mask[row].sum()):  # no call: the whole row, padding included
            for name in names:
                np.testing.assert_array_equal(getattr(a, name)[row], getattr(b, name)[row],
                                              err_msg=f"{name} row {row}")
