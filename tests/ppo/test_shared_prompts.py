"""Shared prompts (rltf_jax/ppo/shared_prompts.py): packing keeps every row's reply, rewards and
positions, a reply sees its prompt and itself only, and the jitted update over the packed rows is the
update over the padded batch (GRPO with the KL in the loss over two epochs, the plain policy
gradient with the greedy baseline)."""

import jax
import numpy as np
import pytest

from rltf_jax import ppo
from rltf_jax.models.config import tiny_config
from rltf_jax.models.params import random_model
from rltf_jax.ppo.length_groups import bucket_lengths
from rltf_jax.ppo.shared_prompts import PAD_SEGMENT, PackedBatch, pack_shared_prompts

from grad_probe import (adam_step_bound, assert_gradients_close, assert_metrics_close, gradient_terms, leaf_bounds,
                        leaf_ratios, record_gradients, rollout_metric_scales, token_scale)

VOCAB = 16


def grouped_batch(groups=3, per_group=4, prompt=10, response=12, seed=0):
    """`groups` prompts of 4–10 tokens (left-padded), `per_group` replies of 1–12 tokens to each, the
    rows shuffled so that a prompt's replies are not adjacent."""
    rng = np.random.default_rng(seed)
    rows = groups * per_group
    prompt_lengths = rng.integers(4, prompt + 1, groups)
    prompt_mask = np.repeat(np.arange(prompt)[None] >= prompt - prompt_lengths[:, None], per_group, 0)
    prompt_tokens = np.repeat(rng.integers(0, VOCAB, (groups, prompt)), per_group, 0)
    lengths = rng.integers(1, response + 1, rows)
    lengths[0] = response
    response_mask = np.arange(response)[None] < lengths[:, None]
    rewards = np.where(response_mask, rng.normal(size=(rows, response)), 0.0).astype(np.float32)
    batch = ppo.batch_from_rollout(prompt_tokens, prompt_mask, rng.integers(0, VOCAB, (rows, response)),
                                   response_mask, rewards, np.arange(rows) // per_group)
    penalties = np.where(response_mask & (rng.random((rows, response)) < 0.2), -0.3, 0.0).astype(np.float32)
    batch = batch._replace(token_penalties=np.concatenate([np.zeros((rows, prompt), np.float32), penalties], 1),
                           baselines=rng.choice([-1.0, -0.3, 1.0], groups).repeat(per_group).astype(np.float32))
    order = rng.permutation(rows)
    return ppo.PPOBatch(*(None if x is None else x[order] for x in batch))


def test_packing_keeps_every_reply_at_its_own_positions():
    batch = grouped_batch()
    packed = pack_shared_prompts(batch, 2, multiple=8)
    rows, packing = packed.rows, packed.packing
    per_micro, width = packing.tokens.shape[0] // 2, packing.tokens.shape[1]
    assert rows.tokens.shape[0] == 12 and packing.source.shape == (12, rows.tokens.shape[1] - 1)
    seen = set()
    for b in range(12):
        group = rows.group_ids[b]
        n = int(rows.attention_mask[b].sum()) - 1
        reply = tuple(rows.tokens[b, 1:n + 1])
        r = [r for r in range(12) if batch.group_ids[r] == group and r not in seen
             and tuple(batch.tokens[r][batch.response_mask[r]]) == reply][0]
        seen.add(r)
        real = batch.attention_mask[r]
        prompt = batch.tokens[r][real & ~batch.response_mask[r]]
        for name in ("response_mask", "token_rewards", "token_penalties"):
            np.testing.assert_array_equal(getattr(rows, name)[b, 1:n + 1], getattr(batch, name)[r][batch.response_mask[r]])
        assert rows.tokens[b, 0] == prompt[-1] and not rows.attention_mask[b, n + 1:].any()
        assert rows.baselines[b] == batch.baselines[r]
        # action j is read where the token before reply token j sits, at that token's own position
        micro = b // 6
        flat = jax.tree.map(lambda x: x[micro * per_micro:(micro + 1) * per_micro].reshape(-1), packing)
        source = packing.source[b, :n]
        assert source.max() < per_micro * width
        np.testing.assert_array_equal(flat.tokens[source], np.concatenate([prompt[-1:], reply[:-1]]))
        np.testing.assert_array_equal(flat.positions[source], len(prompt) - 1 + np.arange(n))
        assert flat.segment_ids[source[0]] == 0 and len(set(flat.segment_ids[source[1:]])) <= 1
        if n > 1:
            assert flat.segment_ids[source[1]] > 0  # the reply's own segment, not another reply's
    assert len(seen) == 12
    # microbatch m holds rows [6m, 6m + 6): every prompt is packed once per microbatch it appears in
    prompts_per_micro = [len(set(rows.group_ids[6 * m:6 * m + 6])) for m in range(2)]
    assert [int((packing.segment_ids[m * per_micro:(m + 1) * per_micro, 0] == 0).sum()) for m in range(2)] \
        == prompts_per_micro
    longest = max(int((row != PAD_SEGMENT).sum()) for row in packing.segment_ids)
    assert width == bucket_lengths(longest, 8)
    assert packing.tokens.size < batch.tokens.size  # fewer model positions than the padded rows


def test_different_prompts_are_never_packed_together():
    batch = grouped_batch(groups=4, per_group=1)
    packing = pack_shared_prompts(batch, 1, multiple=8).packing
    assert packing.tokens.shape[0] == 4
    assert all((row[row != PAD_SEGMENT] <= 1).all() for row in packing.segment_ids)


def test_a_pack_is_cut_at_its_length_limit_and_packed_rows_round_to_the_devices():
    batch = grouped_batch(groups=1, per_group=8)
    packed = pack_shared_prompts(batch, 1, multiple=8, max_pack_length=30, packed_rows_multiple=4)
    segments = packed.packing.segment_ids
    used = (segments != PAD_SEGMENT).sum(1)
    assert segments.shape[0] % 4 == 0 and (used <= 30).all() and (used > 0).sum() >= 2
    assert int((segments[:, 0] == 0).sum()) == int((used > 0).sum())  # a cut pack repeats its prompt


def test_packing_rejects_what_it_cannot_pack():
    with pytest.raises(ValueError, match="12 rows does not split into 5 microbatches"):
        pack_shared_prompts(grouped_batch(), 5)
    batch = grouped_batch()
    with pytest.raises(ValueError, match="multi-turn episodes"):
        pack_shared_prompts(batch._replace(turn_ids=np.where(batch.response_mask, 0, -1)), 2)
    no_prompt = batch._replace(response_mask=batch.attention_mask.copy())
    with pytest.raises(ValueError, match="row 0 has no prompt token"):
        pack_shared_prompts(no_prompt, 2)
    with pytest.raises(ValueError, match="advantage='gae' needs a value per row"):
        ppo.PPOConfig(advantage="gae", share_prompts=True)
    with pytest.raises(ValueError, match="length_groups=1"):
        ppo.PPOConfig(advantage="grpo", share_prompts=True, length_groups=2)


def test_a_reply_sees_its_prompt_and_itself_only():
    """Changing one reply's tokens changes no other row's log-probabilities (segment masking)."""
    config = ppo.PPOConfig(advantage="grpo")
    model_config = tiny_config(vocab_size=VOCAB)
    state, defs = ppo.init_train_state(random_model(model_config, seed=1), config)
    batch = grouped_batch(groups=1, per_group=4)
    changed = batch.tokens.copy()
    changed[0][batch.response_mask[0]] = (changed[0][batch.response_mask[0]] + 1) % VOCAB
    stats = [np.asarray(jax.jit(lambda s, b: ppo.rollout_statistics(defs, config, s, b))(
        state, pack_shared_prompts(batch._replace(tokens=t), 1, multiple=8))["old_logp"]) for t in (batch.tokens, changed)]
    rows = pack_shared_prompts(batch, 1, multiple=8).rows
    moved = [not np.array_equal(stats[0][b], stats[1][b]) for b in range(4)]
    n = int(batch.response_mask[0].sum())
    assert sum(moved) == 1
    np.testing.assert_array_equal(rows.tokens[moved.index(True), 1:n + 1], batch.tokens[0][batch.response_mask[0]])


def params_of(state):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(state.policy)])


