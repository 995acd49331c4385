"""PPO's state: the TrainState pytree (policy, value, frozen reference, optimizer, step, RNG, β),
its creation from a model, its shardings on a mesh, and the host-side adaptive KL controller."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from rltf_jax.models.value_head import make_value_model
from rltf_jax.parallel import mesh as sharding
from rltf_jax.ppo.types import PPOConfig


class TrainState(NamedTuple):
    """Everything an update changes or needs, as one pytree (Orbax saves / restores it whole).

    policy: nnx.State of the policy's Params. value: nnx.State of the ValueHead / Critic Params
    ({} for critic-free advantages). reference: frozen nnx.State of the initial policy.
    opt_state: optax state over {"policy", "value"}. step: int32 scalar (updates done).
    rng: uint32 [2] PRNG key data. kl_coef: float32 scalar β (changed host-side if adaptive).
    """

    policy: Any
    value: Any
    reference: Any
    opt_state: Any
    step: Any
    rng: Any
    kl_coef: Any


class ModelDefs(NamedTuple):
    """The static halves (nnx.GraphDef) of the policy and value model; value is None if unused."""

    policy: Any
    value: Any


def make_optimizer(config: PPOConfig) -> optax.GradientTransformation:
    """clip_by_global_norm(max_grad_norm) then AdamW with a linear warmup to `lr` (then constant) over
    the {"policy", "value"} tree; with `value_lr` the value subtree's updates are scaled by value_lr / lr.

    AdamW's update (decoupled weight decay included) is proportional to its learning rate, so the
    scaling is exactly AdamW at `value_lr` (same warmup) for the value parameters. The scaling step is
    stateless and only present when value_lr differs from lr, so the optimizer state of a config
    without it is unchanged (older checkpoints restore).
    """
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, config.lr, max(config.warmup_steps, 1)), optax.constant_schedule(config.lr)],
        [max(config.warmup_steps, 1)]) if config.warmup_steps > 0 else optax.constant_schedule(config.lr)
    steps = [optax.clip_by_global_norm(config.max_grad_norm),
             optax.adamw(schedule, b1=config.b1, b2=config.b2, weight_decay=config.weight_decay)]
    if config.value_lr is not None and config.value_lr != config.lr:
        factor = config.value_lr / config.lr

        def scale_value(updates, params=None):
            del params
            return {**updates, "value": jax.tree.map(lambda u: u * factor, updates["value"])}

        steps.append(optax.stateless(scale_value))
    return optax.chain(*steps)


def _copy(tree):
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def init_train_state(loaded_or_model, config: PPOConfig, seed: int = 0) -> tuple[TrainState, ModelDefs]:
    """A fresh TrainState from a LoadedModel (or a CausalLM): reference = a copy of the policy,
    value model per `config.value_mode` (none for critic-free advantages), AdamW state, step 0.

    The state's policy arrays *are* the model's (no copy); the update donates its state, so after the
    first update the model's own arrays are gone: read weights from `state.policy` from then on
    (e.g. `Sampler.set_weights(state.policy)`).
    """
    model = getattr(loaded_or_model, "model", loaded_or_model)
    policy_def, policy = nnx.split(model, nnx.Param)
    value_def, value = None, {}
    if config.uses_values:
        value_def, value = nnx.split(make_value_model(config.value_mode, model, model.config), nnx.Param)
    opt_state = make_optimizer(config).init({"policy": policy, "value": value})
    state = TrainState(policy=policy, value=value, reference=_copy(policy), opt_state=opt_state,
                       step=jnp.zeros((), jnp.int32), rng=jax.random.key_data(jax.random.key(seed)),
                       kl_coef=jnp.asarray(config.kl_coef, jnp.float32))
    return state, ModelDefs(policy_def, value_def)


def train_state_shardings(state: TrainState, mesh) -> TrainState:
    """NamedShardings for a TrainState on `mesh`: every nnx Variable (params, and optax moments,
    which keep the Variables' logical axes) per rltf_jax.parallel.mesh's rules; other leaves replicated."""

    def leaf_sharding(leaf):
        if isinstance(leaf, nnx.Variable):
            return leaf.replace(sharding.logical_sharding(sharding.variable_axes(leaf), leaf.shape, mesh))
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree.map(leaf_sharding, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def update_kl_coef(state: TrainState, observed_seq_kl: float, batch_size: int,
                   config: PPOConfig) -> TrainState:
    """Host-side adaptive KL controller (Ziegler et al. 2019), run between updates:

        e = clip(KL_seq / kl_target - 1, -0.2, 0.2),   β ← β (1 + e · batch_size / kl_horizon)

    `observed_seq_kl` is the metric "kl/seq_k1". Returns `state` unchanged if not config.adaptive_kl.
    """
    if not config.adaptive_kl:
        return state
    error = float(np.clip(observed_seq_kl / config.kl_target - 1.0, -0.2, 0.2))
    beta = float(state.kl_coef) * (1.0 + error * batch_size / config.kl_horizon)
    return state._replace(kl_coef=jnp.asarray(beta, jnp.float32))
