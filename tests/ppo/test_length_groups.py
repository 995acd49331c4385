"""Length groups (rltf_jax/length_groups.py): the split keeps every row's data, and the jitted update
over the groups is the update over the single padded batch (single-turn GRPO / GAE and RLEF turns)."""

import jax
import numpy as np
import pytest

from rltf_jax import ppo
from rltf_jax.ppo.length_groups import bucket_lengths, row_spans, split_by_length
from rltf_jax.models.config import tiny_config
from rltf_jax.models.params import random_model

from grad_probe import (adam_step_bound, assert_gradients_close, assert_metrics_close, gradient_terms, leaf_bounds,
                        leaf_ratios, record_gradients, rollout_metric_scales, token_scale)

VOCAB = 16


def single_turn_batch(rows=8, prompt=6, response=20, seed=0):
    """Left-padded prompts of 3–6 tokens, replies of 2–20 tokens: real lengths 5–26."""
    rng = np.random.default_rng(seed)
    prompt_mask = np.arange(prompt)[None] >= prompt - rng.integers(3, prompt + 1, rows)[:, None]
    lengths = rng.integers(2, response + 1, rows)
    lengths[0] = response
    response_mask = np.arange(response)[None] < lengths[:, None]
    rewards = np.where(response_mask, rng.normal(size=(rows, response)), 0.0).astype(np.float32)
    batch = ppo.batch_from_rollout(rng.integers(0, VOCAB, (rows, prompt)), prompt_mask,
                                   rng.integers(0, VOCAB, (rows, response)), response_mask, rewards,
                                   np.arange(rows) // 4)
    penalties = np.where(response_mask & (rng.random((rows, response)) < 0.2), -0.3, 0.0).astype(np.float32)
    return batch._replace(token_penalties=np.concatenate([np.zeros((rows, prompt), np.float32), penalties], 1))


def turn_batch(rows=8, seed=0):
    """RLEF-shaped rows: env 4 | reply 5 | (feedback 6 | reply 5 | (feedback 6 | reply 5)), right-padded."""
    rng = np.random.default_rng(seed)
    turns_per_row = rng.integers(1, 4, rows)
    turns_per_row[0] = 3
    width = 4 + 3 * 5 + 2 * 6
    tokens = rng.integers(0, VOCAB, (rows, width)).astype(np.int32)
    attention = np.zeros((rows, width), bool)
    response = np.zeros((rows, width), bool)
    rewards = np.zeros((rows, width), np.float32)
    turn_ids = np.full((rows, width), -1, np.int32)
    positions = np.full((rows, 3), -1, np.int32)
    for row, n in enumerate(turns_per_row):
        start = 4
        for k in range(n):
            positions[row, k] = start - 1
            response[row, start:start + 5] = True
            turn_ids[row, start:start + 5] = k
            rewards[row, start + 4] = -0.2 if rng.random() < 0.3 else 0.0
            start += 5 + (6 if k < n - 1 else 0)
        rewards[row, start - 1] += rng.choice([1.0, -1.0])
        attention[row, :start] = True
    return ppo.PPOBatch(tokens, attention, response, rewards, np.arange(rows) // 4,
                        np.zeros((rows, width), np.float32), turn_ids, positions)


def test_bucket_lengths_are_coarse_and_cover_the_length():
    assert [bucket_lengths(n) for n in (1, 64, 65, 300, 512, 513, 1024, 1025, 1100, 2100)] == \
        [64, 64, 128, 320, 512, 576, 1024, 1152, 1152, 2304]
    assert bucket_lengths(5, multiple=8) == 8 and bucket_lengths(9, multiple=8) == 16
    for n in range(1, 5000, 37):
        assert n <= bucket_lengths(n) <= max(64, 1.125 * n + 64)


def test_row_spans_rejects_a_row_with_gaps():
    mask = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    first, length = row_spans(mask)
    assert first.tolist() == [1, 0, 0] and length.tolist() == [2, 4, 0]
    with pytest.raises(ValueError, match=r"rows \[0\] have gaps"):
        row_spans(np.array([[1, 0, 1]], bool))


def test_split_keeps_every_rows_data_sorted_and_shifted():
    batch = turn_batch()
    parts = split_by_length(batch, 2, rows_multiple=2, multiple=8)
    assert [p.tokens.shape for p in parts] == [(4, bucket_lengths(max(p.attention_mask.sum(1)), 8)) for p in parts]
    lengths = np.concatenate([p.attention_mask.sum(1) for p in parts])
    assert (np.diff(lengths) >= 0).all()  # shortest rows first
    assert parts[0].tokens.shape[1] < parts[1].tokens.shape[1] <= bucket_lengths(batch.tokens.shape[1], 8)
    originals = {tuple(batch.tokens[r][batch.attention_mask[r]]): r for r in range(8)}
    for part in parts:
        for i in range(4):
            n = part.attention_mask[i].sum()
            assert part.attention_mask[i, :n].all()          # shifted to column 0
            r = originals[tuple(part.tokens[i, :n])]
            for name in ("response_mask", "token_rewards", "turn_ids"):
                np.testing.assert_array_equal(getattr(part, name)[i, :n],
                                              getattr(batch, name)[r][batch.attention_mask[r]])
            assert (part.turn_ids[i, n:] == -1).all() and not part.response_mask[i, n:].any()
            np.testing.assert_array_equal(part.value_positions[i], batch.value_positions[r])
            assert part.group_ids[i] == batch.group_ids[r]


def test_split_shifts_left_padded_prompts_and_their_value_positions():
    batch = single_turn_batch()
    first, _ = row_spans(batch.attention_mask)
    assert first.max() > 0  # some prompts are left-padded
    # a value read at the third real token of every row lands on column 2 after the shift
    parts = split_by_length(batch._replace(value_positions=(first + 2)[:, None].astype(np.int32)), 4, multiple=8)
    for part in parts:
        assert (part.value_positions == 2).all()
        assert part.attention_mask[:, 0].all()  # every row starts at column 0


def test_split_rejects_rows_that_do_not_divide():
    with pytest.raises(ValueError, match="8 rows does not split into 3 length groups"):
        split_by_length(turn_batch(), 3)
    with pytest.raises(ValueError, match="multiple of 4 rows"):
        split_by_length(turn_batch(), 4, rows_multiple=4)


def params_of(state):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves((state.policy, state.value))])


