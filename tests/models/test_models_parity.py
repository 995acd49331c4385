"""Logit parity with transformers on the same weights, bounded by what float32 arithmetic allows.

The reference is transformers in float64. Two float32 implementations each differ from it by their
own rounding error, which depends on the CPU's kernels (oneDNN with AMX, XLA's dots, FMA and
accumulation order), so a bound between two float32 runs holds on one CPU and not the next. Our
float32 logits are bounded instead by

- an absolute bound from rounding-error analysis: a logit is the end of a chain of about
  n = L·(D + F) + D float32 accumulations (each layer's attention and MLP inputs, then the LM
  head), and accumulated rounding errors grow like λ·√n·u (Higham & Mary, "A New Approach to
  Probabilistic Rounding Error Analysis", SIAM J. Sci. Comput. 2019) with u = 2^-24; relative to
  the largest logit, with λ = 1: for SmolLM2, 5.96e-8 · √63,936 · ~38 ≈ 5.7e-4;
- for SmolLM2 also a relative one: at most RELATIVE_TO_TRANSFORMERS times transformers' own
  float32 error against its float64 logits on the same prompts (the same operations in the same
  precision: their errors are of one order; docs/testing.md has the measured values).

A real bug moves logits far more: tests below inject a wrong RoPE base, a missing RMSNorm epsilon
and a transposed head layout, and each fails the bound by more than an order of magnitude.
"""

import dataclasses
import math
import os

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rltf_jax.models import load_model  # noqa: E402
from export_checks import left_padded as _left_padded  # noqa: E402  ([B, T] tokens, positions, mask)
from hf_reference import smollm2_transformers  # noqa: E402

UNIT_ROUNDOFF_F32 = 2.0 ** -24
RELATIVE_TO_TRANSFORMERS = 4.0  # never loosen


def float32_logit_bound(config, reference_logits: np.ndarray) -> float:
    """λ·√n·u · max|logit| with λ = 1, n = L·(D + F) + D (module docstring)."""
    n = config.num_layers * (config.hidden_size + config.intermediate_size) + config.hidden_size
    return UNIT_ROUNDOFF_F32 * math.sqrt(n) * float(np.abs(reference_logits).max())


def _hf_logits(hf_model, tokens, positions, mask) -> np.ndarray:
    with torch.no_grad():
        out = hf_model(input_ids=torch.tensor(tokens, dtype=torch.long),
                       attention_mask=torch.tensor(mask, dtype=torch.long),
                       position_ids=torch.tensor(positions, dtype=torch.long))
    return out.logits.numpy()


def _ours(loaded, tokens, positions, mask) -> np.ndarray:
    logits, hidden, cache = loaded.model(jnp.asarray(tokens), jnp.asarray(positions), jnp.asarray(mask))
    assert logits.dtype == jnp.float32 and cache is None
    assert hidden.shape == tokens.shape + (loaded.config.hidden_size,)
    return np.asarray(logits)


def _max_diff_on_real_tokens(a, b, mask) -> float:
    return float(np.abs(a - b)[mask].max())


def _save_tiny_hf(kind: str, folder) -> "torch.nn.Module":
    torch.manual_seed(0)
    common = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  bos_token_id=1, eos_token_id=2)
    if kind == "llama":
        cfg = transformers.LlamaConfig(**common, rope_theta=10000.0, rms_norm_eps=1e-5,
                                       tie_word_embeddings=True)
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.Qwen2Config(**common, rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=False)
        model = transformers.Qwen2ForCausalLM(cfg)
        with torch.no_grad():  # HF inits biases to zero; make them matter
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0, 0.5)
    with torch.no_grad():  # non-trivial norms
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(str(folder))
    return model.float().eval()


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_tiny_safetensors_logits_match_transformers(kind, tmp_path):
    hf_model = _save_tiny_hf(kind, tmp_path).double()
    loaded = load_model(str(tmp_path))
    assert loaded.config.attention_bias == (kind == "qwen2")
    assert loaded.config.tie_word_embeddings == (kind == "llama")
    rng = np.random.default_rng(0)
    rows = [list(rng.integers(3, 512, n)) for n in (17, 9, 1, 12)]
    tokens, positions, mask = _left_padded(rows)
    reference = _hf_logits(hf_model, tokens, positions, mask)
    diff = _max_diff_on_real_tokens(_ours(loaded, tokens, positions, mask), reference, mask)
    assert diff <= float32_logit_bound(loaded.config, reference[mask]), diff


