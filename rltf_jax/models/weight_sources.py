"""Read checkpoint tensors by their HF name, one at a time: HF safetensors folders and GGUF files.

A `WeightSource` exposes `config()` (a ModelConfig without dtypes) and `read(hf_name, index)`: the
tensor in HF/torch layout (`[out, in]` for linear weights) as a numpy array, optionally sliced, so a
loader can stream each tensor (or only one device's slice of it) straight into its sharding.
"""

from __future__ import annotations

import collections
import json
import os
import re
from typing import Any

import numpy as np
from safetensors import safe_open

from rltf_jax.models.config import ModelConfig

SAFETENSORS_INDEX = "model.safetensors.index.json"
SAFETENSORS_SINGLE = "model.safetensors"


class MissingTensorError(KeyError):
    """The checkpoint lacks a tensor the config requires."""


class SafetensorsSource:
    """A local HF folder: config.json + model.safetensors or a sharded model.safetensors.index.json."""

    def __init__(self, folder: str):
        self.folder = folder
        config_path = os.path.join(folder, "config.json")
        if not os.path.exists(config_path):
            raise FileNotFoundError(f"{folder}: no config.json (not a HF model folder)")
        with open(config_path) as f:
            self.hf_config: dict[str, Any] = json.load(f)
        index_path = os.path.join(folder, SAFETENSORS_INDEX)
        if os.path.exists(index_path):
            with open(index_path) as f:
                self.weight_map: dict[str, str] = json.load(f)["weight_map"]
        elif os.path.exists(os.path.join(folder, SAFETENSORS_SINGLE)):
            with safe_open(os.path.join(folder, SAFETENSORS_SINGLE), "numpy") as f:
                self.weight_map = {k: SAFETENSORS_SINGLE for k in f.keys()}
        else:
            raise FileNotFoundError(f"{folder}: neither {SAFETENSORS_SINGLE} nor {SAFETENSORS_INDEX}")
        self._handles: dict[str, Any] = {}
        self._safe_open = safe_open

    def config(self) -> ModelConfig:
        return ModelConfig.from_hf_dict(self.hf_config)

    def has(self, hf_name: str) -> bool:
        return hf_name in self.weight_map

    def shape(self, hf_name: str) -> tuple[int, ...]:
        return tuple(self._slice(hf_name).get_shape())

    def _slice(self, hf_name: str):
        if hf_name not in self.weight_map:
            raise MissingTensorError(f"tensor {hf_name!r} not found in {self.folder}")
        fname = self.weight_map[hf_name]
        if fname not in self._handles:
            self._handles[fname] = self._safe_open(os.path.join(self.folder, fname), "numpy")
        return self._handles[fname].get_slice(hf_name)

    def read(self, hf_name: str, index: tuple[slice, ...] | None = None) -> np.ndarray:
        """The tensor (or its `index` slice, read from disk lazily) in HF layout."""
        sl = self._slice(hf_name)
        return np.asarray(sl[index] if index else sl[:])


