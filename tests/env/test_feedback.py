"""Execution feedback messages built from real sandbox runs of known wrong programs."""

import dataclasses

import pytest

from rltf_jax.data import load_problems
from rltf_jax.data.problem import Problem
from rltf_jax.env.feedback import (INSTRUCTION, NO_CODE_MESSAGE, TRUNCATION_MARK, FeedbackConfig,
                               clip_text, feedback_message, probed_value, return_value_probe)
from rltf_jax.models import registry
from rltf_jax.models.tokenizer import load_tokenizer
from rltf_jax.env.prompts import extract_code
from rltf_jax.env.sandbox_client import SANDBOX_ERROR, ExecutionRequest

LIMITS = {"timeout_s": 1.0, "memory_mb": 256}


@pytest.fixture(scope="module")
def add_problem() -> Problem:
    problem = next(p for p in load_problems("starter:train") if p.id == "starter/add/0")
    assert problem.public_tests == ({"args": [-13, 43], "expected": 30}, {"args": [2, 2], "expected": 4})
    return problem


@pytest.fixture(scope="module")
def stdio_problem() -> Problem:
    return Problem(id="t/double", source="test", prompt="Read n and print 2*n.", mode="stdio",
                   public_tests=({"stdin": "3\n", "expected_stdout": "6\n"},
                                 {"stdin": "5\n", "expected_stdout": "10\n"}),
                   private_tests=({"stdin": "7\n", "expected_stdout": "14\n"},))


def _reply(program: str) -> str:
    return f"Here is my solution:\n```python\n{program}```\n"


def _public_feedback(client, problem, program, **kwargs):
    """Extract the program from a reply, run it on the public tests, probe wrong answers."""
    code = extract_code(problem, _reply(program))
    assert code is not None
    request = ExecutionRequest(code=code.program, mode=problem.mode, tests=list(problem.public_tests),
                               fn_name=problem.fn_name, limits=LIMITS)
    result = client.execute(request)
    returned = {}
    if problem.mode == "call":
        wrong = [i for i, t in enumerate(result.tests) if t.verdict == "wrong_answer"]
        probes = [return_value_probe(problem, code.program, problem.public_tests[i], LIMITS) for i in wrong]
        for i, probe in zip(wrong, client.execute_batch(probes)):
            value = probed_value(probe)
            if value is not None:
                returned[i] = value
    return result, feedback_message(problem, code, result, returned=returned, limits=LIMITS, **kwargs)


def test_wrong_answer_shows_the_failed_call_expected_and_actual_value(client, add_problem):
    result, text = _public_feedback(client, add_problem, "def add(a, b):\n    return a - b\n")
    assert result.verdict == "wrong_answer"
    assert "failed 2 of 2 public tests" in text
    assert "Input: add(-13, 43)" in text
    assert "Expected output: 30" in text
    assert "Your output: -56" in text
    assert text.endswith(INSTRUCTION)


def test_probe_reads_non_scalar_return_values(client, add_problem):
    _, text = _public_feedback(client, add_problem, "def add(a, b):\n    return [a, 'b']\n")
    assert "Your output: [-13, 'b']" in text


def test_runtime_error_shows_exception_and_its_line(client, add_problem):
    program = "def add(a, b):\n    total = a\n    return total / 0\n"
    result, text = _public_feedback(client, add_problem, program)
    assert result.verdict == "runtime_error"
    assert "Error: ZeroDivisionError: division by zero" in text
    assert "at line 3: return total / 0" in text
    assert "Your output" not in text


def test_syntax_error_shows_the_line(client, add_problem):
    result, text = _public_feedback(client, add_problem, "def add(a, b)\n    return a + b\n")
    assert result.verdict == "syntax_error"
    assert text.startswith("Your code does not compile.")
    assert "SyntaxError" in text and "at line 1: def add(a, b)" in text


def test_timeout_and_memory_limit_are_named_with_their_limits(client, add_problem):
    _, text = _public_feedback(client, add_problem, "def add(a, b):\n    while True:\n        pass\n")
    assert "Error: timed out (limit 1 s per test)" in text
    _, text = _public_feedback(client, add_problem, "def add(a, b):\n    x = [0] * (10**9)\n    return x\n")
    assert "Error: exceeded the memory limit (256 MB)" in text


def test_stdio_feedback_shows_input_expected_and_actual_stdout(client, stdio_problem):
    result, text = _public_feedback(client, stdio_problem, "n = int(input())\nprint(n * n)\n")
    assert [t.verdict for t in result.tests] == ["wrong_answer", "wrong_answer"]
    assert "failed 2 of 2 public tests" in text
    assert "Test 1 failed.\nInput: 3\nExpected output: 6\nYour output: 9" in text
    assert "Test 2 failed.\nInput: 5\nExpected output: 10\nYour output: 25" in text


def test_only_failing_tests_are_shown(client, stdio_problem):
    _, text = _public_feedback(client, stdio_problem, "n = int(input())\nprint(6 if n == 3 else 0)\n")
    assert "failed 1 of 2 public tests" in text
    assert "Test 1" not in text and "Test 2 failed." in text


def test_no_code_reply_gets_the_no_code_message(add_problem):
    assert extract_code(add_problem, "I am not sure how to do this.") is None
    assert feedback_message(add_problem, None, None) == NO_CODE_MESSAGE


def test_fields_are_clipped_and_message_fits_the_token_budget(client, stdio_problem):
    long_output = "print('x' * 5000)\n"
    config = FeedbackConfig(max_field_chars=100, max_chars=2000, max_tokens=None)
    _, text = _public_feedback(client, stdio_problem, long_output, config=config)
    line = next(l for l in text.splitlines() if l.startswith("Your output"))
    assert line == "Your output: " + "x" * (100 - len(TRUNCATION_MARK)) + TRUNCATION_MARK

    tokenizer = load_tokenizer(registry.smollm2_gguf_path())
    budget = FeedbackConfig(max_field_chars=5000, max_chars=20000, max_tokens=64)
    _, text = _public_feedback(client, stdio_problem, "print(' '.join(str(i) for i in range(3000)))\n",
                               config=budget, tokenizer=tokenizer)
    assert len(tokenizer.encode(text, add_special_tokens=False)) <= 64
    assert TRUNCATION_MARK in text and text.endswith(INSTRUCTION)
    assert text.startswith("Your code failed 2 of 2 public tests.")


def test_bad_inputs_raise_clear_errors(client, add_problem):
    code = extract_code(add_problem, _reply("def add(a, b):\n    return a + b\n"))
    passing = client.execute(ExecutionRequest(code=code.program, mode="call", fn_name="add",
                                              tests=list(add_problem.public_tests)))
    assert passing.verdict == "pass"
    with pytest.raises(ValueError, match="passed every public test"):
        feedback_message(add_problem, code, passing)
    with pytest.raises(ValueError, match="sandbox_error"):
        feedback_message(add_problem, code, SANDBOX_ERROR)
    with pytest.raises(ValueError, match="without an execution result"):
        feedback_message(add_problem, code, None)
    stdio = dataclasses.replace(add_problem, mode="stdio")
    with pytest.raises(ValueError, match="call-mode"):
        return_value_probe(stdio, code.program, {"stdin": ""})
    with pytest.raises(ValueError, match="max_tokens"):
        FeedbackConfig(max_tokens=2)
    assert clip_text("abc", 10) == "abc"
