"""Tokenizers from transformers (AutoTokenizer, including `gguf_file=`), cached per process and,
for GGUF files, on disk.

Building the SmolLM2 tokenizer from its GGUF takes ~5 s, and every run, evaluation and test
subprocess needs it. The first conversion is saved with `save_pretrained` under
`$RLTF_JAX_CACHE/tokenizers` (default `~/.cache/rltf_jax/tokenizers`), keyed by the file's path,
size and modification time and the transformers version; later loads read that folder (~0.2 s)
with `PreTrainedTokenizerFast` itself, which spares the ~3 s of `AutoTokenizer`'s imports (torch
among them). `RLTF_JAX_NO_TOKENIZER_CACHE=1` always converts from the GGUF.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from rltf_jax.kernels.cache_dir import cache_dir

log = logging.getLogger(__name__)

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
# Classes that are a tokenizer.json and nothing else (transformers 5 calls the fast base class
# TokenizersBackend): loaded as PreTrainedTokenizerFast they are the same tokenizer.
_PLAIN_FAST_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")


def tokenizer_cache_dir(gguf_path: str) -> Path:
    """The disk-cache folder of the tokenizer converted from `gguf_path` (it may not exist yet)."""
    stat = os.stat(gguf_path)
    version = importlib.metadata.version("transformers")
    key = f"{os.path.abspath(gguf_path)}|{stat.st_size}|{stat.st_mtime_ns}|{version}"
    return cache_dir("tokenizers") / f"{Path(gguf_path).stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _read_cached(folder: Path):
    """The tokenizer saved in `folder`; a plain fast tokenizer without importing AutoTokenizer."""
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    if config.get("tokenizer_class") in _PLAIN_FAST_CLASSES:
        return PreTrainedTokenizerFast.from_pretrained(str(folder))

    from transformers import AutoTokenizer  # pulls in torch (~3 s): only when needed
    return AutoTokenizer.from_pretrained(str(folder))


def _convert_gguf(path: str):
    folder, fname = os.path.split(os.path.abspath(path))
    from transformers import AutoTokenizer  # pulls in torch (~3 s): only when needed
    return AutoTokenizer.from_pretrained(folder, gguf_file=fname)


def _from_gguf(path: str):
    if os.environ.get("RLTF_JAX_NO_TOKENIZER_CACHE"):
        return _convert_gguf(path)
    cached = tokenizer_cache_dir(path)
    if (cached / "tokenizer.json").is_file():
        try:
            return _read_cached(cached)
        except Exception as error:  # a damaged cache entry: convert again and replace it
            log.warning("tokenizer cache %s unreadable (%s); converting %s again", cached, error, path)
            shutil.rmtree(cached, ignore_errors=True)
    tokenizer = _convert_gguf(path)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=cached.name + ".", dir=cached.parent)
        tokenizer.save_pretrained(staging)
        try:
            os.rename(staging, cached)  # atomic: a concurrent process sees all of it or nothing
        except OSError:  # another process got there first
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as error:  # a read-only home: the tokenizer still works, uncached
        log.warning("could not cache the tokenizer of %s in %s: %s", path, cached, error)
    return tokenizer


@functools.lru_cache(maxsize=8)
def load_tokenizer(path: str):
    """A transformers tokenizer for a .gguf file or a HF folder; None if the folder has none."""
    if os.path.isfile(path) and path.endswith(".gguf"):
        return _from_gguf(path)
    if os.path.isdir(path):
        if not any(os.path.exists(os.path.join(path, f)) for f in _TOKENIZER_FILES):
            log.warning("%s has no tokenizer files; LoadedModel.tokenizer is None", path)
            return None

        from transformers import AutoTokenizer  # pulls in torch (~3 s): only when needed
        return AutoTokenizer.from_pretrained(path)
    raise FileNotFoundError(f"no tokenizer at {path!r}")
