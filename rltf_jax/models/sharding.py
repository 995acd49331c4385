"""The model's own sharding rules: decode weights, KV caches and checkpoint restore targets on a mesh.

The generic rules (logical axis names -> mesh axes, `state_shardings`) are `rltf_jax.parallel.mesh`;
these apply them to the model's structures (`UnrolledWeights`, `KVCache`, an abstract model).
"""

from __future__ import annotations

import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rltf_jax.models.config import ModelConfig
from rltf_jax.models.decode import UnrolledWeights
from rltf_jax.models.llama import CACHE_KV_AXES, CACHE_VALID_AXES, LAYER_PARAM_AXES, KVCache
from rltf_jax.models.params import abstract_model
from rltf_jax.parallel.mesh import logical_sharding, state_shardings, variable_axes


def unrolled_weight_shardings(state: nnx.State, mesh: Mesh):
    """UnrolledWeights of NamedShardings (rltf_jax.models.decode): each layer's slice keeps the stacked
    parameter's layout without its leading `layers` axis."""
    def sharding_of(var, drop_layers=False):
        axes, shape = variable_axes(var), var.shape
        if drop_layers:
            axes, shape = axes[1:], shape[1:]
        return logical_sharding(axes, shape, mesh)

    layers = state["layers"]
    per_layer = {name: sharding_of(layers[name], drop_layers=True) for name in LAYER_PARAM_AXES if name in layers}
    n = layers["wq"].shape[0]
    return UnrolledWeights(sharding_of(state["embed"]), sharding_of(state["final_norm"]),
                           sharding_of(state["lm_head"]) if "lm_head" in state else None,
                           tuple(dict(per_layer) for _ in range(n)))


def cache_shardings(cache, mesh: Mesh):
    """A KVCache of NamedShardings: k/v [L, B, S, K, hd], valid [B, S], index replicated."""
    return KVCache(k=logical_sharding(CACHE_KV_AXES, cache.k.shape, mesh),
                   v=logical_sharding(CACHE_KV_AXES, cache.v.shape, mesh),
                   valid=logical_sharding(CACHE_VALID_AXES, cache.valid.shape, mesh),
                   index=NamedSharding(mesh, PartitionSpec()))


def abstract_sharded_state(model_or_config, mesh: Mesh) -> tuple[nnx.GraphDef, nnx.State]:
    """(graphdef, State of jax.ShapeDtypeStruct carrying target shardings) for restoring a checkpoint
    straight onto `mesh` (pass the state as Orbax's restore target). Takes a ModelConfig or a module."""
    if isinstance(model_or_config, ModelConfig):
        graphdef, abstract = abstract_model(model_or_config)
    else:
        graphdef, abstract = nnx.split(model_or_config)
    shardings = state_shardings(abstract, mesh)
    return graphdef, jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                                  abstract, shardings)
