"""A policy as a HF transformers folder: config.json, generation_config.json, safetensors, tokenizer.

The inverse of `loading.load_weights`: every CausalLM parameter goes back to its HF tensor name
(`loading.TOP_LEVEL_TENSORS`, `loading.LAYER_TENSORS`); stacked `[L, ...]` layer parameters are split
per layer and `[in, out]` kernels are transposed back to torch's `[out, in]`. A tied model has no
`lm_head` parameter, so its folder has no `lm_head.weight` and says `tie_word_embeddings: true`.
Past `max_shard_size` (5 GB, transformers' default) the weights are split into shards with a
`model.safetensors.index.json`, by huggingface_hub's splitter.
"""

from __future__ import annotations

import json
import os
from typing import Iterator

import ml_dtypes
import numpy as np
from flax import nnx
from safetensors.numpy import save_file

from rltf_jax.models.config import ModelConfig
from rltf_jax.models.params import LAYER_TENSORS, TOP_LEVEL_TENSORS

EXPORT_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}
MAX_SHARD_SIZE = "5GB"


class ExportError(ValueError):
    """The model (or the requested format) cannot be exported; the message names why."""


def export_dtype(name: str):
    """'float32' | 'bfloat16' | 'float16' -> the numpy dtype of the exported tensors."""
    if name not in EXPORT_DTYPES:
        raise ExportError(f"unsupported export dtype {name!r}; expected one of {sorted(EXPORT_DTYPES)}")
    return EXPORT_DTYPES[name]


def hf_tensors(model, num_layers: int) -> Iterator[tuple[str, np.ndarray]]:
    """(HF tensor name, float32 array in HF layout) for every parameter of a CausalLM, in load order.

    Raises ExportError for a parameter no HF tensor is mapped to (a model the exporter cannot map).
    """
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        path = tuple(str(p) for p in path)
        value = np.asarray(var[...], dtype=np.float32)
        if path in TOP_LEVEL_TENSORS:
            name, transpose = TOP_LEVEL_TENSORS[path]
            yield name, (value.T if transpose else value)
        elif len(path) == 2 and path[0] == "layers" and path[1] in LAYER_TENSORS:
            template, transpose = LAYER_TENSORS[path[1]]
            if value.shape[0] != num_layers:
                raise ExportError(f"parameter {'.'.join(path)} has {value.shape[0]} layers, "
                                  f"the config {num_layers}")
            for layer in range(num_layers):
                yield template.format(l=layer), (value[layer].T if transpose else value[layer])
        else:
            raise ExportError(f"cannot export parameter {'.'.join(path)}: no HF tensor is mapped to it")


def hf_state_dict(model, config: ModelConfig, dtype: str = "float32") -> dict[str, np.ndarray]:
    """{HF name: C-contiguous array of `dtype`}, sorted by name (the order HF writes them in)."""
    np_dtype = export_dtype(dtype)
    tensors = {name: np.ascontiguousarray(value, dtype=np_dtype)
               for name, value in hf_tensors(model, config.num_layers)}
    if config.tie_word_embeddings and "lm_head.weight" in tensors:
        raise ExportError("the config ties the embeddings but the model has an lm_head parameter")
    return dict(sorted(tensors.items()))


def hf_architecture(config: ModelConfig) -> tuple[str, str]:
    """(architectures[0], model_type): Qwen2 is the family with q/k/v biases, Llama the one without."""
    return ("Qwen2ForCausalLM", "qwen2") if config.attention_bias else ("LlamaForCausalLM", "llama")


def _one_or_list(ids: tuple[int, ...]):
    return None if not ids else (ids[0] if len(ids) == 1 else list(ids))


def hf_config_dict(config: ModelConfig, dtype: str = "float32") -> dict:
    """The config.json transformers builds the model from (inverse of ModelConfig.from_hf_dict)."""
    architecture, model_type = hf_architecture(config)
    hf = {
        "architectures": [architecture], "model_type": model_type,
        "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size, "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads, "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim, "hidden_act": "silu",
        "max_position_embeddings": config.max_position_embeddings,
        "rms_norm_eps": config.rms_norm_eps, "rope_theta": config.rope_theta,
        "rope_scaling": dict(config.rope_scaling) if config.rope_scaling else None,
        "tie_word_embeddings": config.tie_word_embeddings,
        "bos_token_id": config.bos_token_id, "eos_token_id": _one_or_list(config.eos_token_ids),
        "dtype": dtype, "torch_dtype": dtype, "use_cache": True,  # transformers >= 5 / older readers
    }
    if model_type == "qwen2":
        hf.update(use_sliding_window=False, sliding_window=None, max_window_layers=config.num_layers)
    else:
        hf.update(attention_bias=False, mlp_bias=False, pretraining_tp=1)
    return hf


def generation_config_dict(config: ModelConfig, tokenizer=None) -> dict:
    """generation_config.json: the token ids `generate` needs (greedy by default, as transformers')."""
    pad = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
    return {"bos_token_id": config.bos_token_id, "eos_token_id": _one_or_list(config.eos_token_ids),
            "pad_token_id": pad if pad is not None else (config.eos_token_ids or (None,))[0]}


def write_safetensors(folder: str, tensors: dict[str, np.ndarray], max_shard_size=MAX_SHARD_SIZE) -> list[str]:
    """model.safetensors, or shards + model.safetensors.index.json past `max_shard_size`; file names."""
    from huggingface_hub import split_state_dict_into_shards_factory

    split = split_state_dict_into_shards_factory(
        tensors, get_storage_size=lambda a: a.nbytes, filename_pattern="model{suffix}.safetensors",
        max_shard_size=max_shard_size)
    for filename, names in split.filename_to_tensors.items():
        save_file({name: tensors[name] for name in names}, os.path.join(folder, filename),
                  metadata={"format": "pt"})
    if split.is_sharded:
        index = {"metadata": {"total_size": sum(a.nbytes for a in tensors.values())},
                 "weight_map": split.tensor_to_filename}
        _write_json(os.path.join(folder, "model.safetensors.index.json"), index)
    return sorted(split.filename_to_tensors)


def _write_json(path: str, value: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=False)
        f.write("\n")


def write_hf_folder(loaded, folder: str, *, dtype: str = "float32", max_shard_size=MAX_SHARD_SIZE) -> None:
    """Writes `loaded` (a LoadedModel) into the existing empty `folder` as a transformers model.

    AutoModelForCausalLM / AutoTokenizer.from_pretrained(folder) load it with no extra arguments;
    the tokenizer files (tokenizer.json, its config and chat template) come from `save_pretrained`.
    """
    config = loaded.config
    tensors = hf_state_dict(loaded.model, config, dtype)
    write_safetensors(folder, tensors, max_shard_size)
    _write_json(os.path.join(folder, "config.json"), hf_config_dict(config, dtype))
    _write_json(os.path.join(folder, "generation_config.json"),
                generation_config_dict(config, loaded.tokenizer))
    if loaded.tokenizer is not None:
        loaded.tokenizer.save_pretrained(folder)
