"""ValueHead / Critic: shapes, zero init, and a separate critic that owns its weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fp_bounds import gamma
from rltf_jax.models.config import tiny_config
from rltf_jax.models.params import random_model
from rltf_jax.models.value_head import Critic, ValueHead, make_value_model


def test_value_head_is_a_zero_initialised_linear_map():
    head = ValueHead(4)
    hidden = jnp.arange(24, dtype=jnp.float32).reshape(2, 3, 4)
    assert head(hidden).shape == (2, 3) and not np.asarray(head(hidden)).any()
    head.kernel[...] = jnp.array([1.0, 0.0, -1.0, 0.5])
    head.bias[...] = jnp.array(0.25)
    want = hidden @ np.array([1.0, 0.0, -1.0, 0.5]) + 0.25
    np.testing.assert_allclose(np.asarray(head(hidden.astype(jnp.bfloat16))), want, rtol=1e-2)
    assert head(hidden).dtype == jnp.float32


def test_separate_critic_copies_the_policy_backbone():
    policy = random_model(tiny_config(vocab_size=32))
    critic = make_value_model("separate", policy, policy.config)
    assert isinstance(critic, Critic)
    tokens = jnp.array([[1, 5, 7, 2]], jnp.int32)
    positions = jnp.arange(4)[None]
    mask = jnp.ones((1, 4), bool)
    critic.head.kernel[...] = jnp.ones_like(critic.head.kernel[...])
    hidden, _ = policy.hidden_states(tokens, positions, mask)
    # The copy runs the same operations on the same weights: the same bits (docs/testing.md).
    np.testing.assert_array_equal(np.asarray(critic.backbone.hidden_states(tokens, positions, mask)[0]),
                                  np.asarray(hidden))
    # The head is a float32 dot with a ones kernel (bias 0): within Higham's worst case gamma_64 sum |h|
    # of the float64 sum of the same float32 hidden states, in any order (tests/helpers/fp_bounds.py).
    hidden64 = np.asarray(hidden, np.float64)
    error = np.abs(np.asarray(critic(tokens, positions, mask), np.float64) - hidden64.sum(-1))
    assert (error <= gamma(hidden64.shape[-1]) * np.abs(hidden64).sum(-1)).all(), error
    before = np.asarray(policy.embed[...]).copy()
    critic.backbone.embed[...] = critic.backbone.embed[...] + 1.0  # training the critic...
    np.testing.assert_array_equal(np.asarray(policy.embed[...]), before)  # ...never moves the policy
    assert isinstance(make_value_model("shared", policy, policy.config), ValueHead)
    with pytest.raises(ValueError, match="unknown value mode 'both'"):
        make_value_model("both", policy, policy.config)
    assert all(isinstance(v, nnx.Param) for v in jax.tree.leaves(nnx.state(critic.head, nnx.Param),
                                                                 is_leaf=lambda x: isinstance(x, nnx.Variable)))
