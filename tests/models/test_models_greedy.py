"""Greedy generation through the KV-cache sampler follows transformers' greedy path token for token.

transformers' path is computed in float64 (teacher-forced on our tokens): two float32 implementations
pick the same argmax only where no step is a rounding call, and which steps are depends on the CPU's
kernels. So each step's float64 top-1 margin is compared with the float32 error bounds of
the logits (fp_bounds.logit_error_bound): where it exceeds them, our float32 sampler must have picked
the float64 argmax (equality that follows from the arithmetic, on any CPU); at a rounding call it may
pick any token whose logit is within the bounds of the top one, and the check goes on along its own
tokens (the reference is teacher-forced on them)."""

import jax
import numpy as np
import pytest

from fp_bounds import decoder_path_terms, logit_error_bound

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hf_reference import smollm2_transformers  # noqa: E402
from rltf_jax.models import load_model  # noqa: E402
from rltf_jax.models.registry import smollm2_gguf_path  # noqa: E402
from rltf_jax.models.tokenizer import load_tokenizer  # noqa: E402
from rltf_jax.sampling import Sampler, SamplingParams  # noqa: E402

NEW_TOKENS = 64


def _assert_float64_greedy_path(hf_model, rollout, rounding_calls: bool = False) -> None:
    """Each row's response is the float64 greedy continuation of its prompt. A rounding call is a step
    where some other logit plus its bound reaches the float64 top logit minus its bound; with
    rounding_calls=False there must be none (then every CPU decodes the same tokens), with True the
    token there may be any of the tokens within the bounds."""
    hf_model = hf_model.double().eval()
    cfg = hf_model.config
    head = hf_model.lm_head.weight.detach().numpy()
    for row in range(len(rollout.response_tokens)):
        prompt = rollout.prompt_tokens[row][rollout.prompt_mask[row]]
        response = rollout.response_tokens[row]
        sequence = np.concatenate([prompt, response])
        with torch.no_grad():
            out = hf_model(input_ids=torch.tensor(sequence[None], dtype=torch.long), output_hidden_states=True)
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        n_terms = decoder_path_terms(layers=cfg.num_hidden_layers, hidden=cfg.hidden_size,
                                     heads=cfg.num_attention_heads, head_dim=head_dim,
                                     kv_heads=cfg.num_key_value_heads, intermediate=cfg.intermediate_size,
                                     seq=len(sequence))
        steps = slice(len(prompt) - 1, len(sequence) - 1)  # the logits that pick each response token
        z = out.logits[0, steps].numpy()
        bound = logit_error_bound(out.hidden_states[-1][0, steps].numpy(), head, n_terms)
        top = z.argmax(-1)
        k = np.arange(len(top))
        rivals = np.where(np.arange(z.shape[1]) == top[:, None], -np.inf, z + bound).max(-1)
        calls = np.flatnonzero(z[k, top] - bound[k, top] <= rivals)
        assert rounding_calls or calls.size == 0, f"row {row}: steps {calls.tolist()} are rounding calls"
        could_win = z + bound >= (z[k, top] - bound[k, top])[:, None]  # only the top one, off the calls
        assert could_win[k, response].all(), (row, np.flatnonzero(~could_win[k, response]).tolist())
        np.testing.assert_array_equal(np.delete(response, calls), np.delete(top, calls), err_msg=f"row {row}")


def _ours_greedy(loaded, prompts: list[str], new_tokens: int):
    rollout = Sampler(loaded, eos_token_ids=()).generate(prompts, SamplingParams(new_tokens, greedy=True),
                                                         jax.random.key(0))
    assert rollout.response_mask.all() and rollout.response_tokens.shape[1] == new_tokens
    return rollout


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
    assert len(set(ours.response_tokens[0].tolist())) > 3  # a non-degenerate continuation
    _assert_float64_greedy_path(hf_model, ours)


@pytest.mark.slow
def test_smollm2_greedy_64_tokens_match_transformers():
    loaded = load_model("smollm2-135m-instruct")
    hf_model = smollm2_transformers()
    tok = loaded.tokenizer
    chat = tok.apply_chat_template([{"role": "user", "content": "Write a Python function that reverses "
                                     "a linked list, with a docstring and two examples."}],
                                   tokenize=False, add_generation_prompt=True)
    prompts = [chat, "def is_prime(n: int) -> bool:\n    \"\"\"Return True if n is a prime number.\"\"\"\n"]
    # 30 layers: the bound is ~7e-3 here (75x the float32 error measured on an AMD EPYC), and one
    # step of the chat row has a float64 top-2 margin of 5e-3, a rounding call by that bound.
    _assert_float64_greedy_path(hf_model, _ours_greedy(loaded, prompts, NEW_TOKENS), rounding_calls=True)
