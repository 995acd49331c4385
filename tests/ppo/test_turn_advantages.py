"""RLEF's turn-level advantages and value targets against hand computations."""

import jax.numpy as jnp
import numpy as np
import pytest

from rltf_jax.ppo.turn_advantages import (geometric_mean_turn_kl, turn_level_advantages, turn_returns,
                                      turn_value_targets, turn_values)

# Two rows on an action axis of 10. Row 0: env 0-1, reply0 at 2-3, env 4-5, reply1 at 6-8, pad 9.
# Row 1: one reply at 3-5, the rest environment / padding.
TURN_IDS = jnp.array([[-1, -1, 0, 0, -1, -1, 1, 1, 1, -1],
                      [-1, -1, -1, 0, 0, 0, -1, -1, -1, -1]])
VALUE_POSITIONS = jnp.array([[1, 5], [2, -1]])
REWARDS = jnp.array([[0, 0, 0.1, -0.2, 0, 0, 0, 0.05, 1.0, 0],
                     [0, 0, 0, 0, 0, -1.0, 0, 0, 0, 0]], jnp.float32)
VALUES = jnp.arange(20, dtype=jnp.float32).reshape(2, 10) / 10.0


def test_turn_returns_sum_later_replies():
    returns = turn_returns(REWARDS, TURN_IDS, 2)
    np.testing.assert_allclose(returns, [[-0.1 + 1.05, 1.05], [-1.0, 0.0]], atol=1e-6)
    discounted = turn_returns(REWARDS, TURN_IDS, 2, gamma=0.5)
    np.testing.assert_allclose(discounted[0], [-0.1 + 0.5 * 1.05, 1.05], atol=1e-6)


def test_every_token_of_a_reply_gets_its_turn_advantage():
    advantages, returns, values = turn_level_advantages(REWARDS, VALUES, TURN_IDS, VALUE_POSITIONS)
    np.testing.assert_allclose(values, [[0.1, 0.5], [1.2, 0.0]], atol=1e-6)
    a0, a1 = 0.95 - 0.1, 1.05 - 0.5
    expected0 = [0, 0, a0, a0, 0, 0, a1, a1, a1, 0]
    expected1 = [0, 0, 0, -2.2, -2.2, -2.2, 0, 0, 0, 0]
    np.testing.assert_allclose(advantages, [expected0, expected1], atol=1e-6)


def test_value_targets_are_placed_at_value_positions_only():
    returns = turn_returns(REWARDS, TURN_IDS, 2)
    targets, mask = turn_value_targets(returns, VALUE_POSITIONS, 10)
    assert np.flatnonzero(mask[0]).tolist() == [1, 5] and np.flatnonzero(mask[1]).tolist() == [2]
    np.testing.assert_allclose(targets[0, [1, 5]], [0.95, 1.05], atol=1e-6)
    np.testing.assert_allclose(targets[1, 2], -1.0, atol=1e-6)
    assert float(jnp.abs(jnp.where(mask, 0.0, targets)).sum()) == 0.0
    np.testing.assert_allclose(turn_values(VALUES, VALUE_POSITIONS)[1, 1], 0.0)


def test_geometric_mean_kl_is_the_mean_log_ratio_on_each_reply_last_token():
    logp = jnp.zeros((2, 10))
    ref = -jnp.arange(20, dtype=jnp.float32).reshape(2, 10) / 100.0   # log ratio = t / 100
    kl = geometric_mean_turn_kl(logp, ref, TURN_IDS, 2)
    expected = np.zeros((2, 10))
    expected[0, 3] = (0.02 + 0.03) / 2
    expected[0, 8] = (0.06 + 0.07 + 0.08) / 3
    expected[1, 5] = (0.13 + 0.14 + 0.15) / 3
    np.testing.assert_allclose(kl, expected, atol=1e-6)


@pytest.mark.parametrize("rows", [1, 3])
def test_advantages_are_zero_off_replies(rows):
    turn_ids = jnp.tile(TURN_IDS[:1], (rows, 1))
    advantages, _, _ = turn_level_advantages(jnp.tile(REWARDS[:1], (rows, 1)),
                                             jnp.tile(VALUES[:1], (rows, 1)), turn_ids,
                                             jnp.tile(VALUE_POSITIONS[:1], (rows, 1)))
    assert float(jnp.abs(jnp.where(turn_ids < 0, advantages, 0.0)).sum()) == 0.0
