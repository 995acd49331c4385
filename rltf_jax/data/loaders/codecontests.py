"""CodeContests (Li et al. 2022, AlphaCode) in the HF ``deepmind/code_contests`` row format.

Rows: ``name, description, public_tests, private_tests, generated_tests`` (each
``{"input": [str], "output": [str]}``), ``solutions`` (``{"language": [int], "solution": [str]}``),
``difficulty`` (int enum), ``source``, ... All problems are stdio. Public tests are the real public
tests; private tests are ``private_tests`` + ``generated_tests`` (the latter can be left out with
``include_generated=False``). Reference solutions: the Python 3 ones (language 3). Splits: "train",
"valid", "test" (from the hub split or the ``NAME:PATH:SPLIT`` spec).
"""

from __future__ import annotations

from rltf_jax.data.problem import BadRowError, Problem
from rltf_jax.data.rows import convert_rows, read_rows

HUB_ID = "deepmind/code_contests"
SPLITS = ("train", "valid", "test")
PYTHON3 = 3
# contest_problem.proto: Difficulty enum.
_NAMED = ("unknown", "easy", "medium", "hard", "harder", "hardest", "external")


def difficulty_name(value) -> str:
    """The proto enum value -> a name ("easy", ..., or the Codeforces letter "A".."V")."""
    if isinstance(value, str):
        return value
    if not isinstance(value, int) or value < 0:
        raise BadRowError(f"difficulty must be a non-negative int, got {value!r}")
    if value < len(_NAMED):
        return _NAMED[value]
    letter = value - len(_NAMED)
    if letter >= 22:
        raise BadRowError(f"difficulty {value} outside the enum")
    return chr(ord("A") + letter)


def _tests(row: dict, key: str) -> tuple[dict, ...]:
    block = row.get(key)
    if block is None:
        return ()
    if not isinstance(block, dict) or not isinstance(block.get("input"), list) \
            or not isinstance(block.get("output"), list):
        raise BadRowError(f"{key} must be {{'input': [str], 'output': [str]}}")
    if len(block["input"]) != len(block["output"]):
        raise BadRowError(f"{key}: {len(block['input'])} inputs but {len(block['output'])} outputs")
    for value in block["input"] + block["output"]:
        if not isinstance(value, str):
            raise BadRowError(f"{key}: test input/output must be strings")
    return tuple({"stdin": i, "expected_stdout": o} for i, o in zip(block["input"], block["output"]))


def codecontests_problem(row: dict, split: str = "", include_generated: bool = True) -> Problem:
    """One CodeContests row -> `Problem`."""
    name, description = row.get("name"), row.get("description")
    if not isinstance(name, str) or not name.strip():
        raise BadRowError("missing name")
    if not isinstance(description, str) or not description.strip():
        raise BadRowError("empty description")
    public = _tests(row, "public_tests")
    private = _tests(row, "private_tests") + (_tests(row, "generated_tests") if include_generated else ())
    if not private:
        private = public
    solutions = row.get("solutions") or {"language": [], "solution": []}
    python3 = tuple(s for lang, s in zip(solutions.get("language", []), solutions.get("solution", []))
                    if lang == PYTHON3)
    return Problem(
        id=f"codecontests/{name}", source="codecontests", prompt=description, mode="stdio",
        public_tests=public, private_tests=private, solutions=python3,
        difficulty=difficulty_name(row.get("difficulty", 0)), split=split)


def load_codecontests(split: str | None = None, path: str | None = None, *, on_bad_row: str = "skip",
                      include_generated: bool = True) -> list[Problem]:
    """CodeContests problems: a local file (labelled with ``split`` if given) or the hub splits."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"codecontests split must be one of {SPLITS}, got {split!r}")
    problems = []
    for s in ([split or ""] if path else ([split] if split else list(SPLITS))):
        rows = read_rows(path) if path else read_rows(HUB_ID, split=s)
        problems += convert_rows(rows, lambda r, s=s: codecontests_problem(r, s, include_generated),
                                 on_bad_row=on_bad_row, row_id=lambda r: repr(r.get("name")))
    return problems
