"""RLEF's turn-level value inside the jitted PPO update (advantage "turn", kl_form "turn_mean")."""

import jax
import numpy as np
import pytest

from rltf_jax import ppo
from rltf_jax.models.config import tiny_config
from rltf_jax.models.params import random_model
from rltf_jax.ppo.turn_advantages import geometric_mean_turn_kl

VOCAB = 16
# Two rows of a 2-turn conversation over T = 16 tokens:
#   env 0..3 | reply 0 at 4..7 | feedback 8..9 | reply 1 at 10..13 | padding 14..15
REPLY_0, REPLY_1 = range(4, 8), range(10, 14)


def turn_batch(final_rewards=(1.0, -1.0), no_code_turn0=(0.0, -0.2)):
    b, t = 2, 16
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, VOCAB, (b, t)).astype(np.int32)
    attention = np.zeros((b, t), bool)
    attention[:, :14] = True
    response = np.zeros((b, t), bool)
    turn_ids = np.full((b, t), -1, np.int32)
    for k, reply in enumerate((REPLY_0, REPLY_1)):
        response[:, list(reply)] = True
        turn_ids[:, list(reply)] = k
    rewards = np.zeros((b, t), np.float32)
    rewards[:, REPLY_0[-1]] = no_code_turn0
    rewards[:, REPLY_1[-1]] = final_rewards
    # the value of reply k is read at the last environment token before it
    value_positions = np.array([[REPLY_0[0] - 1, REPLY_1[0] - 1]] * b, np.int32)
    return ppo.PPOBatch(tokens, attention, response, rewards, np.zeros(b, np.int32),
                        np.zeros((b, t), np.float32), turn_ids, value_positions)


def setup(**overrides):
    config = ppo.PPOConfig(**{"advantage": "turn", "kl_coef": 0.0, "normalize_advantages": False,
                              "lr": 1e-2, "vf_coef": 1.0, "value_clip": 100.0, **overrides})
    state, defs = ppo.init_train_state(random_model(tiny_config(vocab_size=VOCAB)), config)
    return config, state, defs


def test_every_reply_token_gets_its_turn_return_minus_the_turn_value():
    config, state, defs = setup()
    batch = turn_batch()
    stats = jax.device_get(ppo.rollout_statistics(defs, config, state, batch))
    values, adv = stats["old_values"], stats["advantages"]
    for row, (final, first) in enumerate([(1.0, 0.0), (-1.0, -0.2)]):
        returns = [first + final, final]  # G_0 = R_0 + R_1, G_1 = R_1
        for k, reply in enumerate((REPLY_0, REPLY_1)):
            v = values[row, reply[0] - 1]
            # action index a predicts token a + 1: reply tokens t are actions t - 1
            np.testing.assert_allclose(adv[row, [t - 1 for t in reply]], returns[k] - v, atol=1e-6)
            assert stats["returns"][row, reply[0] - 1] == pytest.approx(returns[k])
        off = np.ones(15, bool)
        off[[t - 1 for r in (REPLY_0, REPLY_1) for t in r]] = False
        assert (adv[row, off] == 0).all()
    assert stats["value_mask"].sum() == 4  # two value positions per row, nothing else
    np.testing.assert_array_equal(np.nonzero(stats["value_mask"][0])[0], [3, 9])


def test_updates_fit_the_turn_values_to_the_turn_returns():
    # lr 3e-3: at 1e-2 the value error oscillated (0.19 -> 0.69 -> 0.22 over updates 20-40), so
    # where it stood at update 40 hung on float rounding.
    config, state, defs = setup(lr=3e-3)
    batch = turn_batch()
    update = ppo.make_update(defs, config)
    targets = np.array([[1.0, 1.0], [-1.2, -1.0]])

    def value_error(state):
        stats = jax.device_get(ppo.rollout_statistics(defs, config, state, batch))
        return float(np.abs(stats["old_values"][:, [3, 9]] - targets).mean())

    before = value_error(state)
    for _ in range(40):
        state, metrics = update(state, batch)
        assert np.isfinite(float(metrics["loss/value"]))
    after = value_error(state)
    assert after < 0.25 * before, (before, after)


def test_turn_mean_kl_puts_the_reply_mean_log_ratio_on_its_last_action():
    config, state, defs = setup(kl_coef=0.5, kl_form="turn_mean")
    noisy = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(jax.random.key(1), x.shape), state.reference)
    state = state._replace(reference=noisy)
    batch = turn_batch()
    stats = jax.device_get(ppo.rollout_statistics(defs, config, state, batch))
    kl = np.asarray(geometric_mean_turn_kl(stats["old_logp"], stats["ref_logp"], batch.turn_ids[:, 1:], 2))
    env = batch.token_rewards[:, 1:]
    np.testing.assert_allclose(stats["rewards"], env - 0.5 * kl, atol=1e-6)
    assert np.count_nonzero(kl) == 4 and np.abs(kl).max() > 1e-4  # one term per reply, really non-zero


def test_turn_settings_are_checked():
    with pytest.raises(ValueError, match="kl_mode='reward'"):
        ppo.PPOConfig(kl_form="turn_mean", kl_mode="loss")
    with pytest.raises(ValueError, match="kl_form"):
        ppo.PPOConfig(kl_form="sequence")
