"""Value functions for PPO: a scalar head on hidden states, shared with the policy or on its own
critic backbone.

- "shared": `ValueHead` reads the policy's final hidden states (one forward serves both; the value
  loss also trains the backbone, weighted by PPOConfig.vf_coef).
- "separate": `Critic` = a second CausalLM (initialised from the policy's weights) + `ValueHead`;
  its gradients never touch the policy.

Values are float32 `[batch, seq]`: V at position t estimates the return of the tokens after t.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

VALUE_MODES = ("shared", "separate")


class ValueHead(nnx.Module):
    """V(h) = h · w + b on hidden states h [B, T, D] -> [B, T] float32.

    Zero-initialised, so the first value estimates are 0 and the first advantages are the
    (discounted) rewards themselves.
    """

    def __init__(self, hidden_size: int, param_dtype=jnp.float32):
        self.kernel = nnx.Param(jnp.zeros((hidden_size,), param_dtype), out_sharding=("embed",),
                                eager_sharding=False)
        self.bias = nnx.Param(jnp.zeros((), param_dtype), out_sharding=(), eager_sharding=False)

    def __call__(self, hidden: jax.Array) -> jax.Array:
        w = self.kernel[...]
        values = jnp.einsum("btd,d->bt", hidden.astype(w.dtype), w, preferred_element_type=jnp.float32)
        return values + self.bias[...].astype(jnp.float32)


class Critic(nnx.Module):
    """A separate critic: its own CausalLM backbone (no LM head needed) + ValueHead."""

    def __init__(self, backbone, hidden_size: int, param_dtype=jnp.float32):
        self.backbone = backbone
        self.head = ValueHead(hidden_size, param_dtype)

    def __call__(self, tokens, positions, attention_mask) -> jax.Array:
        """tokens, positions [B, T] int32; attention_mask [B, T] bool -> values [B, T] float32."""
        hidden, _ = self.backbone.hidden_states(tokens, positions, attention_mask)
        return self.head(hidden)


def make_value_model(mode: str, policy, config):
    """The value model for `mode`: a ValueHead ("shared") or a Critic on a copy of `policy`
    ("separate"). `config` is the policy's ModelConfig."""
    param_dtype = config.storage_dtype
    if mode == "shared":
        return ValueHead(config.hidden_size, param_dtype)
    if mode == "separate":
        graphdef, state = nnx.split(policy)
        backbone = nnx.merge(graphdef, jax.tree.map(jnp.array, state))  # a copy, not an alias
        return Critic(backbone, config.hidden_size, param_dtype)
    raise ValueError(f"unknown value mode {mode!r}; expected one of {VALUE_MODES}")
