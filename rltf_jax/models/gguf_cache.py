"""Dequantized GGUF weights, cached on disk as safetensors.

Opening a GGUF file means parsing all its metadata (the SmolLM2 file's 49,152-token vocabulary and
merges take the `gguf` reader ~4 s) and dequantizing every tensor (~4 s more); every run, evaluation,
benchmark and test process that loads the default policy paid both. The first load now writes the
float32 tensors (HF layout, Q/K rows un-permuted: exactly what `GGUFSource.read` returns) and the
model config to `$RLTF_JAX_CACHE/gguf_weights/<name>-<key>/` (default `~/.cache/rltf_jax`); later
loads read that folder lazily through safetensors' memory map (~1 s for SmolLM2, 0.54 GB on disk).

The key covers the file's path, size and modification time, the `gguf` package version and
`CONVERTER_VERSION`, so an edited file, another dequantizer or a change to the conversion here gets
a fresh entry. Entries appear atomically (written to a staging folder, then renamed), so concurrent
processes never read a partial one; a damaged entry is converted again. Files whose float32 tensors
would exceed `RLTF_JAX_WEIGHT_CACHE_MAX_GB` (default 4) are not cached; `RLTF_JAX_NO_WEIGHT_CACHE=1`
turns the cache off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from rltf_jax.kernels.cache_dir import cache_dir
from rltf_jax.models.config import ModelConfig
from rltf_jax.models.weight_sources import GGUFSource, MissingTensorError, SafetensorsSource, gguf_name

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1  # bump when GGUFSource's dequantization or layout changes
_CONFIG_FILE = "rltf_config.json"
_TENSORS_FILE = "model.safetensors"
# Fields a load sets itself (load_model replaces them): not part of what the file says.
_RUN_FIELDS = ("dtype", "param_dtype", "remat")


def weight_cache_dir(gguf_path: str) -> Path:
    """The cache folder of `gguf_path`'s dequantized tensors (it may not exist yet)."""
    stat = os.stat(gguf_path)
    key = "|".join(map(str, (os.path.abspath(gguf_path), stat.st_size, stat.st_mtime_ns,
                             importlib.metadata.version("gguf"), CONVERTER_VERSION)))
    return cache_dir("gguf_weights") / f"{Path(gguf_path).stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


class CachedGGUFSource:
    """A GGUF file's dequantized tensors read from its cache entry; the interface of GGUFSource
    (`config`, `has`, `shape`, `read` by HF tensor name, HF layout, float32)."""

    def __init__(self, folder: Path, gguf_path: str):
        self.path = gguf_path
        self.folder = folder
        fields = json.loads((folder / _CONFIG_FILE).read_text(encoding="utf-8"))
        fields["eos_token_ids"] = tuple(fields["eos_token_ids"])
        self._config = ModelConfig(**fields)
        self._file = safe_open(str(folder / _TENSORS_FILE), "numpy")
        self._names = set(self._file.keys())

    def config(self) -> ModelConfig:
        return self._config

    def has(self, hf_name: str) -> bool:
        return gguf_name(hf_name) in self._names

    def _slice(self, hf_name: str):
        name = gguf_name(hf_name)
        if name not in self._names:
            raise MissingTensorError(f"tensor {name!r} (HF {hf_name!r}) not found in {self.path}")
        return self._file.get_slice(name)

    def shape(self, hf_name: str) -> tuple[int, ...]:
        return tuple(self._slice(hf_name).get_shape())

    def read(self, hf_name: str, index: tuple[slice, ...] | None = None) -> np.ndarray:
        sl = self._slice(hf_name)
        return np.asarray(sl[index] if index else sl[:])


def _float32_bytes(source: GGUFSource) -> int:
    return sum(4 * int(np.prod([int(d) for d in t.shape])) for t in source.tensors.values())


def _write_entry(source: GGUFSource, folder: Path) -> None:
    """Dequantizes every tensor of `source` into a staging folder, then renames it to `folder`."""

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        fields = {k: v for k, v in dataclasses.asdict(source.config()).items() if k not in _RUN_FIELDS}
        (staging / _CONFIG_FILE).write_text(json.dumps(fields, indent=1), encoding="utf-8")
        save_file({name: source.dequantized(name) for name in source.tensors}, str(staging / _TENSORS_FILE),
                  metadata={"gguf_file": os.path.abspath(source.path)})
        try:
            os.rename(staging, folder)  # atomic: a concurrent process sees all of it or nothing
        except OSError:  # another process got there first
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def open_gguf(path: str):
    """A weight source for a .gguf file: its cache entry if there is one, else the file itself
    (writing the entry on the way when the file is small enough)."""
    if os.environ.get("RLTF_JAX_NO_WEIGHT_CACHE"):
        return GGUFSource(path)
    folder = weight_cache_dir(path)
    if (folder / _TENSORS_FILE).is_file():
        try:
            return CachedGGUFSource(folder, path)
        except Exception as error:  # a damaged entry: convert again and replace it
            log.warning("weight cache %s unreadable (%s); dequantizing %s again", folder, error, path)
            shutil.rmtree(folder, ignore_errors=True)
    source = GGUFSource(path)
    limit_gb = float(os.environ.get("RLTF_JAX_WEIGHT_CACHE_MAX_GB", "4"))
    if _float32_bytes(source) > limit_gb * 2**30:
        log.info("%s: float32 tensors exceed RLTF_JAX_WEIGHT_CACHE_MAX_GB=%g; not cached", path, limit_gb)
        return source
    try:
        _write_entry(source, folder)
        return CachedGGUFSource(folder, path)
    except OSError as error:  # a read-only or full disk: load from the file, uncached
        log.warning("could not cache the weights of %s in %s: %s", path, folder, error)
        return source


def open_source(path: str):
    """A `.gguf` file's tensors (from their disk cache after the first load), or a
    SafetensorsSource for a HF folder."""
    if os.path.isfile(path) and path.endswith(".gguf"):
        return open_gguf(path)
    if os.path.isdir(path):
        return SafetensorsSource(path)
    raise FileNotFoundError(f"{path!r} is neither a .gguf file nor a HF model folder")
