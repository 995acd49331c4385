"""The `Problem` record every loader produces and the sandbox contract consumes.

A problem carries its tests as sandbox test dicts (the v1 HTTP contract of ARCHITECTURE.md):

- ``mode="stdio"``:  ``{"stdin": str, "expected_stdout": str}``
- ``mode="call"``:   ``{"args": list, "expected": Any}`` (needs ``fn_name``)
- ``mode="assert"``: ``{"assert": str}`` (Python source run after the program)

`validate_problem` checks a record against that contract; loaders call it on every row so a
malformed row is reported by id instead of being silently mangled.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

SOURCES = ("humaneval", "mbpp", "apps", "codecontests", "starter")
MODES = ("stdio", "call", "assert")
TEST_KEYS = {
    "stdio": ("stdin", "expected_stdout"),
    "call": ("args", "expected"),
    "assert": ("assert",),
}


class BadRowError(ValueError):
    """A dataset row that cannot be turned into a valid `Problem` (message names the row id)."""


@dataclasses.dataclass(frozen=True)
class Problem:
    """One programming problem with its hidden and shown tests (docs/interfaces.md)."""

    id: str
    source: str
    prompt: str
    mode: str
    public_tests: tuple[dict, ...]
    private_tests: tuple[dict, ...]
    fn_name: str | None = None
    starter_code: str = ""
    solutions: tuple[str, ...] = ()
    difficulty: str = "unknown"
    split: str = ""

    def tests(self, which: str = "all") -> tuple[dict, ...]:
        """Tests to run: "public" (shown to the model), "private" (grading), or "all".

        "all" is the private tests followed by any public test not already among them
        (loaders usually make private a superset of public, so "all" == private then).
        """
        if which == "public":
            return self.public_tests
        if which == "private":
            return self.private_tests
        if which == "all":
            seen = {_test_key(t) for t in self.private_tests}
            extra = tuple(t for t in self.public_tests if _test_key(t) not in seen)
            return self.private_tests + extra
        raise ValueError(f"which must be 'all', 'public' or 'private', got {which!r}")

    def to_json(self) -> dict:
        """A JSON-serialisable dict (tuples become lists); `problem_from_json` inverts it."""
        return dataclasses.asdict(self)


def problem_from_json(row: dict) -> Problem:
    """Rebuild a `Problem` from `Problem.to_json()` output (e.g. a line of the starter jsonl)."""
    fields = {f.name for f in dataclasses.fields(Problem)}
    unknown = set(row) - fields
    if unknown:
        raise BadRowError(f"problem {row.get('id')!r}: unknown fields {sorted(unknown)}")
    kwargs = dict(row)
    for name in ("public_tests", "private_tests", "solutions"):
        kwargs[name] = tuple(kwargs.get(name, ()))
    return validate_problem(Problem(**kwargs))


def _test_key(test: dict) -> str:
    return json.dumps(test, sort_keys=True, default=repr)


def validate_test(test: Any, mode: str, problem_id: str) -> None:
    """Raise `BadRowError` unless `test` is a sandbox test dict for `mode`."""
    if not isinstance(test, dict):
        raise BadRowError(f"problem {problem_id!r}: test is {type(test).__name__}, not a dict")
    want = TEST_KEYS[mode]
    if tuple(sorted(test)) != tuple(sorted(want)):
        raise BadRowError(
            f"problem {problem_id!r}: {mode} test needs keys {list(want)}, got {sorted(test)}")
    if mode == "stdio":
        for key in want:
            if not isinstance(test[key], str):
                raise BadRowError(f"problem {problem_id!r}: stdio test {key!r} must be a str")
    elif mode == "call":
        if not isinstance(test["args"], list):
            raise BadRowError(f"problem {problem_id!r}: call test 'args' must be a list")
        try:
            json.dumps(test)
        except (TypeError, ValueError) as err:
            raise BadRowError(f"problem {problem_id!r}: call test is not JSON: {err}") from err
    elif not isinstance(test["assert"], str) or not test["assert"].strip():
        raise BadRowError(f"problem {problem_id!r}: assert test must be non-empty source")


def validate_problem(problem: Problem) -> Problem:
    """Check a `Problem` against the contract; return it unchanged or raise `BadRowError`."""
    pid = problem.id
    if not isinstance(pid, str) or not pid:
        raise BadRowError(f"problem id must be a non-empty str, got {pid!r}")
    if problem.source not in SOURCES:
        raise BadRowError(f"problem {pid!r}: source {problem.source!r} not in {SOURCES}")
    if problem.mode not in MODES:
        raise BadRowError(f"problem {pid!r}: mode {problem.mode!r} not in {MODES}")
    if not isinstance(problem.prompt, str) or not problem.prompt.strip():
        raise BadRowError(f"problem {pid!r}: empty prompt")
    if problem.mode == "call" and not problem.fn_name:
        raise BadRowError(f"problem {pid!r}: call mode needs fn_name")
    if not problem.private_tests:
        raise BadRowError(f"problem {pid!r}: no private tests")
    for test in problem.public_tests + problem.private_tests:
        validate_test(test, problem.mode, pid)
    for solution in problem.solutions:
        if not isinstance(solution, str):
            raise BadRowError(f"problem {pid!r}: solution is {type(solution).__name__}, not str")
    return problem
