"""Tokenizers from transformers (AutoTokenizer, including `gguf_file=`), cached per process.

Building the SmolLM2 tokenizer from its GGUF takes seconds, so every load is memoised by path.
"""

from __future__ import annotations

import functools
import logging
import os

log = logging.getLogger(__name__)

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@functools.lru_cache(maxsize=8)
def load_tokenizer(path: str):
    """A transformers tokenizer for a .gguf file or a HF folder; None if the folder has none."""
    from transformers import AutoTokenizer

    if os.path.isfile(path) and path.endswith(".gguf"):
        folder, fname = os.path.split(os.path.abspath(path))
        return AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    if os.path.isdir(path):
        if not any(os.path.exists(os.path.join(path, f)) for f in _TOKENIZER_FILES):
            log.warning("%s has no tokenizer files; LoadedModel.tokenizer is None", path)
            return None
        return AutoTokenizer.from_pretrained(path)
    raise FileNotFoundError(f"no tokenizer at {path!r}")
