"""RLTF's fine-grained penalties stay on their tokens under every advantage estimator."""

import jax
import numpy as np
import pytest

from rltf_jax import ppo
from rltf_jax.models.config import tiny_config
from rltf_jax.models.params import random_model

VOCAB = 16


def _batch(with_penalties: bool) -> ppo.PPOBatch:
    rng = np.random.default_rng(0)
    batch, prompt, response = 4, 3, 6
    response_mask = np.ones((batch, response), bool)
    outcome = np.zeros((batch, response), np.float32)
    outcome[:, -1] = [1.0, -0.3, -1.0, 1.0]  # two groups of two samples
    joined = ppo.batch_from_rollout(rng.integers(0, VOCAB, (batch, prompt)), np.ones((batch, prompt), bool),
                                    rng.integers(0, VOCAB, (batch, response)), response_mask, outcome,
                                    np.array([0, 0, 1, 1]))
    penalties = np.zeros(joined.token_rewards.shape, np.float32)
    penalties[1, prompt + 2:prompt + 4] = -0.3  # sample 1: the tokens of its error line
    return joined._replace(token_penalties=penalties if with_penalties else None)


def _advantages(advantage: str, batch: ppo.PPOBatch, normalize: bool = True) -> np.ndarray:
    config = ppo.PPOConfig(advantage=advantage, kl_coef=0.0, normalize_advantages=normalize)
    state, defs = ppo.init_train_state(random_model(tiny_config(vocab_size=VOCAB), seed=0), config)
    if batch.token_penalties is None:
        batch = batch._replace(token_penalties=np.zeros(batch.token_rewards.shape, np.float32))
    stats = jax.jit(lambda s, b: ppo.rollout_statistics(defs, config, s, b))(state, batch)
    return np.asarray(stats["advantages"])


@pytest.mark.parametrize("advantage", ["grpo", "rloo"])
def test_critic_free_advantages_carry_the_penalty_on_exactly_its_tokens(advantage):
    plain = _advantages(advantage, _batch(False))
    penalised = _advantages(advantage, _batch(True))
    difference = penalised - plain  # action axis: token t+1 is predicted at t
    expected = np.zeros_like(difference)
    expected[1, 3 + 2 - 1:3 + 4 - 1] = -0.3
    np.testing.assert_allclose(difference, expected, atol=1e-6)


def test_gae_takes_penalties_as_rewards():
    plain = _advantages("gae", _batch(False), normalize=False)
    penalised = _advantages("gae", _batch(True), normalize=False)
    difference = penalised - plain
    last_blamed = 3 + 4 - 1 - 1  # action index of the last penalised token
    # A zero-initialised critic and γ = 1: A_t = Σ_l λ^l r_{t+l}, so the penalty lowers its own
    # tokens' and every earlier response token's advantage, and nothing after it or in other rows.
    response_actions = slice(3 - 1, last_blamed + 1)
    assert (difference[1, response_actions] < 0).all()
    np.testing.assert_allclose(difference[1, last_blamed + 1:], 0.0, atol=1e-6)
    np.testing.assert_allclose(difference[[0, 2, 3]], 0.0, atol=1e-6)
