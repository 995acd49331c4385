"""The jitted PPO update on the tiny random model: determinism, gradient accumulation, a real
learning signal on a toy reward, the critic-free / KL-in-loss / bf16 / separate-critic variants."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rltf_jax import ppo
from rltf_jax.models.config import tiny_config
from rltf_jax.models.params import random_model

from grad_probe import (adam_step_bound, assert_gradients_close, assert_metrics_close, gradient_terms, leaf_bounds,
                        leaf_ratios, record_gradients, rollout_metric_scales, token_scale)

VOCAB, TARGET = 16, 7


def toy_model(seed=0):
    return random_model(tiny_config(vocab_size=VOCAB), seed=seed)


def random_batch(seed=0, batch=8, prompt=4, response=6):
    rng = np.random.default_rng(seed)
    prompt_mask = np.ones((batch, prompt), bool)
    prompt_mask[::2, :2] = False  # left padding
    response_mask = np.arange(response)[None] < rng.integers(2, response + 1, batch)[:, None]
    rewards = np.where(response_mask, rng.normal(size=(batch, response)), 0.0).astype(np.float32)
    return ppo.batch_from_rollout(rng.integers(0, VOCAB, (batch, prompt)), prompt_mask,
                                  rng.integers(0, VOCAB, (batch, response)), response_mask, rewards,
                                  np.arange(batch) // 4)


@functools.lru_cache(maxsize=None)
def compiled_update(config):
    """One jitted update per config for the whole module (compiles dominate this file's time)."""
    _, defs = ppo.init_train_state(toy_model(), config)
    return ppo.make_update(defs, config)


def params_of(state):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves((state.policy, state.value))])


def test_batch_from_rollout_layout():
    b = random_batch()
    assert b.tokens.shape == (8, 10) and b.tokens.dtype == np.int32
    assert not b.response_mask[:, :4].any() and (b.response_mask[:, 4:] == b.attention_mask[:, 4:]).all()
    assert not b.token_rewards[~b.response_mask].any()
    np.testing.assert_array_equal(ppo.positions_from_mask(jnp.asarray(b.attention_mask))[0],
                                  [0, 0, 0, 1, 2, 3, 4, 5, 6, 7][:int(b.attention_mask[0].sum()) + 2])


