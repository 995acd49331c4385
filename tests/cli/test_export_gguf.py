"""`python -m rltf_jax.export --format gguf`: F32, F16, BF16 and Q8_0 files.

transformers reads each file (`gguf_file=`) as the project's loader does, within the float32 bound
of tests/helpers/export_checks.py against float64; F32 files load back to identical parameters, F16 / BF16
ones to the rounded weights, Q8_0 ones to within the per-weight bound of Q8_0's arithmetic
(`_q8_0_weight_bound`), with logits within the first-order bound that follows from it.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from export_checks import (PROMPTS, assert_parity, assert_same_params, left_padded, our_logits,  # noqa: E402
                           param_arrays, prompt_rows, run_export)
from rltf_jax.models import load_model  # noqa: E402
from rltf_jax.models.export_hf import hf_tensors  # noqa: E402


def _gguf_hf(path):
    folder, name = os.path.split(str(path))
    return transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()


# llama files permute Q/K rows (the mapping most likely to go wrong); qwen2 ones run with the slow tests.
GGUF_MODELS = ["tiny-llama", pytest.param("tiny-qwen2", marks=pytest.mark.slow)]


@pytest.mark.parametrize("name", GGUF_MODELS)
def test_gguf_f32_round_trip(name, tmp_path, monkeypatch):
    monkeypatch.setenv("RLTF_JAX_NO_WEIGHT_CACHE", "1")
    path = tmp_path / f"{name}.gguf"
    assert run_export("--model", name, "--format", "gguf", "--out", path) == 0
    loaded = load_model(name)
    hf_model = _gguf_hf(path)
    assert hf_model.config.tie_word_embeddings is loaded.config.tie_word_embeddings
    assert_parity(loaded, hf_model, prompt_rows(loaded.tokenizer))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=path.name)
    assert tokenizer.chat_template == loaded.tokenizer.chat_template
    for p in PROMPTS:
        assert tokenizer(p)["input_ids"] == loaded.tokenizer(p)["input_ids"]
    back = load_model(str(path))
    assert_same_params(back.model, loaded.model)
    for field in ("num_layers", "num_heads", "num_kv_heads", "head_dim", "tie_word_embeddings",
                  "attention_bias", "bos_token_id", "eos_token_ids", "rope_theta"):
        assert getattr(back.config, field) == getattr(loaded.config, field), field


@pytest.mark.parametrize("quant", ["F16", pytest.param("BF16", marks=pytest.mark.slow)])
def test_gguf_half_precision_files(quant, tmp_path, monkeypatch):
    """F16 / BF16 files hold each 2-D weight rounded to that type (1-D ones stay F32); transformers
    (float64) reads them as we do."""
    import ml_dtypes

    monkeypatch.setenv("RLTF_JAX_NO_WEIGHT_CACHE", "1")
    path = tmp_path / f"tiny-{quant}.gguf"
    assert run_export("--model", "tiny-llama", "--format", "gguf", "--quant", quant, "--out", path) == 0
    loaded, back = load_model("tiny-llama"), load_model(str(path))
    half = np.float16 if quant == "F16" else ml_dtypes.bfloat16
    exact = dict(hf_tensors(loaded.model, loaded.config.num_layers))
    for name, got in hf_tensors(back.model, back.config.num_layers):
        want = exact[name] if exact[name].ndim == 1 else exact[name].astype(half).astype(np.float32)
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert_parity(back, _gguf_hf(path), prompt_rows(loaded.tokenizer))


# Q8_0 (gguf.quants): per block of 32 weights along a row, d = max|x| / 127, q = round(x / d) and d is
# stored as float16, so |x - q * fp16(d)| <= d / 2 + 127 * |d - fp16(d)| <= d * (1/2 + 127 * 2^-11).
Q8_0_SLACK = 0.5 + 127 * 2.0**-11


def _q8_0_weight_bound(value: np.ndarray) -> np.ndarray:
    """The largest |error| Q8_0 may put on each weight of an HF tensor (0 for 1-D: kept F32)."""
    if value.ndim < 2:
        return np.zeros_like(value)
    blocks = np.abs(value).reshape(*value.shape[:-1], -1, 32)
    d = blocks.max(axis=-1, keepdims=True) / 127
    return np.broadcast_to(d * Q8_0_SLACK, blocks.shape).reshape(value.shape)


class _ArraySource:
    """HF-named arrays as a weight source for `loading.load_weights` (to lay bounds out as params)."""

    def __init__(self, tensors):
        self.tensors = tensors

    def shape(self, name):
        return self.tensors[name].shape

    def read(self, name, index=None):
        return self.tensors[name][index] if index else self.tensors[name]


@pytest.mark.parametrize("name", GGUF_MODELS)
def test_gguf_q8_0_round_trip(name, tmp_path, monkeypatch):
    """Weights within Q8_0's per-weight bound; transformers (float64) reads the same file as we do
    (the parity bound); logits within the first-order bound of the quantisation: |Δℓ| <= 2 Σ_w |∂ℓ/∂w| e_w for each
    position's top logit ℓ (e_w the per-weight bound; the factor 2 leaves room for the second-order
    terms, which at e_w ~ 1e-4 are orders of magnitude smaller)."""
    from rltf_jax.models.params import load_weights

    monkeypatch.setenv("RLTF_JAX_NO_WEIGHT_CACHE", "1")
    path = tmp_path / f"{name}.gguf"
    assert run_export("--model", name, "--format", "gguf", "--quant", "q8_0", "--out", path) == 0
    loaded, back = load_model(name), load_model(str(path))
    exact = dict(hf_tensors(loaded.model, loaded.config.num_layers))
    bounds = {n: _q8_0_weight_bound(v) for n, v in exact.items()}
    for (n, got), (_, want) in zip(hf_tensors(back.model, back.config.num_layers), exact.items()):
        assert np.all(np.abs(got - want) <= bounds[n] + 1e-12), n
    assert any(not np.array_equal(a, b) for a, b in zip(param_arrays(back.model), param_arrays(loaded.model)))
    rows = prompt_rows(loaded.tokenizer)
    assert_parity(back, _gguf_hf(path), rows)
    bound_model = load_weights(loaded.config, _ArraySource(bounds))
    tokens, positions, mask = left_padded(rows[:1])
    exact_logits, quant_logits = our_logits(loaded, tokens, positions, mask)[0], our_logits(back, tokens, positions, mask)[0]
    graphdef, params = nnx.split(loaded.model)
    errors = nnx.state(bound_model)

    def top_logit(params, t, v):
        return nnx.merge(graphdef, params)(tokens, positions, mask)[0][0, t, v]

    grad = jax.jit(jax.grad(top_logit))
    for t in range(tokens.shape[1]):
        v = int(exact_logits[t].argmax())
        g = grad(params, t, v)
        first_order = sum(float(jnp.sum(jnp.abs(a) * b)) for a, b in
                          zip(jax.tree.leaves(g), jax.tree.leaves(errors)))
        assert abs(quant_logits[t, v] - exact_logits[t, v]) <= 2 * first_order, (t, first_order)


@pytest.mark.slow
def test_smollm2_gguf_round_trip(tmp_path, monkeypatch):
    """SmolLM2 as F32 and Q8_0 GGUF files: transformers (float64) reads each as we do (the parity bound);
    the F32 file loads back to identical parameters, and its tokenizer and chat template are ours."""
    monkeypatch.setenv("RLTF_JAX_NO_WEIGHT_CACHE", "1")
    loaded = load_model("smollm2-135m-instruct")
    rows = prompt_rows(loaded.tokenizer, PROMPTS[:2])
    for quant in ("F32", "Q8_0"):
        path = tmp_path / f"smollm2-{quant}.gguf"
        assert run_export("--model", "smollm2-135m-instruct", "--format", "gguf", "--quant", quant, "--out", path) == 0
        back = load_model(str(path))
        if quant == "F32":
            assert_same_params(back.model, loaded.model)
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=path.name)
            assert tokenizer.chat_template == loaded.tokenizer.chat_template
            assert [tokenizer(p)["input_ids"] for p in PROMPTS] == prompt_rows(loaded.tokenizer)
        hf_model = _gguf_hf(path)
        for row in rows:
            assert_parity(back, hf_model, [row])
