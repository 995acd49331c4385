"""Drawing one token per row from logits: greedy, temperature, top-k, top-p (nucleus); exact and cheap.

The obvious forms are slow on XLA:CPU at a 49k vocabulary (docs/benchmarks.md, generation):
`jnp.argmax` is a variadic reduce, several times slower than max-then-first-index; Gumbel-max
`jax.random.categorical` draws 49k random numbers per row where an inverse-CDF draw needs one; and a
full `jnp.sort` for top-p at every decode step costs several times the model's own forward. So:

- greedy: the first index of the row maximum (what argmax returns);
- top-p: the nucleus is read from the `NUCLEUS_CANDIDATES` largest logits (`lax.top_k`) whenever
  they hold at least `top_p` of the probability mass, which makes that prefix exactly the nucleus
  a full sort would give; a row whose candidates hold less (a flat distribution: a random model,
  or a small model at T = 1) takes the nucleus without sorting at all, computed only on steps
  where some row needs it: two bisections over the logits' bit patterns find the value where the
  nucleus ends and the value of the drawn token, ties broken by index as a stable sort does
  (`_threshold_nucleus`, an order of magnitude cheaper than a sort);
- top-k: the k candidates, renormalised (and the nucleus within them when top_p < 1), as before;
- plain temperature: an inverse-CDF draw over the whole vocabulary.

Each row's draw uses only its own logits and its own key, so a row samples the same token whatever
batch it is in, and logprobs are log p(token) under the distribution actually sampled from.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

NUCLEUS_CANDIDATES = 64  # top-p reads the nucleus from this many largest logits when they hold top_p of the mass


def first_argmax(logits: jax.Array) -> jax.Array:
    """[B, V] -> [B] int32: index of each row's maximum (the first on ties), as jnp.argmax but
    two plain reductions (XLA:CPU runs argmax's variadic reduce several times slower)."""
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


def full_sort_nucleus(x, top_p, uniforms):
    """The definition the top-p paths are checked against (tests, benchmarks/token_draw.py): sort
    the whole vocabulary (stable, descending), keep the nucleus, draw by inverse CDF in that order.
    x [B, V] float32, uniforms [B] -> (tokens [B] int32, logp [B]). Slow on XLA:CPU: not used to sample."""
    ids = jnp.argsort(-x, axis=-1).astype(jnp.int32)
    return _draw_sorted(_nucleus(jnp.take_along_axis(x, ids, axis=-1), top_p), ids, uniforms)


def _sortable_keys(x: jax.Array) -> jax.Array:
    """float32 -> uint32 in the same order (a < b <=> key(a) < key(b); -inf is the lowest key, and
    -0.0 is taken as 0.0, as comparisons take it)."""
    bits = jax.lax.bitcast_convert_type(x + 0.0, jnp.uint32)
    return jnp.where(bits >> 31 == 1, ~bits, bits | jnp.uint32(0x80000000))


def _mass_level(keys: jax.Array, mass: jax.Array, limit: jax.Array) -> jax.Array:
    """Per row, the smallest key t with sum(mass[keys > t]) < limit (bisection; the sum only falls as
    t grows, and is 0 < limit at the row's largest key). keys [B, V] uint32, mass [B, V] >= 0,
    limit [B] > 0 -> [B, 1] uint32: always one of the row's keys."""
    def body(bounds):
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        below_limit = jnp.sum(jnp.where(keys > mid[:, None], mass, 0.0), axis=-1) < limit
        return jnp.where(below_limit, lo, mid + 1), jnp.where(below_limit, mid, hi)

    bounds = (jnp.min(keys, axis=-1), jnp.max(keys, axis=-1))
    return jax.lax.while_loop(lambda b: jnp.any(b[0] < b[1]), body, bounds)[1][:, None]


def _rank_among(mask: jax.Array) -> jax.Array:
    """[B, V] bool -> [B, V] int32: each True entry's 0-based rank among its row's True entries."""
    return jnp.cumsum(mask.astype(jnp.int32), axis=-1) - 1


def _threshold_nucleus(x, top_p, uniforms):
    """The nucleus draw of a full sort (stable, descending), without sorting. x [B, V] float32
    (tempered logits), uniforms [B] -> (tokens [B] int32, logp [B] under the renormalised nucleus).

    In sorted order a token is kept when the mass ranked before it is < top_p, and the draw is the
    first token whose cumulative mass reaches u x the nucleus mass. Both are value levels: the
    smallest value whose strictly-larger mass is below the limit (`_mass_level`), then, among
    tokens tied at that value, the rank in index order the limit falls on."""
    keys = _sortable_keys(x)
    log_total = jax.nn.logsumexp(x, axis=-1, keepdims=True)
    p = jnp.exp(x - log_total)
    edge = _mass_level(keys, p, jnp.full(x.shape[:1], top_p, jnp.float32))
    above_edge = jnp.sum(jnp.where(keys > edge, p, 0.0), axis=-1, keepdims=True)
    at_edge = keys == edge
    kept = (keys > edge) | (at_edge & (above_edge + _rank_among(at_edge) * p < top_p))
    kept_p = jnp.where(kept, p, 0.0)
    target = uniforms * jnp.sum(kept_p, axis=-1)
    drawn = _mass_level(keys, kept_p, target)
    above_drawn = jnp.sum(jnp.where(keys > drawn, kept_p, 0.0), axis=-1)
    at_drawn = (keys == drawn) & kept
    p_drawn = jnp.max(jnp.where(at_drawn, p, 0.0), axis=-1)
    rank = jnp.ceil((target - above_drawn) / p_drawn).astype(jnp.int32) - 1
    rank = jnp.clip(rank, 0, jnp.sum(at_drawn, axis=-1) - 1)
    v = x.shape[-1]
    hit = at_drawn & (_rank_among(at_drawn) == rank[:, None])
    tokens = jnp.min(jnp.where(hit, jnp.arange(v, dtype=jnp.int32), v), axis=-1)
    logp = jnp.take_along_axis(x, tokens[:, None], axis=-1)[:, 0] - \
        jax.nn.logsumexp(jnp.where(kept, x, -jnp.inf), axis=-1)
    return tokens, logp


def _top_p(x, top_p, uniforms, candidates: int):
    """Nucleus draw from x [B, V] (already tempered); exact (see the module docstring)."""
    c = min(candidates, x.shape[-1])
    values, ids = jax.lax.top_k(x, c)
    log_total = jax.nn.logsumexp(x, axis=-1, keepdims=True)
    covered = jnp.sum(jnp.exp(values - log_total), axis=-1) >= top_p  # [B]: the nucleus is in the candidates
    fast_tokens, fast_logp = _draw_sorted(_nucleus(values, top_p, log_total), ids.astype(jnp.int32), uniforms)

    def with_threshold(_):
        tokens, logp = _threshold_nucleus(x, top_p, uniforms)
        return jnp.where(covered, fast_tokens, tokens), jnp.where(covered, fast_logp, logp)

    return jax.lax.cond(jnp.all(covered), lambda _: (fast_tokens, fast_logp), with_threshold, None)


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


def fence_counts(tokenizer, vocab_size: int) -> np.ndarray:
    """[vocab_size] int32: how many ``` runs each token's text holds (ids past the tokenizer: 0)."""
    counts = np.zeros(vocab_size, np.int32)
    pieces = tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), vocab_size))))
    for i, piece in enumerate(pieces):
        if piece and "```" in piece:
            counts[i] = piece.count("```")
    return counts