def test_update_is_deterministic_given_the_seed():
    config = ppo.PPOConfig(lr=1e-3, epochs=2, num_minibatches=2)
    runs = []
    update = compiled_update(config)
    for _ in range(2):
        state, _ = ppo.init_train_state(toy_model(), config, seed=3)
        state, metrics = update(state, random_batch())
        state, metrics = update(state, random_batch(seed=1))
        runs.append((params_of(state), {k: float(v) for k, v in metrics.items()}, np.asarray(state.rng)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    assert int(state.step) == 2
    assert all(np.isfinite(v) for v in runs[0][1].values())
    # a different seed shuffles minibatches differently
    state, _ = ppo.init_train_state(toy_model(), config, seed=4)
    state, _ = update(state, random_batch())
    state, _ = update(state, random_batch(seed=1))
    assert not np.array_equal(params_of(state), runs[0][0])


def test_gradient_accumulation_equals_one_big_minibatch(monkeypatch):
    """The two programs sum the same per-token gradients in a different order, so their gradients are
    compared (tests/helpers/grad_probe.py, docs/testing.md: each leaf within 2 gamma~_n(4) ||sum_t |g_t|||),
    and AdamW's weights after them only within its per-weight bound: a gradient that is rounding
    noise moves its weight by a full +-lr in either program."""
    grads, metrics, params = [], [], []
    for accum in (1, 4):
        config = ppo.PPOConfig(lr=1e-3, grad_accum=accum, vf_coef=0.5, ent_coef=0.01)
        state, defs = ppo.init_train_state(toy_model(), config)
        with monkeypatch.context() as patch:
            g, _ = record_gradients(patch, defs, config, state, random_batch())
        grads.append(g)
        state, defs = ppo.init_train_state(toy_model(), config)
        reference = params_of(state)
        state, m = ppo.make_update(defs, config)(state, random_batch())
        params.append(params_of(state))
        metrics.append({k: float(v) for k, v in m.items()})
    state, defs = ppo.init_train_state(toy_model(), config)
    scale, metric_scale, tokens, rows = token_scale(defs, config, state, random_batch())
    n = gradient_terms(toy_model().config, random_batch().tokens.shape[1], tokens)
    assert assert_gradients_close(grads[0], grads[1], scale, n) <= 1
    # one step from the same weights: the metrics are the recorded programs' metrics
    assert_metrics_close(*metrics, metric_scale, rollout_metric_scales(defs, config, state, random_batch()),
                         leaf_bounds(scale, n), n)
    dropped = jax.tree.map(lambda g, r: g - r, grads[0], rows[5])  # a real bug: one row's gradient lost
    assert max(leaf_ratios(grads[0], dropped, scale, n).values()) > 100
    assert np.abs(params[0] - params[1]).max() <= adam_step_bound(config.lr, 1)
    assert not np.allclose(params[0], reference)
    # one epoch, one minibatch: the policy has not moved when the ratio is measured
    assert metrics[0]["ppo/clip_fraction"] == 0.0
    assert abs(metrics[0]["ppo/approx_kl"]) < 1e-6


@functools.partial(jax.jit, static_argnums=(0, 4))
def sample(graphdef, policy, prompts, rng, new_tokens):
    """Plain ancestral sampling (full forward per token) for the toy task. prompts [B, P]."""
    model = __import__("flax").nnx.merge(graphdef, policy)
    b, p = prompts.shape
    tokens = jnp.concatenate([prompts, jnp.zeros((b, new_tokens), jnp.int32)], axis=1)
    positions = jnp.broadcast_to(jnp.arange(p + new_tokens), tokens.shape)

    def step(i, carry):
        tokens, rng = carry
        rng, key = jax.random.split(rng)
        mask = jnp.arange(p + new_tokens)[None] < p + i
        logits, _, _ = model(tokens, positions, jnp.broadcast_to(mask, tokens.shape))
        nxt = jax.random.categorical(key, logits[:, p + i - 1])
        return tokens.at[:, p + i].set(nxt), rng

    tokens, _ = jax.lax.fori_loop(0, new_tokens, step, (tokens, rng))
    return tokens[:, p:]


def target_probability(defs, state, prompts, responses):
    """Mean π(TARGET | prefix) over the response positions: the expected toy reward per token."""
    tokens = jnp.concatenate([prompts, responses], axis=1)
    model = __import__("flax").nnx.merge(defs.policy, state.policy)
    logits, _, _ = model(tokens, ppo.positions_from_mask(jnp.ones_like(tokens, bool)), jnp.ones_like(tokens, bool))
    p = prompts.shape[1]
    return float(jnp.mean(jax.nn.softmax(logits[:, p - 1:-1], axis=-1)[..., TARGET]))


@pytest.mark.parametrize("advantage", ["gae", "grpo"])
def test_ppo_learns_to_emit_the_target_token(advantage):
    """Toy reward: +1 for every emitted token 7. A few updates must raise π(7) clearly."""
    config = ppo.PPOConfig(advantage=advantage, lr=3e-3, epochs=2, num_minibatches=2, kl_coef=0.0,
                           vf_coef=1.0, gamma=1.0, lam=0.95)
    state, defs = ppo.init_train_state(toy_model(seed=1), config, seed=0)
    update = ppo.make_update(defs, config)
    rng = np.random.default_rng(0)
    prompts = jnp.asarray(rng.integers(0, VOCAB, (16, 3)), jnp.int32)
    key = jax.random.key(0)
    eval_responses = sample(defs.policy, state.policy, prompts, jax.random.key(99), 6)
    before = target_probability(defs, state, prompts, eval_responses)
    sampled_rewards = []
    for step in range(8):
        key, sub = jax.random.split(key)
        responses = np.asarray(sample(defs.policy, state.policy, prompts, sub, 6))
        rewards = (responses == TARGET).astype(np.float32)
        sampled_rewards.append(rewards.mean())
        batch = ppo.batch_from_rollout(np.asarray(prompts), np.ones(prompts.shape, bool), responses,
                                       np.ones(responses.shape, bool), rewards, np.arange(16) // 4)
        state, metrics = update(state, batch)
    after = target_probability(defs, state, prompts, eval_responses)
    print(f"{advantage}: pi(7) {before:.3f} -> {after:.3f}; sampled reward per step {np.round(sampled_rewards, 3)}")
    assert before < 0.15
    assert after > 2 * before + 0.1, (before, after, sampled_rewards)
    assert np.mean(sampled_rewards[-3:]) > np.mean(sampled_rewards[:3])


def test_variants_rloo_kl_in_loss_bf16_and_separate_critic():
    base = dict(lr=1e-3, num_minibatches=2, grad_accum=2)
    for config in (ppo.PPOConfig(advantage="rloo", kl_mode="loss", kl_estimator="k3", kl_coef=0.1,
                                 compute_dtype="bfloat16", **base),
                   ppo.PPOConfig(advantage="gae", value_mode="separate", **base)):
        state, defs = ppo.init_train_state(toy_model(), config)
        reference = np.concatenate([np.ravel(x) for x in jax.tree.leaves(state.reference)])
        start = params_of(state)
        update = ppo.make_update(defs, config)
        state, _ = update(state, random_batch())
        state, metrics = update(state, random_batch(seed=1))
        assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
        assert not np.allclose(params_of(state), start)
        np.testing.assert_array_equal(
            np.concatenate([np.ravel(x) for x in jax.tree.leaves(state.reference)]), reference)
        assert jax.tree.leaves(state.policy)[0].dtype == jnp.float32
        if config.advantage == "rloo":
            assert state.value == {} and defs.value is None
            assert float(metrics["loss/kl"]) > 0.0  # the policy moved away from the reference
        else:
            assert "value/explained_variance" in metrics and defs.value is not None


def test_adaptive_kl_controller():
    config = ppo.PPOConfig(adaptive_kl=True, kl_coef=0.1, kl_target=4.0, kl_horizon=100)
    state, _ = ppo.init_train_state(toy_model(), config)
    up = ppo.update_kl_coef(state, 8.0, 10, config)     # KL too high: β grows, error clipped to 0.2
    assert float(up.kl_coef) == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))
    down = ppo.update_kl_coef(state, 3.0, 10, config)   # error = -0.25 → -0.2
    assert float(down.kl_coef) == pytest.approx(0.1 * (1 - 0.2 * 10 / 100))
    fixed = ppo.PPOConfig(kl_coef=0.1)
    assert ppo.update_kl_coef(state, 8.0, 10, fixed) is state


def test_bad_config_and_batch_are_refused():
    with pytest.raises(ValueError, match="kl_mode='both'"):
        ppo.PPOConfig(kl_mode="both")
    with pytest.raises(ValueError, match="unknown advantage estimator"):
        ppo.PPOConfig(advantage="vtrace")
    config = ppo.PPOConfig(num_minibatches=3)
    state, defs = ppo.init_train_state(toy_model(), config)
    with pytest.raises(ValueError, match="not divisible by num_minibatches"):
        ppo.make_update(defs, config)(state, random_batch())
    with pytest.raises(ValueError, match="value_lr=0.001 needs lr > 0"):
        ppo.PPOConfig(lr=0.0, value_lr=1e-3)


def test_value_lr_moves_the_value_head_faster_and_leaves_the_policy_step_alone():
    """value_lr = 10 x lr: the value head's step is exactly 10x, the policy's (shared backbone
    included) is the same as without it; without value_lr the optimizer state keeps its old layout."""
    deltas = {}
    for value_lr in (None, 1e-2):
        config = ppo.PPOConfig(lr=1e-3, value_lr=value_lr, vf_coef=0.5)
        state, defs = ppo.init_train_state(toy_model(), config)
        before = jax.tree.map(np.asarray, (state.policy, state.value))
        if value_lr is None:
            layout = jax.tree.structure(state.opt_state)
        else:
            assert jax.tree.structure(state.opt_state) != layout  # a stateless step was added
        state, _ = ppo.make_update(defs, config)(state, random_batch())
        after = jax.tree.map(np.asarray, (state.policy, state.value))
        deltas[value_lr] = jax.tree.map(lambda a, b: a - b, after, before)
    (policy_a, value_a), (policy_b, value_b) = deltas[None], deltas[1e-2]
    for a, b in zip(jax.tree.leaves(policy_a), jax.tree.leaves(policy_b)):
        np.testing.assert_array_equal(a, b)
    moved = [np.abs(a).max() for a in jax.tree.leaves(value_a)]
    assert min(moved) > 0
    for a, b in zip(jax.tree.leaves(value_a), jax.tree.leaves(value_b)):
        np.testing.assert_allclose(b, 10 * a, rtol=1e-5, atol=1e-9)
