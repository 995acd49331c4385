"""The GGUF tokenizer's disk cache (models/tokenizer.py): the cached tokenizer is the converted one
(ids, chat template, special tokens), a damaged entry is rebuilt, and the cache can be turned off."""

import logging
import os
import subprocess
import sys

import pytest

from rltf_jax.models import registry
from rltf_jax.models.tokenizer import _from_gguf, tokenizer_cache_dir

TEXTS = ["def add(a, b):\n    return a + b\n", "naïve ünïcode 🚀 \t\r\n  tabs", "<|im_start|>user\nhi<|im_end|>", ""]
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Write add."}]


def _same(a, b):
    assert [a(t).input_ids for t in TEXTS] == [b(t).input_ids for t in TEXTS]
    assert a.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True) == \
        b.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert (a.bos_token_id, a.eos_token_id, a.pad_token_id, len(a)) == \
        (b.bos_token_id, b.eos_token_id, b.pad_token_id, len(b))


@pytest.fixture()
def gguf(tmp_path, monkeypatch):
    monkeypatch.setenv("RLTF_JAX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RLTF_JAX_NO_TOKENIZER_CACHE", raising=False)
    return registry.smollm2_gguf_path()


def test_second_load_reads_the_cache_and_equals_the_conversion(gguf, tmp_path):
    cached = tokenizer_cache_dir(gguf)
    assert str(cached).startswith(str(tmp_path / "cache" / "tokenizers"))
    assert not cached.exists()
    converted = _from_gguf(gguf)
    assert (cached / "tokenizer.json").is_file()
    _same(converted, _from_gguf(gguf))
    assert converted.eos_token_id == 2 and len(converted) == 49152


def test_a_damaged_entry_is_converted_again(gguf, caplog):
    converted = _from_gguf(gguf)
    cached = tokenizer_cache_dir(gguf)
    (cached / "tokenizer.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="rltf_jax.models.tokenizer"):
        rebuilt = _from_gguf(gguf)
    assert "unreadable" in caplog.text
    _same(converted, rebuilt)
    _same(converted, _from_gguf(gguf))  # and the entry was replaced


def test_the_cache_can_be_turned_off(gguf, monkeypatch):
    monkeypatch.setenv("RLTF_JAX_NO_TOKENIZER_CACHE", "1")
    _from_gguf(gguf)
    assert not tokenizer_cache_dir(gguf).exists()


def test_a_cached_load_does_not_import_torch(gguf, tmp_path):
    # AutoTokenizer's imports pull in torch (~3 s in every trainer and evaluation process); a cached
    # plain fast tokenizer is read by PreTrainedTokenizerFast alone.
    _from_gguf(gguf)
    probe = ("import sys\nfrom rltf_jax.models.tokenizer import _from_gguf\n"
             f"tokenizer = _from_gguf({gguf!r})\n"
             "print(type(tokenizer).__name__, 'torch' in sys.modules, len(tokenizer))")
    env = {**os.environ, "RLTF_JAX_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    name, imported_torch, size = done.stdout.split()
    assert imported_torch == "False" and size == "49152", done.stdout
