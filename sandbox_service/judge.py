"""Pure judging rules: output / value comparison and the request's overall verdict.

Runs outside the program's process (in the zygote and the service), on plain JSON data only, so
a program's objects (an ``__eq__`` that always returns True, a patched builtin) never take part.
"""

from __future__ import annotations

import math
import re

VERDICTS = ("pass", "wrong_answer", "runtime_error", "syntax_error", "timeout", "memory_limit",
            "output_limit", "sandbox_error")
FLOAT_REL_TOL = 1e-6
FLOAT_ABS_TOL = 1e-6
_INT_TOKEN = re.compile(r"[+-]?\d+\Z")
_ERROR_VERDICTS = ("runtime_error", "timeout", "memory_limit", "output_limit")


def _floats_close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=FLOAT_REL_TOL, abs_tol=FLOAT_ABS_TOL)


def _tokens_equal(got: str, want: str) -> bool:
    if got == want:
        return True
    if _INT_TOKEN.match(got) and _INT_TOKEN.match(want):
        return False  # integers compare exactly, however large
    try:
        return _floats_close(float(got), float(want))
    except ValueError:
        return False


def _significant_lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def stdout_matches(got: str, want: str) -> bool:
    """Judge program output against the expected output (APPS / CodeContests style).

    Trailing whitespace on each line and trailing blank lines are ignored; otherwise lines must
    match one to one, token by token (split on whitespace), where integer tokens compare exactly
    and other numeric tokens with |a - b| <= max(1e-6 * max(|a|, |b|), 1e-6). Never evaluates
    the output.
    """
    got_lines, want_lines = _significant_lines(got), _significant_lines(want)
    if len(got_lines) != len(want_lines):
        return False
    for got_line, want_line in zip(got_lines, want_lines):
        if got_line == want_line:
            continue
        got_tokens, want_tokens = got_line.split(), want_line.split()
        if len(got_tokens) != len(want_tokens):
            return False
        if not all(_tokens_equal(g, w) for g, w in zip(got_tokens, want_tokens)):
            return False
    return True


def values_equal(got, want) -> bool:
    """Structural equality of two JSON-decoded values (call mode).

    bool only equals bool; int and float compare numerically (floats with the tolerance of
    ``stdout_matches``); lists element-wise (tuples arrive as lists); dicts key-wise.
    """
    if isinstance(want, bool) or isinstance(got, bool):
        return isinstance(want, bool) and isinstance(got, bool) and got == want
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        if isinstance(want, int) and isinstance(got, int):
            return got == want
        return _floats_close(float(got), float(want))
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(values_equal(g, w) for g, w in zip(got, want))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(values_equal(got[k], want[k]) for k in want)
    return type(got) is type(want) and got == want


def overall_verdict(test_verdicts: list[str], had_sandbox_error: bool = False) -> str:
    """The request's verdict from its tests' verdicts (in test order).

    sandbox_error if the service failed; syntax_error if the code does not compile; else the
    first error-class verdict (runtime_error, timeout, memory_limit, output_limit) in test
    order; else wrong_answer if any test failed; else pass. This follows RLTF's ordering
    (an error outranks a wrong answer).
    """
    if had_sandbox_error or "sandbox_error" in test_verdicts:
        return "sandbox_error"
    if "syntax_error" in test_verdicts:
        return "syntax_error"
    for verdict in test_verdicts:
        if verdict in _ERROR_VERDICTS:
            return verdict
    if "wrong_answer" in test_verdicts:
        return "wrong_answer"
    if not test_verdicts:
        return "sandbox_error"
    return "pass"


def pass_ratio(test_verdicts: list[str], num_tests: int) -> float:
    """Passed tests / tests in the request (tests skipped after a first failure count as failed)."""
    if num_tests <= 0:
        return 0.0
    return sum(v == "pass" for v in test_verdicts) / num_tests
