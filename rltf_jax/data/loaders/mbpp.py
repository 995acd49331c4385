"""MBPP (Austin et al. 2021), full and sanitized, in their upstream formats.

- full (``mbpp.jsonl``): ``task_id, text, code, test_list, test_setup_code, challenge_test_list``
- sanitized (``sanitized-mbpp.json``): ``task_id, prompt, code, test_imports, test_list``

Split by ``task_id`` (the standard one): 1–10 "prompt" (few-shot), 11–510 "test",
511–600 "validation", 601–974 "train". Tests are assert mode, one ``{"assert": ...}`` per line
of ``test_list``, each preceded by ``test_setup_code`` (full) or the ``test_imports`` (sanitized).
The first test is public (and is shown in the prompt, as MBPP prompts show tests); all of
``test_list`` is private. ``challenge_test_list`` is kept out of grading unless
``include_challenge_tests=True`` (standard MBPP scores only ``test_list``). ``fn_name`` is the
function the first test calls.
"""

from __future__ import annotations

import re

from rltf_jax.data.problem import BadRowError, Problem
from rltf_jax.data.rows import convert_rows, read_rows

HUB_ID = "google-research-datasets/mbpp"
SPLITS = ("prompt", "test", "validation", "train")


def mbpp_split(task_id: int) -> str:
    """The standard split of an MBPP task id."""
    if 1 <= task_id <= 10:
        return "prompt"
    if 11 <= task_id <= 510:
        return "test"
    if 511 <= task_id <= 600:
        return "validation"
    if 601 <= task_id <= 974:
        return "train"
    raise BadRowError(f"task_id {task_id} outside MBPP's 1..974")


def _called_function(assert_line: str, code: str) -> str:
    """The function of `code` that the test calls (first defined name that the test uses)."""
    defined = re.findall(r"^def\s+(\w+)\s*\(", code, re.MULTILINE)
    for name in re.findall(r"(\w+)\s*\(", assert_line):
        if name in defined:
            return name
    raise BadRowError(f"cannot tell which function the test calls: {assert_line!r}")


def _str_list(row: dict, key: str) -> list[str]:
    value = row.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRowError(f"field {key!r} must be a list of strings")
    return value


def _mbpp_problem(row: dict, text: str, setup: str, challenge: list[str]) -> Problem:
    task_id = row["task_id"]
    if not isinstance(task_id, int):
        raise BadRowError(f"task_id must be an int, got {task_id!r}")
    code, tests = row.get("code"), _str_list(row, "test_list")
    if not isinstance(code, str) or not code.strip():
        raise BadRowError("field 'code' missing or empty")
    if not tests:
        raise BadRowError("empty test_list")
    if not isinstance(text, str) or not text.strip():
        raise BadRowError("empty task text")
    head = setup.strip() + "\n" if setup.strip() else ""
    asserts = tuple({"assert": head + t.strip() + "\n"} for t in tests + challenge)
    prompt = f"{text.strip()}\nYour code should pass this test:\n{tests[0].strip()}"
    return Problem(
        id=f"mbpp/{task_id}", source="mbpp", prompt=prompt, mode="assert",
        public_tests=asserts[:1], private_tests=asserts,
        fn_name=_called_function(tests[0], code), solutions=(code.replace("\r\n", "\n"),),
        difficulty="unknown", split=mbpp_split(task_id))


def mbpp_problem(row: dict, include_challenge_tests: bool = False) -> Problem:
    """A full-MBPP row -> `Problem`."""
    setup = row.get("test_setup_code") or ""
    if not isinstance(setup, str):
        raise BadRowError("test_setup_code must be a string")
    challenge = _str_list(row, "challenge_test_list") if include_challenge_tests else []
    return _mbpp_problem(row, row.get("text"), setup, challenge)


def mbpp_sanitized_problem(row: dict) -> Problem:
    """A sanitized-MBPP row -> `Problem`."""
    return _mbpp_problem(row, row.get("prompt"), "\n".join(_str_list(row, "test_imports")), [])


def _load(path, split, on_bad_row, config, to_problem):
    if split is not None and split not in SPLITS:
        raise ValueError(f"mbpp split must be one of {SPLITS}, got {split!r}")
    if path:
        rows = read_rows(path)
    else:
        rows = [r for s in ([split] if split else SPLITS)
                for r in read_rows(HUB_ID, split=s, hub_config=config)]
    problems = convert_rows(rows, to_problem, on_bad_row=on_bad_row,
                            row_id=lambda r: f"mbpp/{r.get('task_id')}")
    return [p for p in problems if split is None or p.split == split]


def load_mbpp(split: str | None = None, path: str | None = None, *, on_bad_row: str = "skip",
              include_challenge_tests: bool = False) -> list[Problem]:
    """Full MBPP (974 problems upstream), optionally one split."""
    return _load(path, split, on_bad_row, "full",
                 lambda r: mbpp_problem(r, include_challenge_tests))


def load_mbpp_sanitized(split: str | None = None, path: str | None = None, *,
                        on_bad_row: str = "skip") -> list[Problem]:
    """Sanitized MBPP (427 problems upstream), optionally one split."""
    return _load(path, split, on_bad_row, "sanitized", mbpp_sanitized_problem)
