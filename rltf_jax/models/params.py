"""Build a CausalLM from a weight source, streaming each tensor straight into its sharding.

Each parameter is created with `jax.make_array_from_callback`: the callback reads only the slice a
device owns (lazily from safetensors; per dequantized tensor from GGUF), so no full host copy of the
model, nor of one parameter per device, is ever made.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable

import jax
import numpy as np
from flax import nnx

from rltf_jax.models.config import ModelConfig
from rltf_jax.models.llama import CausalLM

log = logging.getLogger(__name__)

# CausalLM parameter path -> (HF tensor name, with {l} for the layer; transpose to [in, out]?)
TOP_LEVEL_TENSORS = {
    ("embed",): ("model.embed_tokens.weight", False),
    ("final_norm",): ("model.norm.weight", False),
    ("lm_head",): ("lm_head.weight", True),
}
LAYER_TENSORS = {
    "attn_norm": ("model.layers.{l}.input_layernorm.weight", False),
    "wq": ("model.layers.{l}.self_attn.q_proj.weight", True),
    "wk": ("model.layers.{l}.self_attn.k_proj.weight", True),
    "wv": ("model.layers.{l}.self_attn.v_proj.weight", True),
    "bq": ("model.layers.{l}.self_attn.q_proj.bias", False),
    "bk": ("model.layers.{l}.self_attn.k_proj.bias", False),
    "bv": ("model.layers.{l}.self_attn.v_proj.bias", False),
    "wo": ("model.layers.{l}.self_attn.o_proj.weight", True),
    "mlp_norm": ("model.layers.{l}.post_attention_layernorm.weight", False),
    "w_gate": ("model.layers.{l}.mlp.gate_proj.weight", True),
    "w_up": ("model.layers.{l}.mlp.up_proj.weight", True),
    "w_down": ("model.layers.{l}.mlp.down_proj.weight", True),
}


def abstract_model(config: ModelConfig) -> tuple[nnx.GraphDef, nnx.State]:
    """(graphdef, state of jax.ShapeDtypeStruct) of a CausalLM, without allocating weights."""
    model = nnx.eval_shape(lambda: CausalLM(config, rngs=nnx.Rngs(0)))
    return nnx.split(model)


def _read_fn(source, hf_name: str, transpose: bool, expected: tuple[int, ...]) -> Callable:
    """A reader of index slices of one tensor in our layout ([in, out] when transposed)."""
    hf_shape = tuple(reversed(expected)) if transpose else expected
    actual = source.shape(hf_name)
    if tuple(actual) != tuple(hf_shape):
        raise ValueError(f"tensor {hf_name!r} has shape {tuple(actual)}, the config expects {hf_shape}")

    def read(index: tuple[slice, ...]) -> np.ndarray:
        if transpose:
            return source.read(hf_name, tuple(reversed(index))).T
        return source.read(hf_name, index)

    return read


def _param_reader(source, path: tuple, shape: tuple[int, ...], num_layers: int) -> Callable:
    """index (tuple of slices into the full param) -> numpy block, for one CausalLM parameter."""
    if path in TOP_LEVEL_TENSORS:
        name, transpose = TOP_LEVEL_TENSORS[path]
        return _read_fn(source, name, transpose, shape)
    if len(path) == 2 and path[0] == "layers" and path[1] in LAYER_TENSORS:
        template, transpose = LAYER_TENSORS[path[1]]
        per_layer = [_read_fn(source, template.format(l=l), transpose, shape[1:]) for l in range(num_layers)]

        def read(index: tuple[slice, ...]) -> np.ndarray:
            layers = range(num_layers)[index[0]]
            return np.stack([per_layer[l](index[1:]) for l in layers])

        return read
    raise ValueError(f"no checkpoint tensor is mapped to parameter {'.'.join(map(str, path))}")


def load_weights(config: ModelConfig, source, shardings=None) -> CausalLM:
    """A CausalLM whose parameters are read from `source`, placed with `shardings`.

    shardings: None (default device) or a function (path tuple, jax.ShapeDtypeStruct) -> jax.sharding.Sharding.
    """
    graphdef, abstract = abstract_model(config)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    leaves = []
    for path, var in nnx.to_flat_state(abstract):
        path = tuple(str(p) for p in path)
        shape, dtype = tuple(var.shape), var.dtype
        sharding = shardings(path, var) if shardings is not None else device
        reader = _param_reader(source, path, shape, config.num_layers)
        full = tuple(slice(0, d) for d in shape)

        def callback(index, reader=reader, dtype=dtype, full=full):
            index = tuple(slice(s.start or 0, s.stop if s.stop is not None else f.stop)
                          for s, f in zip(index, full)) if index else full
            return np.ascontiguousarray(reader(index), dtype=dtype)  # one copy: cast and C order

        leaves.append((path, jax.make_array_from_callback(shape, sharding, callback)))
    state = nnx.from_flat_state([(path, abstract_var.replace(value))
                                 for (path, value), (_, abstract_var) in zip(leaves, nnx.to_flat_state(abstract))])
    return nnx.merge(graphdef, state)


def random_model(config: ModelConfig, seed: int = 0) -> CausalLM:
    """A seeded random-init CausalLM (the tiny test models). The initialisers run as one jitted
    function: run eagerly, each compiles on its own in every process, while one
    function is compiled once and then comes from the persistent compilation cache."""
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: CausalLM(config, rngs=nnx.Rngs(seed))))
    return nnx.merge(graphdef, _random_state(config, seed))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _random_state(config: ModelConfig, seed: int) -> nnx.State:
    return nnx.state(CausalLM(config, rngs=nnx.Rngs(seed)))
