"""Rematerialised decoder blocks (ModelConfig.remat): same gradients, less memory, and "auto"
switching on exactly for the long sequences whose attention scores would not fit (RLEF episodes)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rltf_jax.models.config import REMAT_AUTO_BYTES, tiny_config
from rltf_jax.models.params import random_model
from rltf_jax.run.checkpoint import model_identity

BATCH, SEQ = 2, 256


def loss_and_grad(remat: str):
    """The compiled value_and_grad of a mean log-likelihood over [BATCH, SEQ] tokens."""
    model = random_model(tiny_config(vocab_size=512, num_layers=4, remat=remat), seed=0)
    graphdef, params = nnx.split(model, nnx.Param)
    tokens = jax.random.randint(jax.random.key(1), (BATCH, SEQ), 0, 512)
    positions = jnp.broadcast_to(jnp.arange(SEQ), (BATCH, SEQ))
    mask = jnp.ones((BATCH, SEQ), bool)

    def loss(p):
        logits, _, _ = nnx.merge(graphdef, p)(tokens, positions, mask)
        logp = jax.nn.log_softmax(logits[:, :-1], axis=-1)
        return -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1).mean()

    fn = jax.jit(jax.value_and_grad(loss))
    return fn, params


def test_full_remat_gives_the_same_gradients_with_less_memory():
    results, temp_bytes = {}, {}
    for remat in ("none", "full"):
        fn, params = loss_and_grad(remat)
        temp_bytes[remat] = fn.lower(params).compile().memory_analysis().temp_size_in_bytes
        results[remat] = fn(params)
    (loss_none, grads_none), (loss_full, grads_full) = results["none"], results["full"]
    np.testing.assert_allclose(loss_full, loss_none, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(grads_full), jax.tree.leaves(grads_none)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # Without remat the backward keeps every layer's [B, H, T, T] scores and probabilities.
    scores_per_layer = 2 * 4 * BATCH * 4 * SEQ * SEQ
    assert temp_bytes["none"] - temp_bytes["full"] > 2 * scores_per_layer, temp_bytes


def test_auto_rematerialises_only_long_sequences_and_is_not_part_of_the_identity():
    smollm2 = tiny_config(num_layers=30, num_heads=9, num_kv_heads=3, hidden_size=576, head_dim=64)
    assert not smollm2.remat_blocks(8, 256)          # an RLTF microbatch: ~1.1 GB of scores
    assert smollm2.remat_blocks(8, 1152)             # a 3-turn RLEF microbatch: ~23 GB
    assert 2 * 4 * 30 * 8 * 9 * 1152**2 > REMAT_AUTO_BYTES > 2 * 4 * 30 * 8 * 9 * 256**2
    assert smollm2.replace(remat="full").remat_blocks(1, 8)
    assert not smollm2.replace(remat="none").remat_blocks(64, 4096)
    assert model_identity("m", smollm2) == model_identity("m", smollm2.replace(remat="full"))
    with pytest.raises(ValueError, match="remat='some'"):
        smollm2.replace(remat="some")