# GGUF tensor names (llama.cpp) <- HF names.
_GGUF_NAMES = [
    (r"model\.embed_tokens\.weight", "token_embd.weight"),
    (r"model\.norm\.weight", "output_norm.weight"),
    (r"lm_head\.weight", "output.weight"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"blk.\1.attn_norm.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"blk.\1.ffn_norm.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)", r"blk.\1.attn_q.\2"),
    (r"model\.layers\.(\d+)\.self_attn\.k_proj\.(weight|bias)", r"blk.\1.attn_k.\2"),
    (r"model\.layers\.(\d+)\.self_attn\.v_proj\.(weight|bias)", r"blk.\1.attn_v.\2"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight", r"blk.\1.attn_output.weight"),
    (r"model\.layers\.(\d+)\.mlp\.gate_proj\.weight", r"blk.\1.ffn_gate.weight"),
    (r"model\.layers\.(\d+)\.mlp\.up_proj\.weight", r"blk.\1.ffn_up.weight"),
    (r"model\.layers\.(\d+)\.mlp\.down_proj\.weight", r"blk.\1.ffn_down.weight"),
]
GGUF_ARCHITECTURES = ("llama", "qwen2")


def gguf_name(hf_name: str) -> str:
    for pattern, repl in _GGUF_NAMES:
        if re.fullmatch(pattern, hf_name):
            return re.sub(pattern, repl, hf_name)
    raise MissingTensorError(f"no GGUF name for tensor {hf_name!r}")


def unpermute_gguf_qk(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's convert-time row permutation of Q/K weights ([out, in] or bias [out]).

    llama.cpp reorders each head's rows from HF's rotate-half layout to interleaved pairs; this is the
    inverse (as transformers' `LlamaTensorProcessor._reverse_permute_weights`).
    """
    dim = weight.shape[0] // n_heads // 2
    w = weight.reshape(n_heads, dim, 2, *weight.shape[1:])
    return w.swapaxes(2, 1).reshape(weight.shape)


class GGUFSource:
    """A GGUF file (llama / qwen2), dequantized per tensor with the `gguf` package's reader."""

    def __init__(self, path: str):
        from gguf import GGUFReader

        self.path = path
        self.reader = GGUFReader(path)
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.arch = self.field("general.architecture")
        if self.arch not in GGUF_ARCHITECTURES:
            raise ValueError(f"{path}: unknown GGUF architecture {self.arch!r} "
                             f"(supported: {', '.join(GGUF_ARCHITECTURES)})")
        if "rope_freqs.weight" in self.tensors:
            raise ValueError(f"{path}: tensor 'rope_freqs.weight' (llama3 rope scaling in GGUF) "
                             "is not supported; load the HF safetensors checkpoint instead")
        self._cache: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()

    def field(self, key: str, default: Any = None) -> Any:
        f = self.reader.fields.get(key)
        return default if f is None else f.contents()

    def config(self) -> ModelConfig:
        a = self.arch
        heads = int(self.field(f"{a}.attention.head_count"))
        dim = int(self.field(f"{a}.embedding_length"))
        vocab = self.field(f"{a}.vocab_size")
        if vocab is None:
            vocab = self.tensors["token_embd.weight"].shape[1]
        eos = self.field("tokenizer.ggml.eos_token_id")
        scaling_type = self.field(f"{a}.rope.scaling.type")
        rope_scaling = None
        if scaling_type and scaling_type != "none":
            if scaling_type != "linear":
                raise ValueError(f"{self.path}: GGUF rope scaling {scaling_type!r} is not supported")
            rope_scaling = {"rope_type": "linear", "factor": float(self.field(f"{a}.rope.scaling.factor"))}
        return ModelConfig(
            vocab_size=int(vocab),
            hidden_size=dim,
            num_layers=int(self.field(f"{a}.block_count")),
            num_heads=heads,
            num_kv_heads=int(self.field(f"{a}.attention.head_count_kv", heads)),
            head_dim=int(self.field(f"{a}.rope.dimension_count", dim // heads)),
            intermediate_size=int(self.field(f"{a}.feed_forward_length")),
            rope_theta=float(self.field(f"{a}.rope.freq_base", 10000.0)),
            rope_scaling=rope_scaling,
            rms_norm_eps=float(self.field(f"{a}.attention.layer_norm_rms_epsilon", 1e-5)),
            tie_word_embeddings="output.weight" not in self.tensors,
            attention_bias="blk.0.attn_q.bias" in self.tensors,
            max_position_embeddings=int(self.field(f"{a}.context_length", 4096)),
            bos_token_id=self.field("tokenizer.ggml.bos_token_id"),
            eos_token_ids=() if eos is None else (int(eos),),
        )

    def has(self, hf_name: str) -> bool:
        return gguf_name(hf_name) in self.tensors

    def shape(self, hf_name: str) -> tuple[int, ...]:
        name = gguf_name(hf_name)
        if name not in self.tensors:
            raise MissingTensorError(f"tensor {name!r} (HF {hf_name!r}) not found in {self.path}")
        return tuple(int(d) for d in reversed(self.tensors[name].shape))

    def _dequantized(self, hf_name: str) -> np.ndarray:
        name = gguf_name(hf_name)
        if name not in self.tensors:
            raise MissingTensorError(f"tensor {name!r} (HF {hf_name!r}) not found in {self.path}")
        return self.dequantized(name)

    def dequantized(self, name: str) -> np.ndarray:
        """GGUF tensor `name` as float32 in HF layout (Q/K rows un-permuted); the last 4 are kept."""
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize

        t = self.tensors[name]
        shape = tuple(int(d) for d in reversed(t.shape))
        if t.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            arr = np.asarray(t.data, dtype=np.float32).reshape(shape)
        else:
            try:
                arr = dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float32)
            except NotImplementedError as e:
                raise ValueError(f"tensor {name!r}: GGUF type {t.tensor_type.name} cannot be "
                                 f"dequantized: {e}") from e
        if self.arch == "llama" and (".attn_q." in name or ".attn_k." in name):
            heads = int(self.field("llama.attention.head_count"))
            if ".attn_k." in name:
                heads = int(self.field("llama.attention.head_count_kv", heads))
            arr = unpermute_gguf_qk(arr, heads)
        self._cache[name] = arr
        if len(self._cache) > 4:
            self._cache.popitem(last=False)
        return arr

    def read(self, hf_name: str, index: tuple[slice, ...] | None = None) -> np.ndarray:
        arr = self._dequantized(hf_name)
        return arr[index] if index else arr
