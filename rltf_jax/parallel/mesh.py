"""Device mesh ("data", "fsdp", "tensor") and logical-axis rules -> NamedSharding for params, batches, caches.

Every CausalLM parameter carries logical axis names in its `out_sharding` metadata (see
`rltf_jax.models.llama.LAYER_PARAM_AXES`); `LOGICAL_AXIS_RULES` maps each name to mesh axes:

  * FSDP: the `embed` axis of every weight is split over "fsdp" (each device holds 1/fsdp of it;
    XLA all-gathers a layer's weights inside the jitted step), batches are split over ("data", "fsdp").
  * Tensor parallel: heads, MLP width and vocab are split over "tensor" (Megatron layout: column-split
    q/k/v/gate/up, row-split o/down).

A dimension that a mesh axis does not divide is replicated instead (logged once), so odd head counts
(SmolLM2's 3 KV heads) still load on any mesh.

Tests fake an 8-device CPU mesh with XLA_FLAGS=--xla_force_host_platform_device_count=8, which must be
set before jax is imported: tests/parallel/test_sharding.py runs those checks in a subprocess so the rest of the
suite keeps one device.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

log = logging.getLogger(__name__)

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

LOGICAL_AXIS_RULES: dict[str, Any] = {
    "batch": BATCH_AXES,
    "vocab": "tensor",
    "embed": "fsdp",
    "mlp": "tensor",
    "q_heads": "tensor",
    "kv_heads": "tensor",
    "cache_heads": "tensor",
    "layers": None,
    "norm": None,
    "head_dim": None,
    "cache_seq": None,
    "seq": None,
}

_warned: set = set()


def make_mesh(data: int | None = None, fsdp: int | None = None, tensor: int = 1,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ("data", "fsdp", "tensor") mesh. Unspecified sizes take the remaining devices: with neither
    `data` nor `fsdp` given every device not used by `tensor` goes to "fsdp"."""
    devices = list(devices if devices is not None else jax.devices())
    n = len(devices)
    if n % tensor:
        raise ValueError(f"tensor={tensor} does not divide the {n} devices")
    if data is None and fsdp is None:
        data, fsdp = 1, n // tensor
    elif fsdp is None:
        fsdp = n // (data * tensor)
    elif data is None:
        data = n // (fsdp * tensor)
    if data * fsdp * tensor != n:
        raise ValueError(f"mesh data={data} x fsdp={fsdp} x tensor={tensor} != {n} devices")
    return Mesh(np.asarray(devices).reshape(data, fsdp, tensor), MESH_AXES)


def _axis_size(mesh: Mesh, axes) -> int:
    axes = (axes,) if isinstance(axes, str) else axes
    return int(np.prod([mesh.shape[a] for a in axes]))


def logical_to_spec(logical_axes: Sequence[str | None], shape: Sequence[int], mesh: Mesh) -> PartitionSpec:
    """Logical axis names of an array -> PartitionSpec on `mesh` (replicating non-divisible dims)."""
    if len(logical_axes) != len(shape):
        raise ValueError(f"{len(logical_axes)} logical axes {tuple(logical_axes)} for shape {tuple(shape)}")
    spec = []
    for name, dim in zip(logical_axes, shape):
        if name is not None and name not in LOGICAL_AXIS_RULES:
            raise ValueError(f"unknown logical axis {name!r} (known: {sorted(LOGICAL_AXIS_RULES)})")
        axes = LOGICAL_AXIS_RULES.get(name) if name is not None else None
        if axes is not None and dim % _axis_size(mesh, axes):
            key = (name, dim, _axis_size(mesh, axes))
            if key not in _warned:
                _warned.add(key)
                log.info("logical axis %r of size %d not divisible by mesh %s=%d: replicated",
                         name, dim, axes, _axis_size(mesh, axes))
            axes = None
        spec.append(axes)
    return PartitionSpec(*spec)


def logical_sharding(logical_axes, shape, mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, logical_to_spec(logical_axes, shape, mesh))


def variable_axes(var: nnx.Variable) -> tuple:
    axes = var.get_metadata().get("out_sharding")
    return tuple(axes) if axes else (None,) * len(var.shape)


def state_shardings(state: nnx.State, mesh: Mesh) -> nnx.State:
    """A State of NamedShardings (same tree as `state`) from each Variable's logical axes."""
    return jax.tree.map(lambda v: v.replace(logical_sharding(variable_axes(v), v.shape, mesh)),
                        state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def param_sharding_fn(mesh: Mesh):
    """(path, abstract Variable) -> NamedSharding, for rltf_jax.models.params.load_weights."""
    return lambda path, var: logical_sharding(variable_axes(var), var.shape, mesh)


def shard_model(model: nnx.Module, mesh: Mesh) -> nnx.Module:
    """Moves every Variable of `model` onto `mesh` per its logical axes (in place; returns model)."""
    state = nnx.state(model)
    nnx.update(model, jax.device_put(state, state_shardings(state, mesh)))
    return model


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """NamedSharding of a [batch, seq] array: batch over ("data", "fsdp"), seq replicated."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES, None))
