"""Which implementation of the model's platform-sensitive pieces runs where: the one place that chooses.

XLA:CPU needed hand-made pieces to keep its dots on the fast library path (see models/matmul.py,
models/attention.py, kernels/decode_attention.py). Accelerators get what the libraries give:

| piece | cpu | cuda | tpu, rocm, other |
|---|---|---|---|
| training attention, float32 | ``einsum`` (the parity reference) | ``xla`` | ``xla`` |
| training attention, bf16 / f16 | ``head_major`` (written-out backward) | ``cudnn`` (flash attention) | ``xla`` |
| bf16 matmul backward | custom VJP in canonical layouts | autodiff | autodiff |
| decode attention | the fused C++ custom call | XLA | XLA |

``xla`` and ``cudnn`` are `jax.nn.dot_product_attention`'s implementations. The environment variable
RLTF_JAX_ATTENTION (one of TRAINING_ATTENTION_IMPLS) forces the training attention on any
platform where the forced implementation runs; it is read when a function is traced.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

TRAINING_ATTENTION_IMPLS = ("einsum", "head_major", "xla", "cudnn")
ATTENTION_ENV = "RLTF_JAX_ATTENTION"


def backend() -> str:
    """The default JAX backend, with GPUs told apart: "cpu", "cuda", "rocm", "tpu", ..."""
    name = jax.default_backend()
    if name == "gpu":
        version = str(getattr(jax.devices()[0].client, "platform_version", "")).lower()
        return "rocm" if "rocm" in version else "cuda"
    return name


def training_attention(dtype, platform: str | None = None) -> str:
    """The attention implementation of a cache-free forward (prefill, training) in `dtype` on
    `platform` (default: the JAX backend), or $RLTF_JAX_ATTENTION when it is set."""
    forced = os.environ.get(ATTENTION_ENV)
    if forced:
        if forced not in TRAINING_ATTENTION_IMPLS:
            raise ValueError(f"{ATTENTION_ENV}={forced!r} is not one of {TRAINING_ATTENTION_IMPLS}")
        return forced
    platform = platform or backend()
    low_precision = jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
    if platform == "cpu":
        return "head_major" if low_precision else "einsum"
    if platform == "cuda" and low_precision:
        return "cudnn"
    return "xla"


def cpu_tuned_matmuls(platform: str | None = None) -> bool:
    """Whether bfloat16 matmuls take models/matmul.py's canonical-layout backward (XLA:CPU only)."""
    return (platform or backend()) == "cpu"

