"""RLTF's fine-grained error classes (`ErrorFinder`): which part of a response a failure blames.

Classes (Liu et al. 2023, §3.2; code `program_feedback.py::ErrorFinder`):

- ``global``: the whole response is penalised: timeouts, memory / output limits, RecursionError,
  and a syntax error caused by truncation (the program was cut at max length and the error sits
  on its last line, has no line, or is an end-of-input error such as "'(' was never closed").
- ``line``: the tokens of one line are penalised: other syntax errors, and runtime exceptions
  (NameError, TypeError, IndexError, ValueError, KeyError, AttributeError, ZeroDivisionError, ...)
  at the line the sandbox reports (the deepest frame in the submitted program).
- ``ignore``: no fine-grained term: tab/space inconsistency, unindent mismatch, duplicate
  argument, `import *` inside a function (RLTF's ignore list), wrong answers, passes, and errors
  the sandbox could not locate in the program (``exception.line`` is null).

Which test's error counts when several fail: the *first* test, in request order, whose verdict
equals the overall verdict (the failure the verdict reports); if no test carries that verdict
(e.g. a syntax error reported before any test ran), the first test with an exception.

One deviation from RLTF's code: its harness turned abnormal exit codes into a literal
"RuntimeError" that it then ignored; here a Python RuntimeError raised at a located line is a
``line`` error like any other exception, and an unlocated one is ``ignore``.
"""

from __future__ import annotations

import dataclasses
import re

from rltf_jax.rewards.outcome import NO_CODE, RUNTIME_VERDICTS, check_verdict

GLOBAL, LINE, IGNORE = "global", "line", "ignore"
ERROR_CLASSES = (GLOBAL, LINE, IGNORE)

# Resource verdicts: the program as a whole is at fault, no single line.
GLOBAL_VERDICTS = frozenset({"timeout", "memory_limit", "output_limit"})
GLOBAL_EXCEPTIONS = frozenset({"RecursionError", "TimeoutError", "MemoryError"})
SYNTAX_EXCEPTIONS = frozenset({"SyntaxError", "IndentationError", "TabError"})

# RLTF's ignored compile errors (substrings of the message), with their Python 3.10+ spellings.
IGNORED_SYNTAX_MESSAGES = (
    "inconsistent use of tabs and spaces in indentation",
    "unindent does not match any outer indentation",
    "EOF while scanning triple-quoted string literal",
    "duplicate argument",
    "import * only allowed at module level",
)
# Messages that mean "the input ended too early": in a truncated program these blame the cut.
END_OF_INPUT_MESSAGES = re.compile(
    r"unexpected EOF|was never closed|unterminated|expected an indented block|"
    r"EOL while scanning|EOF while scanning|invalid syntax|incomplete input")


@dataclasses.dataclass(frozen=True)
class ErrorLocation:
    """Where a failure is blamed: `kind` in ERROR_CLASSES; `line` (1-based, in the program) for
    ``line``; `reason` is a short human-readable why (for logs and tests)."""

    kind: str
    line: int | None = None
    reason: str = ""


def deciding_test(result):
    """The test whose exception decides the class (see the module docstring), or None."""
    tests = tuple(result.tests)
    for test in tests:
        if test.verdict == result.verdict:
            return test
    for test in tests:
        if test.exception is not None:
            return test
    return None


def _program_line_count(program: str) -> int:
    return len(program.rstrip("\n").split("\n")) if program.strip() else 0


def classify_syntax_error(exception, program: str, truncated: bool) -> ErrorLocation:
    """Class of a compile error; `exception` has .type, .message, .line (or is None)."""
    message = exception.message if exception is not None else ""
    line = exception.line if exception is not None else None
    if exception is not None and exception.type == "TabError":
        return ErrorLocation(IGNORE, reason="TabError")
    for ignored in IGNORED_SYNTAX_MESSAGES:
        if ignored in message:
            return ErrorLocation(IGNORE, reason=ignored)
    if truncated:
        last_line = _program_line_count(program)
        if line is None or line >= last_line or END_OF_INPUT_MESSAGES.search(message):
            return ErrorLocation(GLOBAL, reason=f"syntax error in a truncated program: {message!r}")
    if line is None:
        return ErrorLocation(IGNORE, reason="syntax error without a line")
    return ErrorLocation(LINE, line=line, reason=f"{exception.type}: {message}")


def classify_error(result, program: str | None, truncated: bool) -> ErrorLocation:
    """RLTF error class of one execution.

    Args:
      result: a sandbox `ExecutionResult` (verdict, pass_ratio, tests[i].exception{type,message,line}),
        or None when `program` is None (the reply held no code).
      program: the program that was executed (`ExtractedCode.program`), None if no code.
      truncated: the response was cut at max length (no stop token / stop string).

    Returns:
      An ErrorLocation. A reply with no code is ``global`` when truncated (the cut ate the code)
      and ``ignore`` otherwise (no line to blame; it still gets the syntax-error outcome reward).
    Raises:
      ValueError on a `sandbox_error` result (never scored) or an unknown verdict.
    """
    if program is None:
        if truncated:
            return ErrorLocation(GLOBAL, reason="no code in a truncated reply")
        return ErrorLocation(IGNORE, reason="no code in the reply")
    if result is None:
        raise ValueError("classify_error needs an ExecutionResult for a reply that has code")
    check_verdict(result.verdict)
    verdict = result.verdict
    if verdict == NO_CODE:
        raise ValueError("'no_code' is not a sandbox verdict; pass program=None instead")
    if verdict in ("pass", "wrong_answer"):
        return ErrorLocation(IGNORE, reason=verdict)
    test = deciding_test(result)
    exception = test.exception if test is not None else None
    if verdict == "syntax_error":
        return classify_syntax_error(exception, program, truncated)
    if verdict in GLOBAL_VERDICTS:
        return ErrorLocation(GLOBAL, reason=verdict)
    assert verdict in RUNTIME_VERDICTS
    if exception is None:
        return ErrorLocation(IGNORE, reason="runtime error without exception info")
    if exception.type in GLOBAL_EXCEPTIONS:
        return ErrorLocation(GLOBAL, reason=exception.type)
    if exception.type in SYNTAX_EXCEPTIONS:  # e.g. a bad exec/eval string inside the program
        return classify_syntax_error(exception, program, truncated)
    if exception.line is None:
        return ErrorLocation(IGNORE, reason=f"{exception.type} not located in the program")
    return ErrorLocation(LINE, line=exception.line, reason=f"{exception.type}: {exception.message}")
