"""A fused decode-attention step for XLA:CPU (decode_attention.cc), built and registered on first use.

XLA:CPU has no Pallas; its decode attention is B x K tiny dots per layer plus a rewrite of the whole
bfloat16 cache buffer at each token write. The C++ kernel writes the new key/value in place and
reads each filled cache slot once. It is compiled with the machine's C++ compiler (`$CXX`, else
`c++`) against jaxlib's FFI headers into `$RLTF_JAX_CACHE/kernels` (default
`~/.cache/rltf_jax/kernels`), keyed by the source, the compiler flags, jaxlib's version and the
CPU's feature flags, so a rebuild happens only when one of them changes. Without a compiler the
sampler keeps the XLA path (`available()` is False and says why in the log).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib

from rltf_jax.kernels.cache_dir import cache_dir

log = logging.getLogger(__name__)

TARGET = "rltf_decode_attention"
SOURCE = Path(__file__).with_name("decode_attention.cc")
FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-std=c++17", "-shared", "-fPIC", "-w")


class KernelBuildError(RuntimeError):
    """The C++ kernel could not be compiled or loaded."""


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return ""


def _cache_dir() -> Path:
    return cache_dir("kernels")


def build(cxx: str | None = None) -> Path:
    """Compiles decode_attention.cc (once per source/flags/jaxlib/CPU) and returns the .so path."""

    cxx = cxx or os.environ.get("CXX") or "c++"
    if shutil.which(cxx) is None:
        raise KernelBuildError(f"no C++ compiler: {cxx!r} is not on PATH (set $CXX)")
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, " ".join(FLAGS).encode(), jaxlib.__version__.encode(),
                                     _cpu_flags().encode(), cxx.encode()])).hexdigest()[:16]
    target = _cache_dir() / f"decode_attention-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".so", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    cmd = [cxx, *FLAGS, "-I", jax.ffi.include_dir(), str(SOURCE), "-o", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tmp_path.unlink(missing_ok=True)
        raise KernelBuildError(f"compiling {SOURCE.name} failed ({' '.join(cmd)}):\n{result.stderr[-4000:]}")
    os.replace(tmp_path, target)  # atomic: concurrent builders never load a half-written file
    return target


@functools.cache
def available() -> bool:
    """True once the kernel is compiled and registered for the CPU platform (False, logged, if not)."""
    if os.environ.get("RLTF_JAX_DISABLE_KERNELS"):
        return False
    try:
        library = ctypes.cdll.LoadLibrary(str(build()))
        jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(library.RltfDecodeAttention), platform="cpu")
    except (KernelBuildError, OSError) as err:
        log.warning("fused CPU decode attention unavailable, using XLA's: %s", err)
        return False
    return True


def use_fused_attention(choice: str, cache_dtype, compute_dtype) -> bool:
    """A sampler's `decode_attention` choice -> whether it decodes with this kernel: "xla" never,
    "auto" where it applies (CPU backend, cache and compute dtype one of float32 / bfloat16, the
    kernel built), "fused" there or a ValueError naming why not."""
    if choice not in ("auto", "fused", "xla"):
        raise ValueError(f"decode_attention must be 'auto', 'fused' or 'xla', not {choice!r}")
    if choice == "xla":
        return False
    reasons = []
    if jax.default_backend() != "cpu":
        reasons.append(f"the backend is {jax.default_backend()}, the kernel is for the CPU")
    dtypes = {jnp.dtype(cache_dtype), jnp.dtype(compute_dtype)}
    if len(dtypes) > 1 or not dtypes <= {jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)}:
        reasons.append(f"cache dtype {jnp.dtype(cache_dtype)} and generation dtype {jnp.dtype(compute_dtype)} "
                       "must be one of float32, bfloat16")
    if not reasons and not available():
        reasons.append("the kernel did not build (see the log)")
    if reasons and choice == "fused":
        raise ValueError("decode_attention='fused' is unavailable: " + "; ".join(reasons))
    return not reasons


def decode_attention(q: jax.Array, k_new: jax.Array, v_new: jax.Array, cache_k: jax.Array,
                     cache_v: jax.Array, valid: jax.Array, index: jax.Array, *, round_probs_bf16: bool):
    """One decode step of grouped-query attention, writing the new key/value in place.

    q [B, H, D] float32, already scaled by 1/sqrt(D); k_new, v_new [B, K, D], cache_k in tiles of 16
    slots [B, K, S / 16, D, 16] and cache_v [B, K, S, D], all in one dtype (float32 or bfloat16;
    S a multiple of 16); valid [B, S] bool (slot `index` included);
    index [] int32: the slot written, and the last slot read. Returns (out [B, H, D] float32,
    cache_k, cache_v) with the caches updated at `index` (aliased: no copy inside a loop).
    Call `available()` first (it registers the target)."""
    out_types = (jax.ShapeDtypeStruct(q.shape, jnp.float32),
                 jax.ShapeDtypeStruct(cache_k.shape, cache_k.dtype),
                 jax.ShapeDtypeStruct(cache_v.shape, cache_v.dtype))
    call = jax.ffi.ffi_call(TARGET, out_types, input_output_aliases={3: 1, 4: 2})
    return call(q.astype(jnp.float32), k_new, v_new, cache_k, cache_v, valid.astype(bool),
                jnp.asarray(index, jnp.int32), round_probs_bf16=bool(round_probs_bf16))
