"""The code that runs inside the jailed child: load the submitted program, run its tests.

This module runs *inside* the sandbox, in a process that has already dropped privileges (see
``zygote.py``). It never judges a test: it reports what happened (return value as JSON,
exception type/message/line, or plain completion) on the result fd, one JSON line per event,
each tagged with the run's nonce. The verdict is decided by the zygote, a different process
that the program cannot touch, after comparing the JSON against the expected values.

Events written to the result fd (one JSON object per line, all carry ``"n": nonce``):
  {"k": "load_error", "exc": {...}, "syntax": bool}   compiling / running the module failed
  {"k": "begin", "i": int}                             test i starts (the zygote starts its clock)
  {"k": "end", "i": int, "exc": {...} | null, "value": str | null, "too_large": bool}

Line numbers: the program is compiled with the file name ``SOLUTION_FILE`` and the test snippets
with ``TEST_FILE``, so the deepest traceback frame whose file is ``SOLUTION_FILE`` is the user's
line, 1-based in the submitted code; when no frame belongs to it the line is null.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import sys

from sandbox_service import dict_version

SOLUTION_FILE = "<solution>"
TEST_FILE = "<test>"
MAX_MESSAGE_CHARS = 2000
MAX_VALUE_CHARS = 8 * 1024 * 1024

# Bound before any user code runs, so a program that patches json/os/builtins cannot change
# how results are written; builtins and json's encoder globals are restored before each write.
_ENCODER = json.JSONEncoder(allow_nan=True)
_dumps = _ENCODER.encode
_loads = json.JSONDecoder().decode
_BUILTINS_SNAPSHOT = dict(builtins.__dict__)
_ENCODER_GLOBALS_SNAPSHOT = dict(json.encoder.__dict__)
_builtins_dict = builtins.__dict__
_encoder_globals = json.encoder.__dict__
_dict_update = dict.update
_write = os.write
_getpid = os.getpid
_exit = os._exit
_str = str
_len = len
_type = type
_isinstance = isinstance
_BaseException = BaseException
_SyntaxError = SyntaxError
_SystemExit = SystemExit


_dict_version = dict_version.reader()  # None: restore before every write


def _runtime_versions() -> bytes | None:
    if _dict_version is None:
        return None
    return _dict_version(_builtins_dict) + _dict_version(_encoder_globals)


_CLEAN_VERSIONS = _runtime_versions()


def snapshot_runtime() -> None:
    """Take the snapshot `_restore_runtime` returns to; the zygote calls this again once it has
    finished adding builtins (site.py's exit / quit / help), so patches of those are undone too."""
    global _BUILTINS_SNAPSHOT, _ENCODER_GLOBALS_SNAPSHOT, _CLEAN_VERSIONS
    _BUILTINS_SNAPSHOT = dict(builtins.__dict__)
    _ENCODER_GLOBALS_SNAPSHOT = dict(json.encoder.__dict__)
    _CLEAN_VERSIONS = _runtime_versions()


def _restore_runtime() -> None:
    """Undo a program's patches of builtins / json.encoder before the harness serialises.

    Skipped when neither dict's version tag moved since the snapshot (dict_version.py): the
    restore writes every value's reference count, a page copy each in a forked child."""
    global _CLEAN_VERSIONS
    if _CLEAN_VERSIONS is not None and _runtime_versions() == _CLEAN_VERSIONS:
        return
    _dict_update(_builtins_dict, _BUILTINS_SNAPSHOT)
    _dict_update(_encoder_globals, _ENCODER_GLOBALS_SNAPSHOT)
    _CLEAN_VERSIONS = _runtime_versions()


def exception_info(exc: BaseException, code_lines: int) -> dict:
    """{type, message, line} for an exception; line is 1-based in the submitted code or None."""
    line = None
    if _isinstance(exc, _SyntaxError) and getattr(exc, "filename", None) == SOLUTION_FILE:
        line = exc.lineno
        if line is not None:
            line = max(1, min(int(line), max(code_lines, 1)))
    else:
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == SOLUTION_FILE:
                line = tb.tb_lineno
            tb = tb.tb_next
    try:
        message = _str(exc)
    except _BaseException:  # a user-defined __str__ may raise
        message = "<unprintable exception>"
    if _len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "..."
    return {"type": _type(exc).__name__, "message": message, "line": line}


class _Channel:
    """Writes nonce-tagged JSON lines to the result fd; silent in forked copies of the child.

    After an "end" event it waits for the zygote's one-byte ack on `ack_fd`, so output the
    next test writes can never be drained into this test's record.
    """

    def __init__(self, fd: int, ack_fd: int, nonce: str):
        self._fd = fd
        self._ack_fd = ack_fd
        self._nonce = nonce
        self._owner = _getpid()

    def wait_ack(self) -> None:
        if not os.read(self._ack_fd, 1):
            _exit(0)  # the zygote is gone or wants no more tests

    def send(self, **event) -> None:
        if _getpid() != self._owner:  # a fork made by the program: never report from it
            _exit(0)
        _restore_runtime()
        event["n"] = self._nonce
        data = (_dumps(event) + "\n").encode("utf-8", "replace")
        while data:
            written = _write(self._fd, data)
            data = data[written:]


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except _BaseException:
            pass


def _solution_callable(namespace: dict, fn_name: str):
    if fn_name in namespace:
        return namespace[fn_name]
    solution_cls = namespace.get("Solution")
    if solution_cls is not None:
        return getattr(solution_cls(), fn_name)
    raise NameError(f"name {fn_name!r} is not defined by the submitted code")


def _load_module(code: str, name: str, channel: _Channel, code_lines: int):
    """Compile and run the program's top level; returns its namespace or None after reporting."""
    try:
        code_obj = compile(code, SOLUTION_FILE, "exec", dont_inherit=True)
    except _BaseException as exc:  # SyntaxError, also ValueError (NUL bytes), MemoryError
        channel.send(k="load_error", exc=exception_info(exc, code_lines),
                     syntax=not _isinstance(exc, MemoryError))
        return None, None
    namespace = {"__name__": name, "__builtins__": builtins}
    return code_obj, namespace


def run_call_or_assert(job: dict, start: int, channel: _Channel) -> None:
    """Run the module once, then tests[start:] in order (mode "call" or "assert")."""
    code = job["code"]
    code_lines = code.count("\n") + 1
    code_obj, namespace = _load_module(code, "__solution__", channel, code_lines)
    if code_obj is None:
        return
    try:
        exec(code_obj, namespace)
    except _BaseException as exc:
        _flush_std_streams()
        channel.send(k="load_error", exc=exception_info(exc, code_lines), syntax=False)
        return
    _flush_std_streams()
    tests = job["tests"]
    mode = job["mode"]
    for i in range(start, _len(tests)):
        test = tests[i]
        channel.send(k="begin", i=i)
        exc_info, value, too_large = None, None, False
        try:
            if mode == "call":
                fn = _solution_callable(namespace, job["fn_name"])
                args = _loads(_dumps(test["args"]))  # a fresh copy per test
                result = fn(*args)
                _restore_runtime()
                try:
                    value = _dumps(result)
                except _BaseException:
                    value = None  # not JSON-serialisable: judged a wrong answer
                if value is not None and _len(value) > MAX_VALUE_CHARS:
                    value, too_large = None, True
            else:
                exec(compile(test["assert"], TEST_FILE, "exec", dont_inherit=True), namespace)
        except _BaseException as exc:
            exc_info = exception_info(exc, code_lines)
        _flush_std_streams()
        channel.send(k="end", i=i, exc=exc_info, value=value, too_large=too_large)
        channel.wait_ack()


def run_stdio(job: dict, index: int, channel: _Channel) -> None:
    """Run the whole program once as __main__ with tests[index]["stdin"] on fd 0."""
    code = job["code"]
    code_lines = code.count("\n") + 1
    stdin_bytes = job["tests"][index]["stdin"].encode("utf-8", "surrogateescape")
    stdin_fd = os.memfd_create("stdin")
    os.write(stdin_fd, stdin_bytes)
    os.lseek(stdin_fd, 0, os.SEEK_SET)
    os.dup2(stdin_fd, 0)
    os.close(stdin_fd)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "rb", closefd=False), encoding="utf-8",
                                 errors="surrogateescape")
    code_obj, namespace = _load_module(code, "__main__", channel, code_lines)
    if code_obj is None:
        return
    channel.send(k="begin", i=index)
    exc_info = None
    try:
        exec(code_obj, namespace)
    except _SystemExit as exc:
        if exc.code not in (None, 0):
            exc_info = exception_info(exc, code_lines)
    except _BaseException as exc:
        exc_info = exception_info(exc, code_lines)
    _flush_std_streams()
    channel.send(k="end", i=index, exc=exc_info, value=None, too_large=False)


def child_main(job: dict, start: int, result_fd: int, ack_fd: int, nonce: str) -> None:
    """Entry point in the jailed child (privileges already dropped). Never returns.

    `job` must not hold expected values (the zygote strips them): a program that searches its
    own memory finds its inputs only.
    """
    channel = _Channel(result_fd, ack_fd, nonce)
    del nonce
    try:
        if job["mode"] == "stdio":
            run_stdio(job, start, channel)
        else:
            run_call_or_assert(job, start, channel)
    except _BaseException:
        pass
    _flush_std_streams()
    _exit(0)
