"""ModelConfig: the shape and numerics of a Llama-family decoder (SmolLM2, Llama 3, Qwen2)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

REMAT_MODES = ("auto", "none", "full")
REMAT_AUTO_BYTES = 2 * 1024**3  # "auto" rematerialises above this many bytes of attention scores + probs

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def resolve_dtype(name: str | Any) -> Any:
    """'float32' | 'bfloat16' | 'float16' (or a jnp dtype) -> jnp dtype; anything else is an error."""
    if isinstance(name, str):
        if name not in _DTYPES:
            raise ValueError(f"unknown dtype {name!r}; expected one of {sorted(_DTYPES)}")
        return _DTYPES[name]
    return jnp.dtype(name).type


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a decoder-only Llama-family transformer.

    Attributes:
      vocab_size: number of token embeddings (rows of the embedding table).
      hidden_size: model width D.
      num_layers: number of decoder blocks L (stacked and scanned).
      num_heads: query heads H.
      num_kv_heads: key/value heads (grouped-query attention; H % num_kv_heads == 0).
      head_dim: width of one head (often D // H).
      intermediate_size: SwiGLU hidden width F.
      rope_theta: RoPE base frequency.
      rope_scaling: None, or a dict as in HF configs: {"rope_type": "linear", "factor": f} or
        {"rope_type": "llama3", "factor", "low_freq_factor", "high_freq_factor",
         "original_max_position_embeddings"}.
      rms_norm_eps: epsilon inside RMSNorm.
      tie_word_embeddings: the output projection is the embedding table transposed.
      attention_bias: q/k/v projections have biases (Qwen2); the output projection never does.
      max_position_embeddings: longest sequence the model was trained for.
      bos_token_id: beginning-of-sequence token (None if the tokenizer has none).
      eos_token_ids: tokens that end a generation.
      dtype: compute dtype of activations ("float32" | "bfloat16"); logits are always float32.
      param_dtype: storage dtype of parameters ("float32" | "bfloat16").
      remat: rematerialisation of the decoder blocks in a cache-free forward (training): "none" keeps
        every block's activations for the backward pass, "full" keeps only each block's input and
        recomputes the block in the backward pass (~1/3 more compute), "auto" (default) does "full"
        when the attention scores alone would hold more than REMAT_AUTO_BYTES (they grow with the
        square of the sequence: 30 layers x 8 rows x 9 heads x 1152² tokens in f32 is ~23 GB).
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    max_position_embeddings: int = 4096
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: str = "auto"

    def __post_init__(self):
        for field in ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
                      "head_dim", "intermediate_size"):
            if int(getattr(self, field)) <= 0:
                raise ValueError(f"ModelConfig.{field} must be positive, got {getattr(self, field)}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} is not a multiple of "
                             f"num_kv_heads={self.num_kv_heads}")
        resolve_dtype(self.dtype)
        resolve_dtype(self.param_dtype)
        if self.remat not in REMAT_MODES:
            raise ValueError(f"ModelConfig.remat={self.remat!r} not in {REMAT_MODES}")
        if self.rope_scaling is not None:
            kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type"))
            if kind not in ("linear", "llama3", "default"):
                raise ValueError(f"unsupported rope_scaling type {kind!r} (supported: linear, llama3)")
        object.__setattr__(self, "eos_token_ids", tuple(int(t) for t in self.eos_token_ids))

    def __hash__(self):  # rope_scaling is a dict; hash its items so the config can be a jit static
        items = tuple(sorted((self.rope_scaling or {}).items()))
        return hash(tuple(getattr(self, f.name) if f.name != "rope_scaling" else items
                          for f in dataclasses.fields(self)))

    def remat_blocks(self, batch: int, seq: int) -> bool:
        """Whether a cache-free forward over [batch, seq] tokens rematerialises its blocks."""
        if self.remat != "auto":
            return self.remat == "full"
        scores_bytes = 2 * 4 * self.num_layers * batch * self.num_heads * seq * seq  # f32 scores + probs
        return scores_bytes > REMAT_AUTO_BYTES

    @property
    def compute_dtype(self):
        return resolve_dtype(self.dtype)

    @property
    def storage_dtype(self):
        return resolve_dtype(self.param_dtype)

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_hf_dict(cls, hf: dict, **overrides) -> "ModelConfig":
        """Builds a ModelConfig from a HF `config.json` dict (LlamaForCausalLM / Qwen2ForCausalLM)."""
        archs = hf.get("architectures") or [hf.get("model_type", "?")]
        arch = archs[0]
        if arch not in ("LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"):
            raise ValueError(f"unknown architecture {arch!r}: supported LlamaForCausalLM, "
                             "Qwen2ForCausalLM, MistralForCausalLM")
        is_qwen2 = arch == "Qwen2ForCausalLM"
        if is_qwen2 and hf.get("use_sliding_window", False):
            raise ValueError("Qwen2 config with use_sliding_window=True is not supported")
        if not is_qwen2 and hf.get("attention_bias", False):
            raise ValueError("Llama config with attention_bias=True (bias on o_proj too) is not supported")
        if hf.get("hidden_act", "silu") != "silu":
            raise ValueError(f"unsupported hidden_act {hf.get('hidden_act')!r} (only silu / SwiGLU)")
        heads = hf["num_attention_heads"]
        eos = hf.get("eos_token_id")
        eos = () if eos is None else (tuple(eos) if isinstance(eos, (list, tuple)) else (eos,))
        rope_scaling = hf.get("rope_scaling")
        rope_theta = hf.get("rope_theta")
        rope_params = hf.get("rope_parameters")  # transformers >= 5 folds theta into rope_parameters
        if rope_params:
            rope_theta = rope_params.get("rope_theta", rope_theta)
            if rope_params.get("rope_type", "default") != "default":
                rope_scaling = dict(rope_params)
        if rope_scaling and rope_scaling.get("rope_type", rope_scaling.get("type")) == "default":
            rope_scaling = None
        fields = dict(
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=hf.get("num_key_value_heads") or heads,
            head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
            intermediate_size=hf["intermediate_size"],
            rope_theta=float(rope_theta if rope_theta is not None else 10000.0),
            rope_scaling=rope_scaling,
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            attention_bias=is_qwen2,
            max_position_embeddings=int(hf.get("max_position_embeddings", 4096)),
            bos_token_id=hf.get("bos_token_id"),
            eos_token_ids=eos,
        )
        fields.update(overrides)
        return cls(**fields)


def tiny_config(kind: str = "llama", **overrides) -> ModelConfig:
    """A small random-init config for tests: 2 layers, D=64, the SmolLM2 tokenizer's vocab (49152)."""
    base = dict(vocab_size=49152, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                head_dim=16, intermediate_size=128, rope_theta=10000.0, rms_norm_eps=1e-5,
                tie_word_embeddings=True, attention_bias=False, max_position_embeddings=2048,
                bos_token_id=1, eos_token_ids=(2,))
    if kind == "qwen2":
        base.update(attention_bias=True, tie_word_embeddings=False, rope_theta=1_000_000.0,
                    rms_norm_eps=1e-6)
    elif kind != "llama":
        raise ValueError(f"unknown tiny config kind {kind!r} (llama | qwen2)")
    base.update(overrides)
    return ModelConfig(**base)