def test_sharded_safetensors_index_loads(tmp_path):
    hf_model = _save_tiny_hf("llama", tmp_path / "one")
    hf_model.save_pretrained(str(tmp_path / "sharded"), max_shard_size="100KB")
    assert os.path.exists(tmp_path / "sharded" / "model.safetensors.index.json")
    a = load_model(str(tmp_path / "one"))
    b = load_model(str(tmp_path / "sharded"))
    tokens, positions, mask = _left_padded([[5, 6, 7, 8]])
    np.testing.assert_array_equal(_ours(a, tokens, positions, mask), _ours(b, tokens, positions, mask))


@pytest.fixture(scope="module")
def smollm2_pair():
    """Our f32 SmolLM2, transformers' SmolLM2 in float32 and in float64, all from the wheel's GGUF."""
    hf32 = smollm2_transformers()
    hf64 = smollm2_transformers().double()
    return load_model("smollm2-135m-instruct"), hf32, hf64


PROMPTS = [
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Write a Python function that checks whether a string is a palindrome.",
    "import numpy as np\n\nx = np.arange(10)\nprint(",
]


def _smollm2_errors(loaded, hf32, hf64):
    """Per prompt (one at a time, plus a chat-templated one): (ours f32 − f64 reference,
    transformers f32 − f64 reference, the f32 bound), max over real positions."""
    tok = loaded.tokenizer
    chat = tok.apply_chat_template([{"role": "user", "content": PROMPTS[1]}], tokenize=False,
                                   add_generation_prompt=True)
    errors = []
    for prompt in [*PROMPTS, chat]:
        tokens, positions, mask = _left_padded([tok(prompt, add_special_tokens=False)["input_ids"]])
        reference = _hf_logits(hf64, tokens, positions, mask)
        ours = _max_diff_on_real_tokens(_ours(loaded, tokens, positions, mask), reference, mask)
        theirs = _max_diff_on_real_tokens(_hf_logits(hf32, tokens, positions, mask), reference, mask)
        errors.append((ours, theirs, float32_logit_bound(loaded.config, reference[mask])))
    return errors


def _within_float32_bounds(errors) -> bool:
    ours, theirs, bounds = (np.array(column) for column in zip(*errors))
    return bool((ours <= bounds).all() and ours.max() <= RELATIVE_TO_TRANSFORMERS * theirs.max())


@pytest.mark.slow
def test_smollm2_gguf_logits_match_transformers(smollm2_pair):
    """Ours in float32 vs transformers in float64 (same dequantized weights), one prompt at a time,
    within the absolute bound and within RELATIVE_TO_TRANSFORMERS × transformers' own float32 error
    (module docstring). Left padding is covered by the tiny-model tests above."""
    errors = _smollm2_errors(*smollm2_pair)
    assert _within_float32_bounds(errors), errors


def _transpose_query_heads(loaded):
    """wq's output columns read as [head_dim, heads] instead of [heads, head_dim]."""
    c, wq = loaded.config, loaded.model.layers.wq
    wq[...] = (wq[...].reshape(c.num_layers, c.hidden_size, c.num_heads, c.head_dim)
               .swapaxes(2, 3).reshape(wq[...].shape))


@pytest.mark.slow
@pytest.mark.parametrize("bug", ["rope_base_of_llama2", "rms_norm_without_epsilon",
                                 "transposed_query_heads"])
def test_smollm2_bound_catches_real_bugs(smollm2_pair, bug):
    """Each bug a port can make fails the bounds above (by 15x or more on SmolLM2)."""
    loaded, hf32, hf64 = smollm2_pair
    config, wq = loaded.model.config, loaded.model.layers.wq[...]
    try:
        if bug == "rope_base_of_llama2":
            assert config.rope_theta == 100000.0
            loaded.model.config = dataclasses.replace(config, rope_theta=10000.0)
        elif bug == "rms_norm_without_epsilon":
            loaded.model.config = dataclasses.replace(config, rms_norm_eps=0.0)
        else:
            _transpose_query_heads(loaded)
        errors = _smollm2_errors(loaded, hf32, hf64)
    finally:
        loaded.model.config = config
        loaded.model.layers.wq[...] = wq
    assert not _within_float32_bounds(errors), errors
    assert min(ours / bound for ours, _, bound in errors) > 10, errors
