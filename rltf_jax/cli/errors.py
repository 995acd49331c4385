"""A user's mistake becomes one line, `error: <message>`, and exit status 2; a bug keeps its traceback.

The mistakes: a missing file or folder, an unknown dataset or model, a malformed row or config
value, a checkpoint of another model, an export target that exists, a sandbox that cannot be
reached. They all raise one of `USER_ERRORS` with a message that names the problem; `--debug`
shows the traceback as well.
"""

from __future__ import annotations

import sys
from typing import Callable, TypeVar

import httpx

T = TypeVar("T")

# ValueError covers BadRowError, CheckpointMismatchError, ExportError and SandboxRequestError;
# KeyError covers an unknown registry name or config key; OSError missing files and folders.
USER_ERRORS = (ValueError, KeyError, OSError, httpx.TransportError)


class UsageError(ValueError):
    """Arguments that parse but do not fit together (e.g. --turns with --solutions)."""


def one_line(error: BaseException) -> str:
    """The error's message on one line (a KeyError's message without the repr quotes)."""
    if error.args and isinstance(error.args[0], BaseException):  # e.g. ml_collections' AttributeError(KeyError)
        return one_line(error.args[0])
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return "; ".join(line.strip() for line in text.splitlines() if line.strip()) or type(error).__name__


def report_user_errors(body: Callable[[], T], *, debug: bool) -> T:
    """``body()``; on a user's mistake print ``error: ...`` to stderr and exit 2 (re-raise if ``debug``)."""
    try:
        return body()
    except USER_ERRORS as error:
        if debug:
            raise
        exit_with_error(error)


def exit_with_error(error: BaseException, *, what: str = "") -> None:
    """Prints ``error: <what><the error's message on one line>`` to stderr and exits with status 2."""
    print(f"error: {what}{one_line(error)}", file=sys.stderr)
    raise SystemExit(2) from None
