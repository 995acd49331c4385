"""GAE against a plain-Python reference; GRPO / RLOO against hand computations."""

import numpy as np
import jax.numpy as jnp
import pytest

from rltf_jax.ppo import advantages as A


def reference_gae(rewards, values, mask, gamma, lam):
    """Plain-Python GAE over the masked positions of each row (terminal after the last one)."""
    adv = np.zeros_like(rewards)
    for b in range(rewards.shape[0]):
        idx = [t for t in range(rewards.shape[1]) if mask[b, t]]
        running, next_value = 0.0, 0.0
        for t in reversed(idx):
            delta = rewards[b, t] + gamma * next_value - values[b, t]
            running = delta + gamma * lam * running
            adv[b, t] = running
            next_value = values[b, t]
    return adv, np.where(mask, adv + values, 0.0)


@pytest.mark.parametrize("gamma,lam", [(1.0, 1.0), (0.99, 0.95), (0.9, 0.0)])
def test_gae_matches_plain_python_with_gaps_and_padding(gamma, lam):
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(4, 12)).astype(np.float32)
    values = rng.normal(size=(4, 12)).astype(np.float32)
    mask = np.zeros((4, 12), bool)
    mask[0, 3:12] = True                      # one response, no padding after
    mask[1, 2:7] = True                       # right padding
    mask[2, 1:4] = True; mask[2, 7:10] = True  # two turns (RLEF) with feedback between
    # row 3: nothing to train on
    adv, ret = A.gae(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(mask), gamma, lam)
    want_adv, want_ret = reference_gae(rewards, values, mask, gamma, lam)
    np.testing.assert_allclose(np.asarray(adv), want_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ret), want_ret, rtol=1e-5, atol=1e-5)
    assert not np.asarray(adv)[~mask].any()


def test_gae_with_gamma_lambda_one_is_reward_to_go_minus_value():
    rewards = np.array([[0.0, 0.0, 1.0, -0.3]], np.float32)
    values = np.array([[0.5, 0.2, 0.1, 0.0]], np.float32)
    adv, ret = A.gae(jnp.asarray(rewards), jnp.asarray(values), jnp.ones((1, 4), bool), 1.0, 1.0)
    np.testing.assert_allclose(np.asarray(ret), [[0.7, 0.7, 0.7, -0.3]], atol=1e-6)
    np.testing.assert_allclose(np.asarray(adv), [[0.2, 0.5, 0.6, -0.3]], atol=1e-6)


def test_grpo_normalises_within_groups():
    scores = jnp.array([1.0, -1.0, 0.0, 3.0, 5.0, 2.0])
    groups = jnp.array([0, 0, 0, 7, 7, 9])
    got = np.asarray(A.grpo_scores(scores, groups, eps=0.0 + 1e-12))
    g0 = np.array([1.0, -1.0, 0.0])
    np.testing.assert_allclose(got[:3], (g0 - g0.mean()) / g0.std(), rtol=1e-5)
    np.testing.assert_allclose(got[3:5], [-1.0, 1.0], rtol=1e-5)
    assert got[5] == 0.0  # alone in its group: no signal


def test_rloo_leaves_one_out():
    scores = jnp.array([1.0, -1.0, 0.0, 4.0, 2.0])
    groups = jnp.array([3, 3, 3, 1, 2])
    got = np.asarray(A.rloo_scores(scores, groups))
    np.testing.assert_allclose(got[:3], [1 - (-1 + 0) / 2, -1 - (1 + 0) / 2, 0 - (1 - 1) / 2], rtol=1e-6)
    np.testing.assert_allclose(got[3:], [0.0, 0.0])


def test_sequence_estimators_broadcast_over_the_mask_only():
    rewards = jnp.array([[0.0, 0.0, 1.0, 0.0], [0.0, 0.5, 0.0, 9.0]])
    mask = jnp.array([[False, True, True, False], [False, True, True, False]])
    for name in ("grpo", "rloo"):
        adv, ret = A.get_estimator(name)(rewards, None, mask, jnp.array([0, 0]), gamma=1.0, lam=1.0, eps=1e-6)
        adv = np.asarray(adv)
        assert ret is None
        assert adv[0, 1] == adv[0, 2] > 0 and adv[1, 1] == adv[1, 2] < 0  # 9.0 is off the mask
        assert not adv[:, [0, 3]].any()


def test_registry_rejects_unknown_and_gae_needs_values():
    with pytest.raises(ValueError, match="unknown advantage estimator 'ppo2'"):
        A.get_estimator("ppo2")
    with pytest.raises(ValueError, match="needs values"):
        A.get_estimator("gae")(jnp.zeros((1, 2)), None, jnp.ones((1, 2), bool), jnp.zeros(1, jnp.int32),
                               gamma=1.0, lam=1.0, eps=0.0)
    assert A.NEEDS_VALUES == {"gae": True, "grpo": False, "rloo": False, "greedy": False, "turn": True}
    with pytest.raises(ValueError, match="needs the batch's baselines"):
        A.get_estimator("greedy")(jnp.zeros((1, 2)), None, jnp.ones((1, 2), bool), jnp.zeros(1, jnp.int32),
                                  gamma=1.0, lam=1.0, eps=0.0)


def test_greedy_subtracts_the_greedy_decodes_reward_of_each_rows_problem():
    rewards = np.array([[0.0, 0.2, 1.0, 0.0], [0.0, -0.1, -0.6, 5.0], [0.0, 0.0, -0.3, 0.0]], np.float32)
    mask = np.array([[False, True, True, False], [False, True, True, False], [True, True, True, False]])
    baselines = np.array([-0.3, -0.3, 1.0], np.float32)  # rows 0, 1: one problem; row 2: another
    adv, ret = A.get_estimator("greedy")(jnp.asarray(rewards), None, jnp.asarray(mask), jnp.array([0, 0, 1]),
                                         gamma=1.0, lam=1.0, eps=1e-6, baselines=jnp.asarray(baselines))
    scores = np.where(mask, rewards, 0.0).astype(np.float64).sum(axis=1)  # 5.0 is off the mask
    want = np.where(mask, (scores - baselines)[:, None], 0.0)
    assert ret is None
    np.testing.assert_allclose(np.asarray(adv), want, rtol=1e-6)
    np.testing.assert_allclose(want[:, 1], [1.2 + 0.3, -0.7 + 0.3, -0.3 - 1.0], rtol=1e-6)