@pytest.mark.parametrize("overrides", [
    {"advantage": "grpo", "grad_accum": 2, "epochs": 2, "kl_mode": "loss"},
    {"advantage": "greedy", "policy_loss": "pg", "grad_accum": 3},
], ids=["grpo-kl-loss-2-epochs", "greedy-pg"])
def test_update_over_packed_rows_equals_the_padded_update(overrides, monkeypatch):
    """Packed and padded updates sum the same per-token gradients in different orders over different
    shapes: gradients within 2 gamma~_n(4) ||sum_t |g_t||| per leaf (tests/helpers/grad_probe.py), the
    metrics within their bounds, AdamW's step within its per-weight bound. (With several minibatches
    the two programs would put different rows in each optimizer step: the packing fixes its
    microbatches, the padded update shuffles; test_ppo_sharded.py runs packed minibatches.)"""
    config = ppo.PPOConfig(lr=1e-3, kl_coef=0.1, share_prompts=True, **overrides)
    model_config = tiny_config(vocab_size=VOCAB)
    fresh = lambda: ppo.init_train_state(random_model(model_config, seed=1), config)  # noqa: E731
    microbatches = config.num_minibatches * config.grad_accum
    inputs = {"padded": grouped_batch(per_group=4), "packed": pack_shared_prompts(grouped_batch(), microbatches,
                                                                                  multiple=8)}
    assert isinstance(inputs["packed"], PackedBatch)
    grads, metrics, params = {}, {}, {}
    for name, batch in inputs.items():
        state, defs = fresh()
        with monkeypatch.context() as patch:
            grads[name], metrics[name] = record_gradients(patch, defs, config, state, batch)
        state, defs = fresh()
        params[name] = params_of(ppo.make_update(defs, config)(state, batch)[0])
    state, defs = fresh()
    padded = grouped_batch()
    rollout_scale = rollout_metric_scales(defs, config, state, padded)
    scale, metric_scale, tokens, rows = token_scale(defs, config, state, padded)
    steps = config.epochs  # optimizer steps, each a gradient at the initial weights (grad_probe)
    n = gradient_terms(model_config, padded.tokens.shape[1], tokens)
    worst = assert_gradients_close(grads["padded"], grads["packed"], scale, n, steps)
    assert metrics["padded"]["loss/policy"] != 0.0
    ratios = assert_metrics_close(metrics["padded"], metrics["packed"], metric_scale, rollout_scale,
                                  leaf_bounds(scale, n, steps), n)
    assert worst <= 1 and max(ratios.values()) <= 1
    # one row's gradient dropped is far outside the bound
    dropped = jax.tree.map(lambda g, r: g - steps * r, grads["padded"], rows[3])
    assert max(leaf_ratios(grads["packed"], dropped, scale, n, steps).values()) > 100
    assert np.abs(params["packed"] - params["padded"]).max() <= adam_step_bound(config.lr, steps)
