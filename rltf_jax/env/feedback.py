"""RLEF's execution feedback: the user message that tells the model why its code failed.

After a turn whose code fails the problem's *public* tests, the episode appends one user message
(Gehring et al. 2024, §3.1) built from the sandbox's per-test outcomes:

    Your code failed 1 of 2 public tests.

    Test 2 failed.
    Input: add(2, 2)
    Expected output: 4
    Your output: 0                                    (wrong answer)
    Error: ZeroDivisionError: division by zero        (runtime error, with its line)
      at line 3: return a / 0
    Error: timed out (limit 4 s per test)             (timeout / memory limit / output limit)

    Fix the code and answer with the complete corrected program in a ```python code block.

A reply without code gets a message saying so; code that does not compile gets the syntax error
and its line. Every shown field (input, expected, actual) is cut to ``max_field_chars``; the
message body to ``max_chars`` and, given a tokenizer, to ``max_tokens`` (the closing instruction
is always kept).

The sandbox reports a call-mode return value only as pass / wrong answer (expected values never
enter the jail), so the actual value of a wrong answer comes from a *probe*: one assert-mode
request per shown failing test whose assertion message is ``repr(fn(*args))``
(`return_value_probe`, `probed_value`). Everything here is pure; the episode runner sends the
probes with the rest of a turn's sandbox work.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from rltf_jax.data.problem import Problem
from rltf_jax.env.prompts import ExtractedCode
from rltf_jax.env.sandbox_client import ExecutionRequest, ExecutionResult

INSTRUCTION = "Fix the code and answer with the complete corrected program in a ```python code block."
NO_CODE_MESSAGE = ("Your reply does not contain a Python code block, so nothing could be run. "
                   "Answer with the complete program in a ```python code block.")
TRUNCATION_MARK = "... (truncated)"
PROBE_PREFIX = "rltf-return-value:"


@dataclasses.dataclass(frozen=True)
class FeedbackConfig:
    """How much of the execution result the feedback shows.

    Attributes:
      max_failed_tests: failing public tests shown in detail (the first ones, in test order).
      max_field_chars: chars kept of each shown input / expected / actual value / error message.
      max_chars: chars kept of the message body (before the closing instruction).
      max_tokens: tokens kept of the whole message when a tokenizer is given (None: no limit).
    """

    max_failed_tests: int = 2
    max_field_chars: int = 300
    max_chars: int = 1500
    max_tokens: int | None = 384

    def __post_init__(self):
        if self.max_failed_tests < 1 or self.max_field_chars < 1 or self.max_chars < 1:
            raise ValueError("FeedbackConfig: max_failed_tests, max_field_chars and max_chars must be ≥ 1")
        if self.max_tokens is not None and self.max_tokens < 16:
            raise ValueError(f"FeedbackConfig.max_tokens={self.max_tokens} leaves no room for a message")


def clip_text(text: str, max_chars: int) -> str:
    """`text` if it fits in `max_chars`, else its first chars followed by TRUNCATION_MARK."""
    if len(text) <= max_chars:
        return text
    return text[:max(max_chars - len(TRUNCATION_MARK), 0)] + TRUNCATION_MARK


def call_text(fn_name: str, args) -> str:
    """``f(1, [2, 3])``: how a call-mode test is shown."""
    return f"{fn_name}({', '.join(repr(a) for a in args)})"


def test_input_text(problem: Problem, test: Mapping) -> str:
    """The input of one sandbox test as the model should read it."""
    if "stdin" in test:
        return test["stdin"]
    if "args" in test:
        return call_text(problem.fn_name or "f", test["args"])
    if "assert" in test:
        return test["assert"]
    raise ValueError(f"test has none of stdin / args / assert: keys {sorted(test)}")


def expected_text(test: Mapping) -> str | None:
    """The expected output of a test, or None for assert tests (the assertion is the input)."""
    if "expected_stdout" in test:
        return test["expected_stdout"]
    if "expected" in test:
        return repr(test["expected"])
    return None


def return_value_probe(problem: Problem, program: str, test: Mapping, limits=None) -> ExecutionRequest:
    """An assert-mode request whose failure message is ``PROBE_PREFIX + repr(fn(*args))``.

    Only for call-mode tests; `probed_value` reads the value back from its result.
    """
    if problem.mode != "call" or "args" not in test:
        raise ValueError(f"return-value probes are for call-mode tests; problem {problem.id} "
                         f"has mode {problem.mode!r}")
    fn = problem.fn_name
    callee = f"(globals()[{fn!r}] if {fn!r} in globals() else Solution().{fn})"
    statement = f"assert False, {PROBE_PREFIX!r} + repr({callee}(*{list(test['args'])!r}))"
    return ExecutionRequest(code=program, mode="assert", tests=[{"assert": statement}],
                            fn_name=None, limits=limits)


def probed_value(result: ExecutionResult) -> str | None:
    """The repr of the returned value from a `return_value_probe` result, None if it failed."""
    if result.infra_error or not result.tests:
        return None
    exception = result.tests[0].exception
    if exception is None or exception.type != "AssertionError":
        return None
    if not exception.message.startswith(PROBE_PREFIX):
        return None
    return exception.message[len(PROBE_PREFIX):]


def _code_line(program: str, line: int | None) -> str | None:
    if line is None:
        return None
    lines = program.splitlines()
    if 1 <= line <= len(lines):
        return lines[line - 1].strip()
    return None


def _error_lines(outcome, program: str, limits: Mapping | None, field: int) -> list[str]:
    """What went wrong in one test, beyond a plain wrong answer."""
    limits = limits or {}
    verdict = outcome.verdict
    if verdict == "timeout":
        limit = limits.get("timeout_s")
        return ["Error: timed out" + (f" (limit {limit:g} s per test)" if limit else "")]
    if verdict == "memory_limit":
        limit = limits.get("memory_mb")
        return ["Error: exceeded the memory limit" + (f" ({limit} MB)" if limit else "")]
    if verdict == "output_limit":
        return ["Error: printed more output than allowed"]
    if outcome.exception is None:
        return []
    exc = outcome.exception
    text = exc.type + (f": {exc.message}" if exc.message else "")
    lines = [f"Error: {clip_text(text, field)}"]
    source = _code_line(program, exc.line)
    if source is not None:
        lines.append(f"  at line {exc.line}: {clip_text(source, field)}")
    return lines


def _block(label: str, text: str, field: int) -> str:
    text = clip_text(text, field)
    if "\n" in text.rstrip("\n"):
        return f"{label}:\n```\n{text.rstrip(chr(10))}\n```"
    return f"{label}: {text.rstrip(chr(10))}"


def failed_test_text(problem: Problem, index: int, test: Mapping, outcome, program: str, *,
                     returned: str | None, limits: Mapping | None, field: int) -> str:
    """The paragraph about one failing test (`index` is 0-based)."""
    parts = [f"Test {index + 1} failed."]
    parts.append(_block("Input", test_input_text(problem, test), field))
    expected = expected_text(test)
    if expected is not None:
        parts.append(_block("Expected output", expected, field))
    if outcome.verdict == "wrong_answer":
        if "expected_stdout" in test:
            parts.append(_block("Your output", outcome.stdout, field))
        elif returned is not None:
            parts.append(_block("Your output", returned, field))
        elif "args" in test:
            parts.append("Your output: a different value")
    parts.extend(_error_lines(outcome, program, limits, field))
    return "\n".join(parts)


def _compile_error(result: ExecutionResult) -> bool:
    return result.verdict == "syntax_error" and all(t.verdict == "syntax_error" for t in result.tests)


def feedback_body(problem: Problem, code: ExtractedCode | None, result: ExecutionResult | None, *,
                  returned: Mapping[int, str] | None = None, limits: Mapping | None = None,
                  config: FeedbackConfig = FeedbackConfig()) -> str:
    """The message without its closing instruction (see the module docstring).

    Args:
      problem: the problem; its public tests are the ones `result` judged, in order.
      code: the turn's extracted code (None: the reply had no code block).
      result: the sandbox result on the public tests (None only when `code` is None).
      returned: test index -> repr of the value the function returned (from probes).
      limits: the sandbox limits the tests ran under (shown for timeouts / memory).
    """
    if code is None:
        return NO_CODE_MESSAGE
    if result is None:
        raise ValueError(f"problem {problem.id}: code without an execution result")
    if result.infra_error:
        raise ValueError(f"problem {problem.id}: no feedback for a sandbox_error (the service "
                         "failed, not the program); retry or drop the episode")
    tests = problem.tests("public")
    field = config.max_field_chars
    if _compile_error(result):
        exc = result.tests[0].exception if result.tests else None
        lines = ["Your code does not compile."]
        if exc is not None:
            lines.extend(_error_lines(result.tests[0], code.program, limits, field))
        return "\n".join(lines)
    failing = [i for i, outcome in enumerate(result.tests) if outcome.verdict != "pass"]
    # Tests after a stop-on-first-failure never ran: the service reports fewer outcomes.
    failed_count = len(failing) + max(len(tests) - len(result.tests), 0)
    if not failed_count:
        raise ValueError(f"problem {problem.id}: the code passed every public test; no feedback")
    paragraphs = [f"Your code failed {failed_count} of {len(tests)} public tests."]
    for i in failing[:config.max_failed_tests]:
        paragraphs.append(failed_test_text(
            problem, i, tests[i], result.tests[i], code.program,
            returned=(returned or {}).get(i), limits=limits, field=field))
    return "\n\n".join(paragraphs)


def truncate_to_tokens(text: str, tokenizer, max_tokens: int) -> str:
    """`text` cut to at most `max_tokens` tokens of `tokenizer` (with TRUNCATION_MARK), else as is."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) <= max_tokens:
        return text
    mark = len(tokenizer.encode(TRUNCATION_MARK, add_special_tokens=False)) + 1
    keep = max(max_tokens - mark, 0)
    while keep > 0:
        cut = tokenizer.decode(ids[:keep], skip_special_tokens=True) + "\n" + TRUNCATION_MARK
        if len(tokenizer.encode(cut, add_special_tokens=False)) <= max_tokens:
            return cut
        keep -= 1
    return TRUNCATION_MARK


def feedback_message(problem: Problem, code: ExtractedCode | None, result: ExecutionResult | None, *,
                     returned: Mapping[int, str] | None = None, limits: Mapping | None = None,
                     config: FeedbackConfig = FeedbackConfig(), tokenizer=None) -> str:
    """The whole feedback message: the body (cut to the budgets) and the closing instruction.

    With a tokenizer and ``config.max_tokens``, the message has at most ``max_tokens`` tokens.
    """
    body = feedback_body(problem, code, result, returned=returned, limits=limits, config=config)
    if code is None:
        return body  # NO_CODE_MESSAGE carries its own instruction
    body = clip_text(body, config.max_chars)
    if tokenizer is not None and config.max_tokens is not None:
        closing = len(tokenizer.encode("\n\n" + INSTRUCTION, add_special_tokens=False))
        body = truncate_to_tokens(body, tokenizer, max(config.max_tokens - closing - 1, 1))
    return f"{body}\n\n{INSTRUCTION}"
