"""rltf_jax's on-disk cache: built kernels (kernels/) and tokenizers converted from GGUF files."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """`$RLTF_JAX_CACHE/<kind>` (default `~/.cache/rltf_jax/<kind>`); not created here."""
    root = os.environ.get("RLTF_JAX_CACHE") or Path.home() / ".cache" / "rltf_jax"
    return Path(root) / kind
