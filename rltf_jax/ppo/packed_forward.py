"""The update's forward on packed rows (shared_prompts.py): the model runs once over `prompt ⧺ reply_1 ⧺
… ⧺ reply_n`, and each row's per-action log-probabilities are read from the hidden states that
predict its reply tokens."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rltf_jax.models.head_logprobs import token_logprobs_and_entropy_from_hidden

PACKED_INPUTS = ("packed_tokens", "packed_segment_ids", "packed_positions", "source")


def cast_floats(params, dtype):
    """Every floating leaf of `params` cast to `dtype` (integer leaves unchanged)."""
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params)


def policy_model(defs, policy, dtype):
    """The policy module on `policy` cast to `dtype`, its decoder layers left for the layer scan to
    cast (CausalLM.hidden_states: layer_dtype, which keeps their gradients float32 stacks)."""
    cast = cast_floats(policy, dtype)
    cast["layers"] = policy["layers"]
    return nnx.merge(defs.policy, cast)


def packed_forward(defs, config, policy, mb: dict):
    """Per-action log π and entropy of a microbatch of packed rows.

    mb: packed_tokens, packed_segment_ids, packed_positions [p, S] int32 (PackedRows of this
    microbatch), source [b, R] int32 (flat indices into [p × S]), tokens [b, R + 1] int32 (the
    compact rows: column j + 1 is action j's target). Returns (logprobs [b, R], entropy [b, R]), float32.
    """
    dtype = jnp.dtype(config.compute_dtype)
    model = policy_model(defs, policy, dtype)
    segments = mb["packed_segment_ids"]
    hidden, _ = model.hidden_states(mb["packed_tokens"], mb["packed_positions"], segments >= 0,
                                    layer_dtype=dtype, segment_ids=segments)
    before = jnp.take(hidden.reshape(-1, hidden.shape[-1]), mb["source"], axis=0)  # [b, R, D]
    weight, tied = model.head_weight()
    return token_logprobs_and_entropy_from_hidden(before, weight, mb["tokens"][:, 1:], tied=tied,
                                                  temperature=config.temperature)
