"""RLTF's fine-grained error classes (`ErrorFinder`): which part of a response a failure blames.

Classes (Liu et al. 2023, §3.2; code `program_feedback.py::ErrorFinder`):

- ``global``: the whole response is penalised: timeouts, memory / output limits, RecursionError,
  and a syntax error caused by truncation: the reply was cut at max length and the error sits on
  the program's last line (extraction trims trailing whitespace, so that is the line the cut fell
  in, or the last complete line when the cut fell right after a newline), has no line, or its
  message says the input ended ("'(' was never closed", "unexpected EOF while parsing"). A syntax
  error on an earlier line of a cut reply ("invalid syntax" in its middle) is the model's, a
  ``line`` error like in an uncut reply.
- ``line``: the tokens of one line are penalised: other syntax errors, and runtime exceptions
  (NameError, TypeError, IndexError, ValueError, KeyError, AttributeError, ZeroDivisionError, ...)
  at the line the sandbox reports (the deepest frame in the submitted program).
- ``ignore``: no fine-grained term: tab/space inconsistency, unindent mismatch, an unterminated
  triple-quoted string, duplicate argument, `import *` inside a function (RLTF's ignore list, in
  the messages of Python 3.10 to 3.13), wrong answers, passes, and errors
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

# RLTF's ignored compile errors (substrings of the message). RLTF's list was written for
# Python <= 3.9; the unterminated triple-quoted string is spelled differently since then, so it is
# matched by IGNORED_SYNTAX_PATTERN, in every spelling of Python 3.10 to 3.13 (docs/rewards.md).
IGNORED_SYNTAX_MESSAGES = (
    "inconsistent use of tabs and spaces in indentation",
    "unindent does not match any outer indentation",
    "duplicate argument",
    "import * only allowed at module level",
)
# Unterminated triple-quoted string: <= 3.9 "EOF while scanning triple-quoted string literal";
# 3.10-3.11 "unterminated triple-quoted string literal (detected at line N)"; 3.12-3.13 the same,
# or "unterminated triple-quoted f-string literal (detected at line N)" for an f-string (PEP 701
# moved f-strings into the tokenizer).
IGNORED_SYNTAX_PATTERN = re.compile(
    r"EOF while scanning triple-quoted string literal|"
    r"unterminated triple-quoted (?:[a-z]+-)?string literal")
# Messages that say the input ended before the construct did: in a truncated program these blame
# the cut wherever Python puts the line (an unclosed bracket is reported at its opening line).
# Not "invalid syntax", "unterminated string literal" (one line only) or "expected an indented
# block": those name a line of their own, and a cut that causes them puts them on the last line.
END_OF_INPUT_MESSAGES = re.compile(r"was never closed|unexpected EOF|incomplete input")


def ignored_syntax_message(message: str) -> str | None:
    """The RLTF ignore-list entry `message` matches (a compile error with no fine-grained term),
    or None."""
    for ignored in IGNORED_SYNTAX_MESSAGES:
        if ignored in message:
            return ignored
    match = IGNORED_SYNTAX_PATTERN.search(message)
    return match.group(0) if match else None


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
    """Class of a compile error; `exception` has .type, .message, .line (or is None).

    ignore: TabError and RLTF's ignore list (checked first, as in RLTF's `find_ce`);
    global: a truncated program whose error has no line, sits on the last line, or says the input
    ended; line: every other located error, on its own line.
    """
    message = exception.message if exception is not None else ""
    line = exception.line if exception is not None else None
    if exception is not None and exception.type == "TabError":
        return ErrorLocation(IGNORE, reason="TabError")
    ignored = ignored_syntax_message(message)
    if ignored is not None:
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
