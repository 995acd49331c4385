"""Drawing one token per row from logits: greedy, temperature, top-k, top-p (nucleus); exact and cheap.

The obvious forms are slow on XLA:CPU at a 49k vocabulary, measured at batch 64 (docs/benchmarks.md):
`jnp.argmax` ~15 ms (a variadic reduce) against ~3 ms for max-then-first-index; Gumbel-max
`jax.random.categorical` ~65 ms (49k random numbers per row) against ~9 ms for an inverse-CDF draw
with one uniform per row; and a full `jnp.sort` for top-p ~590 ms per decode step, several times the
model's own forward. So:

- greedy: the first index of the row maximum (what argmax returns);
- top-p: the nucleus is read from the `NUCLEUS_CANDIDATES` largest logits (`lax.top_k`) whenever
  they hold at least `top_p` of the probability mass, which makes that prefix exactly the nucleus
  a full sort would give; a row whose candidates hold less (a very flat distribution) is drawn
  from a full sort instead, computed only on steps where some row needs it;
- top-k: the k candidates, renormalised (and the nucleus within them when top_p < 1), as before;
- plain temperature: an inverse-CDF draw over the whole vocabulary.

Each row's draw uses only its own logits and its own key, so a row samples the same token whatever
batch it is in, and logprobs are log p(token) under the distribution actually sampled from.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NUCLEUS_CANDIDATES = 64  # top-p reads the nucleus from this many largest logits when they hold top_p of the mass


def first_argmax(logits: jax.Array) -> jax.Array:
    """[B, V] -> [B] int32: index of each row's maximum (the first on ties), as jnp.argmax but
    two plain reductions (~5x faster on XLA:CPU at V = 49k)."""
    return _max_and_first_index(logits)[1]


def _max_and_first_index(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """[B, V] -> (row maximum [B, 1], index of its first occurrence [B] int32)."""
    v = logits.shape[-1]
    top = jnp.max(logits, axis=-1, keepdims=True)
    index = jnp.arange(v, dtype=jnp.int32)
    return top, jnp.min(jnp.where(logits == top, index, v), axis=-1).astype(jnp.int32)


def _greedy(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """[B, V] -> (first_argmax [B] int32, its log-softmax [B] float32). The chosen logit *is* the
    row maximum, so its log-probability is -log(sum(exp(logits - max))): one max, one first index
    and one exp-sum over the row, without the [B, V] log-softmax and the gather from it."""
    top, tokens = _max_and_first_index(logits)
    return tokens, -jnp.log(jnp.sum(jnp.exp(logits - top), axis=-1))


def _uniforms(rng: jax.Array, batch: int) -> jax.Array:
    """[B] float32 in (0, 1): one draw per row (rng: one key, or [B] per-row keys)."""
    tiny = jnp.finfo(jnp.float32).tiny
    if jnp.ndim(rng) == 0:
        return jax.random.uniform(rng, (batch,), minval=tiny, maxval=1.0)
    return jax.vmap(lambda key: jax.random.uniform(key, (), minval=tiny, maxval=1.0))(rng)


def _inverse_cdf(logits: jax.Array, uniforms: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Draws index j with probability softmax(logits)_j. logits [B, C] float32 (-inf = excluded);
    uniforms [B] in (0, 1). Returns (index [B] int32, log p [B] float32 under softmax(logits))."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    cdf = jnp.cumsum(jnp.exp(logp), axis=-1)
    # The first j with cdf_j >= u * total; u > 0 and u < 1 make that a token of nonzero probability.
    index = jnp.sum(cdf < uniforms[:, None] * cdf[:, -1:], axis=-1).astype(jnp.int32)
    index = jnp.minimum(index, logits.shape[-1] - 1)
    return index, jnp.take_along_axis(logp, index[:, None], axis=-1)[:, 0]


def _nucleus(sorted_logits: jax.Array, top_p, log_total=None) -> jax.Array:
    """sorted_logits [B, C] descending -> the same with tokens outside the top-p nucleus at -inf.

    log_total: log of the normaliser (default: over these C logits); the nucleus keeps every token whose
    probability mass before it is below top_p, so the first token is always kept."""
    if log_total is None:
        log_total = jax.nn.logsumexp(sorted_logits, axis=-1, keepdims=True)
    probs = jnp.exp(sorted_logits - log_total)
    kept = jnp.cumsum(probs, axis=-1) - probs < top_p
    return jnp.where(kept, sorted_logits, -jnp.inf)


def _draw_sorted(sorted_logits, sorted_ids, uniforms):
    index, logp = _inverse_cdf(sorted_logits, uniforms)
    return jnp.take_along_axis(sorted_ids, index[:, None], axis=-1)[:, 0].astype(jnp.int32), logp


def _full_sort_nucleus(x, top_p, uniforms):
    """The reference path: sort the whole vocabulary. x [B, V] -> (tokens [B], logp [B])."""
    ids = jnp.argsort(-x, axis=-1).astype(jnp.int32)
    return _draw_sorted(_nucleus(jnp.take_along_axis(x, ids, axis=-1), top_p), ids, uniforms)


def _top_p(x, top_p, uniforms, candidates: int):
    """Nucleus draw from x [B, V] (already tempered); exact (see the module docstring)."""
    c = min(candidates, x.shape[-1])
    values, ids = jax.lax.top_k(x, c)
    log_total = jax.nn.logsumexp(x, axis=-1, keepdims=True)
    covered = jnp.sum(jnp.exp(values - log_total), axis=-1) >= top_p  # [B]: the nucleus is in the candidates
    fast_tokens, fast_logp = _draw_sorted(_nucleus(values, top_p, log_total), ids.astype(jnp.int32), uniforms)

    def with_full_sort(_):
        tokens, logp = _full_sort_nucleus(x, top_p, uniforms)
        return jnp.where(covered, fast_tokens, tokens), jnp.where(covered, fast_logp, logp)

    return jax.lax.cond(jnp.all(covered), lambda _: (fast_tokens, fast_logp), with_full_sort, None)


def sample_tokens(logits, rng, temperature, top_p, *, greedy: bool, top_k: int, use_top_p: bool,
                  nucleus_candidates: int = NUCLEUS_CANDIDATES):
    """Samples one token per row. logits [B, V] float32 -> (tokens [B] int32, logprobs [B] float32).

    rng: one key for the batch, or [B] keys, one per row (then a row's sample does not depend on
    which other rows share its batch). temperature, top_p: scalars (traced is fine); top_k (0 = off)
    and use_top_p are static.

    logprobs are log p(token) under the distribution actually sampled from: softmax(logits / T)
    restricted to the top-k and the top-p nucleus and renormalised (greedy: softmax(logits)).
    """
    if greedy:
        return _greedy(logits)
    x = logits / temperature
    uniforms = _uniforms(rng, x.shape[0])
    if top_k > 0:
        values, ids = jax.lax.top_k(x, min(top_k, x.shape[-1]))
        if use_top_p:
            values = _nucleus(values, top_p)
        return _draw_sorted(values, ids.astype(jnp.int32), uniforms)
    if use_top_p:
        return _top_p(x, top_p, uniforms, nucleus_candidates)
    return _inverse_cdf(x, uniforms)
