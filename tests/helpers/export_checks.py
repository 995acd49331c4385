"""Shared checks of the export tests (tests/cli/test_export.py, tests/cli/test_export_gguf.py).

Logits are held to tests/models/test_models_parity.py's bound: transformers runs in float64 and ours
(float32) may differ from it by u·√n·max|logit|, n = L·(D + F) + D float32 accumulations
(`float32_logit_bound`). Greedy tokens must equal transformers' float64 greedy tokens, except at a
rounding call: a step whose two candidates' float64 logits lie within twice that bound.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

from rltf_jax.cli.export import main as export_main
from rltf_jax.sampling import Sampler, SamplingParams

UNIT_ROUNDOFF_F32 = 2.0 ** -24
PROMPTS = ["def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
           "Write a Python function that checks whether a string is a palindrome.",
           "import numpy as np\n\nx = np.arange(10)\nprint("]
NEW_TOKENS = 16


def left_padded(rows):
    width = max(len(r) for r in rows)
    tokens = np.zeros((len(rows), width), np.int32)
    mask = np.zeros((len(rows), width), bool)
    for i, r in enumerate(rows):
        tokens[i, width - len(r):] = r
        mask[i, width - len(r):] = True
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0).astype(np.int32)
    return tokens, positions, mask


def prompt_rows(tokenizer, prompts=PROMPTS):
    return [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]


def our_logits(loaded, tokens, positions, mask) -> np.ndarray:
    return np.asarray(loaded.model(jnp.asarray(tokens), jnp.asarray(positions), jnp.asarray(mask))[0])


def hf_logits(hf_model, tokens, positions, mask) -> np.ndarray:
    with torch.no_grad():
        out = hf_model(input_ids=torch.tensor(tokens, dtype=torch.long),
                       attention_mask=torch.tensor(mask, dtype=torch.long),
                       position_ids=torch.tensor(positions, dtype=torch.long))
    return out.logits.double().numpy()


def float32_logit_bound(config, reference_logits: np.ndarray) -> float:
    """tests/models/test_models_parity.py's bound on our float32 logits against float64 ones (module docstring)."""
    n = config.num_layers * (config.hidden_size + config.intermediate_size) + config.hidden_size
    return UNIT_ROUNDOFF_F32 * math.sqrt(n) * float(np.abs(reference_logits).max())


def assert_parity(loaded, hf_model, rows) -> None:
    """Our float32 logits on the left-padded `rows` within the float32 bound of transformers' float64
    ones (`hf_model` is switched to float64 in place)."""
    tokens, positions, mask = left_padded(rows)
    reference = hf_logits(hf_model.double(), tokens, positions, mask)[mask]
    diff = float(np.abs(our_logits(loaded, tokens, positions, mask)[mask] - reference).max())
    assert diff <= float32_logit_bound(loaded.config, reference), (diff, float32_logit_bound(loaded.config, reference))


def greedy_pair(loaded, hf_model, tokenizer, prompts):
    """(ours, transformers') NEW_TOKENS greedy tokens per prompt, EOS suppressed on both sides."""
    hf_model = hf_model.double()
    ours = Sampler(loaded, eos_token_ids=()).generate(prompts, SamplingParams(NEW_TOKENS, greedy=True),
                                                      jax.random.key(0)).response_tokens
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    with torch.no_grad():
        out = hf_model.generate(**enc, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id or 0)
    return np.asarray(ours), out[:, enc["input_ids"].shape[1]:].numpy()


def assert_greedy_agrees(loaded, hf_model, tokenizer, prompts):
    """Our greedy tokens equal transformers' float64 ones up to the first rounding call, if any."""
    ours, theirs = greedy_pair(loaded, hf_model, tokenizer, prompts)
    for prompt, a, b in zip(prompts, ours, theirs):
        if np.array_equal(a, b):
            continue
        t = int(np.argmax(a != b))
        prefix = tokenizer(prompt, add_special_tokens=False)["input_ids"] + a[:t].tolist()
        logits = hf_logits(hf_model, *left_padded([prefix]))[0, -1]
        margin = abs(float(logits[a[t]] - logits[b[t]]))
        assert margin <= 2 * float32_logit_bound(loaded.config, logits), (prompt, t, margin)


def param_arrays(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def assert_same_params(a, b):
    pa, pb = param_arrays(a), param_arrays(b)
    assert len(pa) == len(pb)
    for x, y in zip(pa, pb):
        np.testing.assert_array_equal(x, y)


def run_export(*args) -> int:
    """The exit status of `python -m rltf_jax.export ARGS` (0, or 2 for a user's mistake)."""
    try:
        return export_main([str(a) for a in args])
    except SystemExit as exit_:
        return exit_.code
