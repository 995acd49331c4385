"""Greedy generation through the KV-cache sampler matches transformers' generate token for token."""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hf_reference import smollm2_transformers  # noqa: E402
from rltf_jax.models import load_model  # noqa: E402
from rltf_jax.models.registry import smollm2_gguf_path  # noqa: E402
from rltf_jax.models.tokenizer import load_tokenizer  # noqa: E402
from rltf_jax.sampling import Sampler, SamplingParams  # noqa: E402

NEW_TOKENS = 64


def _hf_greedy(hf_model, tokenizer, prompts: list[str], new_tokens: int) -> list[list[int]]:
    """transformers generate, left-padded batch, EOS suppressed (min_new_tokens) -> new tokens per row."""
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    with torch.no_grad():
        out = hf_model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id or 0)
    return out[:, enc["input_ids"].shape[1]:].tolist()


def _ours_greedy(loaded, prompts: list[str], new_tokens: int) -> np.ndarray:
    rollout = Sampler(loaded, eos_token_ids=()).generate(prompts, SamplingParams(new_tokens, greedy=True),
                                                         jax.random.key(0))
    assert rollout.response_mask.all()
    return rollout.response_tokens


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_tiny_greedy_64_tokens_match_transformers(kind, tmp_path):
    torch.manual_seed(1)
    common = dict(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  bos_token_id=1, eos_token_id=2, initializer_range=0.2)  # peaked logits: no near-ties
    if kind == "llama":
        hf_model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**common, tie_word_embeddings=False))
    else:
        hf_model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common, rope_theta=1e6))
    hf_model.save_pretrained(str(tmp_path))
    tokenizer = load_tokenizer(smollm2_gguf_path())
    tokenizer.save_pretrained(str(tmp_path))
    loaded = load_model(str(tmp_path))
    prompts = ["def quicksort(xs):", "The unit tests failed because the function returned None"]
    ours = _ours_greedy(loaded, prompts, NEW_TOKENS)
    theirs = _hf_greedy(hf_model.eval(), loaded.tokenizer, prompts, NEW_TOKENS)
    assert len(set(ours[0].tolist())) > 3  # a non-degenerate continuation
    np.testing.assert_array_equal(ours, np.asarray(theirs))


@pytest.mark.slow
def test_smollm2_greedy_64_tokens_match_transformers():
    loaded = load_model("smollm2-135m-instruct")
    hf_model = smollm2_transformers()
    tok = loaded.tokenizer
    chat = tok.apply_chat_template([{"role": "user", "content": "Write a Python function that reverses "
                                     "a linked list, with a docstring and two examples."}],
                                   tokenize=False, add_generation_prompt=True)
    prompts = [chat, "def is_prime(n: int) -> bool:\n    \"\"\"Return True if n is a prime number.\"\"\"\n"]
    ours = _ours_greedy(loaded, prompts, NEW_TOKENS)
    theirs = _hf_greedy(hf_model.eval(), tok, prompts, NEW_TOKENS)
    np.testing.assert_array_equal(ours, np.asarray(theirs))
