"""exception.line: 1-based in the submitted code, the deepest frame that belongs to it.

An exception raised by the test snippet itself (not in user code) has line null; an exception
raised in user code called from a test has the user code's line.
"""

from __future__ import annotations

import pytest


def _exception(run, code, mode="assert", tests=None, fn_name=None):
    tests = tests or [{"assert": "pass"}]
    result = run(code, mode, tests, fn_name=fn_name)
    return result, result["tests"][0]["exception"]


def test_name_error_in_nested_call(run):
    code = ("def helper(x):\n"
            "    return undefined_name + x\n"
            "\n"
            "def middle(x):\n"
            "    return helper(x) * 2\n"
            "\n"
            "def solve(x):\n"
            "    return middle(x)\n")
    result, exc = _exception(run, code, "assert", [{"assert": "assert solve(1) == 2"}])
    assert result["verdict"] == "runtime_error"
    assert exc["type"] == "NameError" and "undefined_name" in exc["message"]
    assert exc["line"] == 2


def test_index_error_in_loop(run):
    code = ("def total(xs):\n"
            "    s = 0\n"
            "    for i in range(len(xs) + 1):\n"
            "        s += xs[i]\n"
            "    return s\n")
    _, exc = _exception(run, code, "call", [{"args": [[1, 2, 3]], "expected": 6}], "total")
    assert exc["type"] == "IndexError" and exc["line"] == 4


def test_zero_division_in_lambda(run):
    code = ("import functools\n"
            "\n"
            "def apply_all(xs):\n"
            "    inv = lambda v: 1 / v\n"
            "    return list(map(inv, xs))\n")
    _, exc = _exception(run, code, "call", [{"args": [[1, 0]], "expected": [1, 0]}], "apply_all")
    assert exc["type"] == "ZeroDivisionError" and exc["line"] == 4


def test_recursion_error(run):
    code = ("def depth(n):\n"
            "    if n == -1:\n"
            "        return 0\n"
            "    return 1 + depth(n + 1)\n")
    _, exc = _exception(run, code, "call", [{"args": [3], "expected": 0}], "depth")
    assert exc["type"] == "RecursionError" and exc["line"] == 4


def test_syntax_error_on_last_line_of_truncated_code(run):
    code = ("def f(x):\n"
            "    y = x + 1\n"
            "    return [y,\n")
    result, exc = _exception(run, code, "call", [{"args": [1], "expected": 2}], "f")
    assert result["verdict"] == "syntax_error"
    assert exc["type"] == "SyntaxError" and exc["line"] == 3


def test_syntax_error_truncated_mid_expression(run):
    code = "x = 1\ny = (x +"
    result, exc = _exception(run, code)
    assert result["verdict"] == "syntax_error" and exc["line"] == 2


def test_indentation_error(run):
    code = ("def f(x):\n"
            "    a = 1\n"
            "      b = 2\n"
            "    return a\n")
    result, exc = _exception(run, code)
    assert result["verdict"] == "syntax_error"
    assert exc["type"] == "IndentationError" and exc["line"] == 3


def test_missing_indented_block_at_end(run):
    result, exc = _exception(run, "x = 1\nfor i in range(3):\n")
    assert result["verdict"] == "syntax_error"
    assert exc["type"] == "IndentationError"
    assert exc["line"] == 2  # clamped to the code's last line when Python points past it


def test_error_raised_in_test_itself_has_null_line(run):
    code = "def f(x):\n    return x\n"
    _, exc = _exception(run, code, "assert", [{"assert": "f(1)\nraise ValueError('in test')"}])
    assert exc == {"type": "ValueError", "message": "in test", "line": None}
    _, exc = _exception(run, code, "assert", [{"assert": "assert f(1) == 2"}])
    assert exc["type"] == "AssertionError" and exc["line"] is None


def test_error_in_code_called_from_test_has_code_line(run):
    code = "def f(x):\n    return {'a': 1}[x]\n"
    _, exc = _exception(run, code, "assert", [{"assert": "assert f('b') == 1"}])
    assert exc["type"] == "KeyError" and exc["line"] == 2


def test_error_at_module_top_level(run):
    code = "import math\n\nvalue = math.sqrt(-1)\n\ndef f():\n    return value\n"
    result, exc = _exception(run, code, "call", [{"args": [], "expected": 0}] * 2, "f")
    assert exc["type"] == "ValueError" and exc["line"] == 3
    assert [t["verdict"] for t in result["tests"]] == ["runtime_error", "runtime_error"]


def test_error_in_stdio_program(run):
    code = "n = int(input())\nvals = [int(v) for v in input().split()]\nprint(vals[n])\n"
    result = run(code, "stdio", [{"stdin": "5\n1 2 3\n", "expected_stdout": "1"},
                                 {"stdin": "1\n", "expected_stdout": "1"}])
    first, second = (t["exception"] for t in result["tests"])
    assert first["type"] == "IndexError" and first["line"] == 3
    assert second["type"] == "EOFError" and second["line"] == 2


def test_error_inside_library_code_points_at_calling_line(run):
    code = "import json\n\ndef parse(s):\n    return json.loads(s)\n"
    _, exc = _exception(run, code, "call", [{"args": ["{bad"], "expected": {}}], "parse")
    assert exc["type"] == "JSONDecodeError" and exc["line"] == 4


@pytest.mark.parametrize("statement,line", [("raise SystemExit(3)", 2), ("exit(1)", 2)])
def test_exit_in_user_code_is_runtime_error_with_line(run, statement, line):
    code = f"def f():\n    {statement}\n"
    result, exc = _exception(run, code, "call", [{"args": [], "expected": None}], "f")
    assert result["verdict"] == "runtime_error"
    assert exc["type"] == "SystemExit" and exc["line"] == line
