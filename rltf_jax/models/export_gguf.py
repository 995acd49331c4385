"""A policy as one GGUF file (llama.cpp, ollama, transformers' `gguf_file=`), via gguf's GGUFWriter.

Tensors take llama.cpp's names (`weight_sources.gguf_name`); for the `llama` architecture the Q and
K projection rows are permuted from HF's rotate-half layout to llama.cpp's interleaved pairs, as
llama.cpp's `convert_hf_to_gguf.py` does (`permute_gguf_qk`, the inverse of the loader's
`unpermute_gguf_qk`); `qwen2` files keep HF's layout. Models with q/k/v biases are written as
`qwen2`, the others as `llama`. 2-D weights take the requested type (F32, F16, BF16 or Q8_0, through
`gguf.quants`); 1-D tensors (norms, biases) stay F32, as llama.cpp keeps them. The tokenizer
(gpt2 / byte-level BPE: tokens, token types, merges, special ids) and the chat template go into the
metadata (`export_gguf_vocab.py`).
"""

from __future__ import annotations

import logging

import numpy as np

from rltf_jax.models.config import ModelConfig
from rltf_jax.models.export_gguf_vocab import add_tokenizer
from rltf_jax.models.export_hf import ExportError, hf_tensors
from rltf_jax.models.weight_sources import gguf_name

log = logging.getLogger(__name__)

# --quant name -> (GGMLQuantizationType name, LlamaFileType name)
GGUF_TYPES = {"F32": ("F32", "ALL_F32"), "F16": ("F16", "MOSTLY_F16"),
              "BF16": ("BF16", "MOSTLY_BF16"), "Q8_0": ("Q8_0", "MOSTLY_Q8_0")}
DTYPE_TO_GGUF = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def gguf_type(name: str) -> str:
    """Normalise a quantisation name ('q8_0', 'F16', ...); ExportError for one we cannot write."""
    key = name.upper()
    if key not in GGUF_TYPES:
        raise ExportError(f"unsupported GGUF quantisation type {name!r}; supported: {', '.join(GGUF_TYPES)}")
    return key


def gguf_architecture(config: ModelConfig) -> str:
    """'qwen2' for the family with q/k/v biases, else 'llama'; ExportError for what GGUF cannot hold."""
    scaling = config.rope_scaling or {}
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind not in (None, "default", "linear"):
        raise ExportError(f"rope scaling {kind!r} cannot be written to GGUF (llama.cpp stores it as a "
                          "rope_freqs tensor, which this project does not read); use --format hf")
    if config.attention_bias:
        if config.head_dim * config.num_heads != config.hidden_size:
            raise ExportError("qwen2 GGUF has no head_dim key: head_dim * num_heads must equal "
                              f"hidden_size ({config.head_dim} * {config.num_heads} != {config.hidden_size})")
        return "qwen2"
    return "llama"


def permute_gguf_qk(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """HF rotate-half rows -> llama.cpp's interleaved rows, per head ([out, in] or bias [out]).

    As `LlamaModel.permute` in llama.cpp's convert_hf_to_gguf.py: row (h, i, j) of a head's
    (2, dim) split goes to (h, j, i).
    """
    dim = weight.shape[0] // n_heads // 2
    w = weight.reshape(n_heads, 2, dim, *weight.shape[1:])
    return w.swapaxes(1, 2).reshape(weight.shape)


def gguf_tensor(hf_name: str, value: np.ndarray, config: ModelConfig, arch: str) -> tuple[str, np.ndarray]:
    """(GGUF name, float32 array in llama.cpp's row order) of one HF tensor."""
    name = gguf_name(hf_name)
    if arch == "llama" and (".attn_q." in name or ".attn_k." in name):
        heads = config.num_heads if ".attn_q." in name else config.num_kv_heads
        value = permute_gguf_qk(value, heads)
    return name, value


def encode_tensor(value: np.ndarray, qtype_name: str):
    """(data, raw_dtype or None) for GGUFWriter.add_tensor; 1-D tensors and rows that do not fill
    whole quantisation blocks stay float32."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import quantize

    value = np.ascontiguousarray(value, dtype=np.float32)
    qtype = GGMLQuantizationType[GGUF_TYPES[qtype_name][0]]
    if value.ndim < 2 or qtype == GGMLQuantizationType.F32:
        return value, None
    if qtype == GGMLQuantizationType.F16:
        return value.astype(np.float16), None
    block = GGML_QUANT_SIZES[qtype][0]
    if value.shape[-1] % block:
        log.warning("a tensor of shape %s stays F32: rows are not a multiple of %d", value.shape, block)
        return value, None
    return quantize(value, qtype), qtype


def _add_hparams(writer, config: ModelConfig, arch: str, qtype_name: str, name: str) -> None:
    from gguf import GGML_QUANT_VERSION, LlamaFileType, RopeScalingType

    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_heads)
    writer.add_head_count_kv(config.num_kv_heads)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(config.rope_theta)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    if config.rope_scaling and config.rope_scaling.get("rope_type", config.rope_scaling.get("type")) == "linear":
        writer.add_rope_scaling_type(RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(config.rope_scaling["factor"]))
    writer.add_file_type(LlamaFileType[GGUF_TYPES[qtype_name][1]])
    writer.add_quantization_version(GGML_QUANT_VERSION)


def write_gguf(loaded, path: str, *, qtype: str = "F32", tokenizer_gguf: str | None = None) -> None:
    """Writes `loaded` (a LoadedModel) to the GGUF file `path` with 2-D weights of type `qtype`.

    tokenizer_gguf: the GGUF file the model's tokenizer was converted from, if any (its
    `tokenizer.ggml.pre` is kept, so llama.cpp splits text as it did for the source).
    """
    from gguf import GGUFWriter


    qtype_name = gguf_type(qtype)
    config = loaded.config
    arch = gguf_architecture(config)
    if loaded.tokenizer is None:
        raise ExportError("the model has no tokenizer; a GGUF file must carry one")
    writer = GGUFWriter(path, arch)
    _add_hparams(writer, config, arch, qtype_name, loaded.name)
    add_tokenizer(writer, loaded.tokenizer, config, tokenizer_gguf)
    for hf_name, value in hf_tensors(loaded.model, config.num_layers):
        name, value = gguf_tensor(hf_name, value, config, arch)
        data, raw_dtype = encode_tensor(value, qtype_name)
        writer.add_tensor(name, data, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
