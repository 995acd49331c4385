"""APPS (Hendrycks et al. 2021) in the HF ``codeparrot/apps`` row format.

Rows: ``problem_id, question, solutions (JSON str), input_output (JSON str), difficulty, url,
starter_code``. ``input_output`` is ``{"inputs": [...], "outputs": [...], "fn_name"?: str}``:
with ``fn_name`` the problem is call-based (mode "call": each input is the argument list; an output
wrapped in a one-element list, as APPS stores them, is unwrapped); otherwise stdin/stdout (mode
"stdio"; a list of lines is joined with newlines). Difficulty: introductory / interview /
competition. Splits: "train" / "test" (5,000 each); ids restart in each split, so the id carries it
(``apps/test/17``). The first test is public, all are private. Problems without tests are bad rows.

APPS's own harness runs every program after a block of imports (typing, collections, math, ...)
and its reference solutions rely on it (``List[int]`` without an import). So reference solutions
get `APPS_IMPORT_HEADER` prepended, and call-based starter code gets ``from typing import *``
(which `rltf_jax.env.prompts.extract_code` carries over into the model's program as its prefix).
"""

from __future__ import annotations

import json

from rltf_jax.data.problem import BadRowError, Problem
from rltf_jax.data.rows import convert_rows, read_rows

HUB_ID = "codeparrot/apps"
SPLITS = ("train", "test")
DIFFICULTIES = ("introductory", "interview", "competition")
# From hendrycks/apps eval/testing_util.py (numpy left out: the sandbox need not have it).
APPS_IMPORT_HEADER = (
    "import sys\nimport time\nimport itertools\n"
    "from itertools import accumulate, product, permutations, combinations\n"
    "import collections\nfrom collections import Counter, OrderedDict, deque, defaultdict, ChainMap\n"
    "from functools import lru_cache\nimport math\n"
    "from math import sqrt, sin, cos, tan, ceil, fabs, floor, gcd, exp, log, log2\n"
    "import fractions\nfrom typing import List, Tuple\nimport random\nimport heapq\nfrom heapq import *\n")
TYPING_IMPORT = "from typing import *\n\n"


def _json_field(row: dict, key: str):
    value = row.get(key)
    if isinstance(value, str):
        if not value.strip():
            raise BadRowError(f"field {key!r} is empty")
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise BadRowError(f"field {key!r} is not valid JSON: {err}") from err
    if value is None:
        raise BadRowError(f"field {key!r} missing")
    return value


def _text(value) -> str:
    if isinstance(value, list):
        value = "\n".join(str(v) for v in value)
    if not isinstance(value, str):
        raise BadRowError(f"stdio input/output must be a string or list of lines, got {type(value).__name__}")
    return value


def _tests(io: dict) -> tuple[str, tuple[dict, ...]]:
    inputs, outputs = io.get("inputs"), io.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list) or not inputs:
        raise BadRowError("input_output needs non-empty 'inputs' and 'outputs' lists")
    if len(inputs) != len(outputs):
        raise BadRowError(f"{len(inputs)} inputs but {len(outputs)} outputs")
    if io.get("fn_name"):
        tests = []
        for args, expected in zip(inputs, outputs):
            if not isinstance(args, list):
                raise BadRowError("call-based input must be a list of arguments")
            if isinstance(expected, list) and len(expected) == 1:
                expected = expected[0]
            tests.append({"args": args, "expected": expected})
        return "call", tuple(tests)
    return "stdio", tuple({"stdin": _text(i), "expected_stdout": _text(o)}
                          for i, o in zip(inputs, outputs))


def apps_problem(row: dict, split: str = "") -> Problem:
    """One APPS row -> `Problem` (``split`` names the file it came from, if known)."""
    problem_id = row.get("problem_id", row.get("id"))
    if problem_id is None:
        raise BadRowError("missing problem_id")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise BadRowError("empty question")
    difficulty = row.get("difficulty") or "unknown"
    if difficulty not in DIFFICULTIES + ("unknown",):
        raise BadRowError(f"difficulty {difficulty!r} not in {DIFFICULTIES}")
    io = _json_field(row, "input_output")
    if not isinstance(io, dict):
        raise BadRowError("input_output must be a JSON object")
    mode, tests = _tests(io)
    solutions = row.get("solutions")
    solutions = _json_field(row, "solutions") if solutions not in (None, "") else []
    if not isinstance(solutions, list) or not all(isinstance(x, str) for x in solutions):
        raise BadRowError("solutions must be a JSON list of strings")
    starter = row.get("starter_code") or ""
    if starter.strip() and mode == "call":
        starter = TYPING_IMPORT + starter
    return Problem(
        id=f"apps/{split}/{problem_id}" if split else f"apps/{problem_id}", source="apps",
        prompt=question, mode=mode, public_tests=tests[:1], private_tests=tests,
        fn_name=io.get("fn_name") or None, starter_code=starter,
        solutions=tuple(APPS_IMPORT_HEADER + x for x in solutions), difficulty=difficulty, split=split)


def load_apps(split: str | None = None, path: str | None = None, *,
              on_bad_row: str = "skip") -> list[Problem]:
    """APPS problems: a local file (labelled with ``split`` if given) or the hub splits."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"apps split must be one of {SPLITS}, got {split!r}")
    splits = [split] if split else list(SPLITS)
    problems = []
    for s in ([split or ""] if path else splits):
        rows = read_rows(path) if path else read_rows(HUB_ID, split=s)
        problems += convert_rows(rows, lambda r, s=s: apps_problem(r, s), on_bad_row=on_bad_row,
                                 row_id=lambda r: f"apps/{r.get('problem_id')}")
    return problems