@pytest.mark.parametrize("name,batch_fn,overrides", [
    ("grpo", single_turn_batch, {"advantage": "grpo", "grad_accum": 2}),
    ("gae", single_turn_batch, {"advantage": "gae", "grad_accum": 2, "epochs": 2, "kl_mode": "loss"}),
    ("turn", turn_batch, {"advantage": "turn", "grad_accum": 2, "kl_form": "turn_mean"}),
])
def test_update_over_length_groups_equals_the_padded_update(name, batch_fn, overrides, monkeypatch):
    """The two programs sum the same per-token gradients in different orders (and over differently
    padded shapes), so their gradients are compared, each leaf within 2 gamma~_n(4) ||sum_t |g_t|||
    of the other (tests/helpers/grad_probe.py, docs/testing.md); AdamW's step after it only within its
    per-weight bound (a gradient that is rounding noise moves its weight by a full +-lr either way)."""
    config = ppo.PPOConfig(lr=1e-3, vf_coef=0.5, kl_coef=0.1, **overrides)
    model_config = tiny_config(vocab_size=VOCAB)
    fresh = lambda: ppo.init_train_state(random_model(model_config, seed=1), config)  # noqa: E731
    grads, metrics, params = [], [], []
    for groups in (1, 2):
        batch = batch_fn()
        if groups > 1:
            batch = split_by_length(batch, groups, rows_multiple=config.grad_accum, multiple=4)
            assert sum(p.tokens.size for p in batch) < batch_fn().tokens.size  # less padding
        state, defs = fresh()
        with monkeypatch.context() as patch:
            g, m = record_gradients(patch, defs, config, state, batch)
        grads.append(g)
        metrics.append(m)
        state, defs = fresh()
        params.append(params_of(ppo.make_update(defs, config)(state, batch)[0]))
    state, defs = fresh()
    scale, metric_scale, tokens, rows = token_scale(defs, config, state, batch_fn())
    steps = config.epochs * config.num_minibatches
    n = gradient_terms(model_config, batch_fn().tokens.shape[1], tokens)
    worst = assert_gradients_close(grads[0], grads[1], scale, n, steps)
    assert metrics[0]["loss/policy"] != 0.0
    metric_ratios = assert_metrics_close(*metrics, metric_scale, rollout_metric_scales(defs, config, state, batch_fn()),
                                         leaf_bounds(scale, n, steps), n)
    assert worst <= 1 and max(metric_ratios.values()) <= 1  # measured: 0.005 and 0.011 at most
    # a doubled gradient, or one row's gradient dropped, is far outside the bound (dropped: >= 900x)
    assert min(leaf_ratios(grads[0], jax.tree.map(lambda g: 2 * g, grads[0]), scale, n, steps).values()) > 100
    dropped = jax.tree.map(lambda g, r: g - steps * r, grads[0], rows[3])
    assert max(leaf_ratios(grads[0], dropped, scale, n, steps).values()) > 100
    diff = np.abs(params[1] - params[0])
    assert diff.max() <= adam_step_bound(config.lr, steps)
    assert not np.allclose(params[0], params_of(fresh()[0]))


def test_length_groups_must_be_positive():
    with pytest.raises(ValueError, match="length_groups must be ≥ 1"):
        ppo.PPOConfig(length_groups=0)
