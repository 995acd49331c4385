"""PPO losses and KL estimators against hand computations (values and gradients)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rltf_jax.ppo import losses as L


def test_clipped_policy_loss_and_gradient_by_hand():
    eps = 0.2
    old = jnp.log(jnp.array([[0.5, 0.5, 0.5, 0.5, 0.5]]))
    # ratios 1.5 (A>0: clipped), 0.5 (A>0: unclipped), 1.1 (A<0: inside), 0.7 (A<0: clipped), pad
    ratios = np.array([1.5, 0.5, 1.1, 0.7, 1.0])
    adv = jnp.array([[2.0, 1.0, -1.0, -3.0, 100.0]])
    mask = jnp.array([[True, True, True, True, False]])
    logp = old + jnp.log(jnp.asarray(ratios))[None]
    loss, clipped = L.clipped_policy_loss(logp, old, adv, mask, eps, 4.0)
    # per token: max(-A r, -A clip(r)): -2*1.2, -1*0.5, 1*1.1, 3*0.8  (the pessimistic term)
    want = (-2.4 - 0.5 + 1.1 + 2.4) / 4
    np.testing.assert_allclose(float(loss), want, rtol=1e-6)
    assert float(clipped) == 2.0
    grad = jax.grad(lambda lp: L.clipped_policy_loss(lp, old, adv, mask, eps, 4.0)[0])(logp)
    # d/dlogp of -A r = -A r on unclipped tokens, 0 where the clipped term is active or masked
    np.testing.assert_allclose(np.asarray(grad), [[0.0, -1 * 0.5 / 4, 1.0 * 1.1 / 4, 0.0, 0.0]], rtol=1e-6)


def test_policy_gradient_loss_and_gradient_match_float64_numpy():
    rng = np.random.default_rng(0)
    logp = np.log(rng.uniform(0.05, 1.0, (3, 5)))
    adv = rng.normal(size=(3, 5))
    mask = rng.uniform(size=(3, 5)) < 0.7
    denominator = float(mask.sum())
    want = -np.sum(np.where(mask, adv * logp, 0.0)) / denominator   # float64 reference
    loss = L.policy_gradient_loss(jnp.asarray(logp, jnp.float32), jnp.asarray(adv, jnp.float32),
                                  jnp.asarray(mask), denominator)
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    grad = jax.grad(lambda lp, a: L.policy_gradient_loss(lp, a, jnp.asarray(mask), denominator),
                    argnums=(0, 1))(jnp.asarray(logp, jnp.float32), jnp.asarray(adv, jnp.float32))
    np.testing.assert_allclose(np.asarray(grad[0]), np.where(mask, -adv, 0.0) / denominator, rtol=1e-5)
    assert not np.asarray(grad[1]).any()  # the advantage is a constant of the loss


def test_clipped_value_loss_by_hand():
    values = jnp.array([[1.0, 0.0, 2.0]])
    old = jnp.array([[0.5, 0.5, 0.5]])
    returns = jnp.array([[1.0, 1.0, 0.0]])
    mask = jnp.ones((1, 3), bool)
    loss = L.clipped_value_loss(values, old, returns, mask, 0.2, 3.0)
    # clipped values 0.7, 0.3, 0.7; max of squared errors: (0, .09)->.09, (1, .49)->1, (4, .49)->4
    np.testing.assert_allclose(float(loss), 0.5 * (0.09 + 1.0 + 4.0) / 3, rtol=1e-6)
    grad = jax.grad(lambda v: L.clipped_value_loss(v, old, returns, mask, 0.2, 3.0))(values)
    np.testing.assert_allclose(np.asarray(grad), [[0.0, -1.0 / 3, 2.0 / 3]], rtol=1e-6)


def test_kl_estimators():
    logp = jnp.log(jnp.array([0.5, 0.2]))
    ref = jnp.log(jnp.array([0.25, 0.4]))
    lr = np.log([0.5, 2.0])  # log(ref / p)
    np.testing.assert_allclose(np.asarray(L.kl_estimate(logp, ref, "k1")), -lr, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(L.kl_estimate(logp, ref, "k2")), 0.5 * lr ** 2, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(L.kl_estimate(logp, ref, "k3")), np.exp(lr) - 1 - lr, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown KL estimator 'k4'"):
        L.kl_estimate(logp, ref, "k4")


def test_k1_and_k3_are_unbiased_estimates_of_the_true_kl():
    p = np.array([0.6, 0.3, 0.1]); q = np.array([0.2, 0.5, 0.3])
    true_kl = float(np.sum(p * np.log(p / q)))
    lp, lq = jnp.log(jnp.asarray(p)), jnp.log(jnp.asarray(q))
    for est in ("k1", "k3"):  # exact expectation under p
        np.testing.assert_allclose(float(jnp.sum(jnp.asarray(p) * L.kl_estimate(lp, lq, est))), true_kl,
                                   rtol=1e-5)


def test_logprobs_and_entropy_match_softmax():
    logits = jnp.array([[[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]]])
    targets = jnp.array([[1, 2]])
    logp, ent = L.token_logprobs_and_entropy(logits, targets, temperature=2.0)
    p = np.asarray(jax.nn.softmax(logits / 2.0, axis=-1))
    np.testing.assert_allclose(np.asarray(logp), [[np.log(p[0, 0, 1]), np.log(1 / 3)]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ent), -(p * np.log(p)).sum(-1), rtol=1e-6)


def test_explained_variance_and_whiten():
    target = jnp.array([[1.0, 2.0, 3.0, 99.0]])
    mask = jnp.array([[True, True, True, False]])
    assert float(L.explained_variance(target, target, mask)) == pytest.approx(1.0)
    assert float(L.explained_variance(jnp.zeros_like(target) + 2.0, target, mask)) == pytest.approx(0.0)
    w = np.asarray(L.whiten(target, mask))
    np.testing.assert_allclose(w[0, :3], [-1.2247449, 0.0, 1.2247449], rtol=1e-5)
    assert w[0, 3] == 0.0
