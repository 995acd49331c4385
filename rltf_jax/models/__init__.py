"""Flax NNX Llama-family policy: config, model, weight loading (HF safetensors, GGUF), named models."""

from rltf_jax.models.config import ModelConfig, tiny_config
from rltf_jax.models.llama import CausalLM, KVCache, init_cache
from rltf_jax.models.load import LoadedModel, load_model

__all__ = ["CausalLM", "KVCache", "LoadedModel", "ModelConfig", "init_cache", "load_model", "tiny_config"]
