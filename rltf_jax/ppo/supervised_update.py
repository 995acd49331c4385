"""The supervised update: one optimizer step of token NLL on reference-solution replies.

RLTF's supervised baseline (``config.method = "supervised"``) and its interleaved supervised loss
(``config.supervised.every``) share the PPO TrainState and optimizer; the rows come from
`rltf_jax.rollout.supervised.supervised_batch`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from rltf_jax.parallel.mesh import BATCH_AXES
from rltf_jax.ppo import losses as L
from rltf_jax.ppo.state import ModelDefs, TrainState, make_optimizer, train_state_shardings
from rltf_jax.ppo.types import PPOConfig
from rltf_jax.ppo.update import forward


def supervised_update(defs: ModelDefs, config: PPOConfig, state: TrainState, tokens, attention_mask,
                      response_mask):
    """One optimizer step of mean token NLL on the reply tokens (logits at temperature 1).

    tokens / attention_mask / response_mask [B, T]. Returns (new TrainState, metrics
    {"supervised/nll": nats per reply token, "supervised/tokens", "supervised/grad_norm"}).
    """
    unit = dataclasses.replace(config, temperature=1.0)
    mask = jnp.asarray(response_mask)[:, 1:]
    count = jnp.maximum(mask.sum(), 1).astype(jnp.float32)

    def loss_fn(params):
        logp, _, _ = forward(defs._replace(value=None), unit, params["policy"], None, tokens, attention_mask)
        return -L.masked_sum(logp, mask) / count

    params = {"policy": state.policy, "value": state.value}
    nll, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = make_optimizer(config).update(grads, state.opt_state, params)
    params = optax.apply_updates(params, updates)
    metrics = {"supervised/nll": nll, "supervised/tokens": count, "supervised/grad_norm": optax.tree.norm(grads)}
    return state._replace(policy=params["policy"], value=params["value"], opt_state=opt_state), metrics


def make_supervised_update(defs: ModelDefs, config: PPOConfig, *, mesh=None, state: TrainState | None = None):
    """The jitted `(state, batch dict) -> (state, metrics)`; `state` is donated (shardings as PPO's)."""
    fn = lambda s, b: supervised_update(defs, config, s, b["tokens"], b["attention_mask"],  # noqa: E731
                                        b["response_mask"])
    if mesh is None:
        return jax.jit(fn, donate_argnums=(0,))
    if state is None:
        raise ValueError("make_supervised_update(mesh=...) needs an example `state` for its shardings")

    rows = NamedSharding(mesh, PartitionSpec(BATCH_AXES, None))
    batch_sh = {"tokens": rows, "attention_mask": rows, "response_mask": rows}
    state_sh = train_state_shardings(state, mesh)
    return jax.jit(fn, donate_argnums=(0,), in_shardings=(state_sh, batch_sh),
                   out_shardings=(state_sh, NamedSharding(mesh, PartitionSpec())))
