"""The on-disk cache of dequantized GGUF weights (rltf_jax/models/gguf_cache.py)."""

import logging
import os

import numpy as np
import pytest
from flax import nnx

from rltf_jax.models.gguf_cache import CachedGGUFSource, weight_cache_dir
from rltf_jax.models.params import load_weights
from rltf_jax.models.gguf_cache import open_source
from rltf_jax.models.weight_sources import GGUFSource
from tiny_gguf import write_tiny_gguf


@pytest.fixture
def gguf_file(tmp_path, monkeypatch):
    monkeypatch.setenv("RLTF_JAX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RLTF_JAX_NO_WEIGHT_CACHE", raising=False)
    monkeypatch.delenv("RLTF_JAX_WEIGHT_CACHE_MAX_GB", raising=False)
    path = str(tmp_path / "tiny.gguf")
    write_tiny_gguf(path)
    return path


def _params(source) -> dict:
    model = load_weights(source.config(), source)
    return {path: np.asarray(var[...]) for path, var in nnx.to_flat_state(nnx.state(model))}


def _assert_same_params(ours: dict, reference: dict) -> None:
    assert sorted(ours) == sorted(reference)
    for path in reference:
        np.testing.assert_array_equal(ours[path], reference[path], err_msg=str(path))


def test_first_load_writes_the_entry_and_later_loads_read_it_unchanged(gguf_file):
    reference_source = GGUFSource(gguf_file)
    reference = _params(reference_source)
    assert not weight_cache_dir(gguf_file).exists()

    first = open_source(gguf_file)
    assert isinstance(first, CachedGGUFSource) and weight_cache_dir(gguf_file).is_dir()
    later = open_source(gguf_file)
    assert isinstance(later, CachedGGUFSource)
    assert later.config() == reference_source.config()
    _assert_same_params(_params(first), reference)
    _assert_same_params(_params(later), reference)


def test_a_damaged_entry_is_converted_again(gguf_file, caplog):
    reference = _params(GGUFSource(gguf_file))
    open_source(gguf_file)
    tensors = weight_cache_dir(gguf_file) / "model.safetensors"
    with open(tensors, "r+b") as f:
        f.truncate(os.path.getsize(tensors) // 2)
    with caplog.at_level(logging.WARNING):
        source = open_source(gguf_file)
    assert "unreadable" in caplog.text and "dequantizing" in caplog.text
    assert isinstance(source, CachedGGUFSource)
    _assert_same_params(_params(source), reference)


def test_an_edited_file_gets_a_new_entry(gguf_file):
    before = weight_cache_dir(gguf_file)
    open_source(gguf_file)
    stat = os.stat(gguf_file)
    os.utime(gguf_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert weight_cache_dir(gguf_file) != before
    assert isinstance(open_source(gguf_file), CachedGGUFSource)
    assert weight_cache_dir(gguf_file).is_dir()


def test_switches_turn_the_cache_off(gguf_file, monkeypatch):
    monkeypatch.setenv("RLTF_JAX_NO_WEIGHT_CACHE", "1")
    assert isinstance(open_source(gguf_file), GGUFSource)
    monkeypatch.delenv("RLTF_JAX_NO_WEIGHT_CACHE")
    monkeypatch.setenv("RLTF_JAX_WEIGHT_CACHE_MAX_GB", "0.0001")  # ~100 KB: the tiny file is ~3 MB in f32
    assert isinstance(open_source(gguf_file), GGUFSource)
    assert not weight_cache_dir(gguf_file).exists()


def test_an_unwritable_cache_still_loads(gguf_file, tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("RLTF_JAX_CACHE", str(blocker))
    source = open_source(gguf_file)
    assert isinstance(source, GGUFSource)
    _assert_same_params(_params(source), _params(GGUFSource(gguf_file)))
