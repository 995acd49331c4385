"""The shipped starter set (`rltf_jax/data/starter/problems.jsonl`), splits "train" / "heldout" / "unseen".

"heldout" holds new instances of training families; "unseen" holds whole families that neither
other split has (see `rltf_jax.data.starter.generate`).
"""

from __future__ import annotations

import json
import pathlib

from rltf_jax.data.problem import Problem, problem_from_json
from rltf_jax.data.rows import convert_rows

STARTER_FILE = pathlib.Path(__file__).resolve().parent.parent / "starter" / "problems.jsonl"
SPLITS = ("train", "heldout", "unseen")


def load_starter(split: str | None = None, path: str | None = None, *,
                 on_bad_row: str = "skip") -> list[Problem]:
    """Starter problems (all, or one split) from the shipped file or a file in its format."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"starter split must be one of {SPLITS}, got {split!r}")
    with open(path or STARTER_FILE) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    problems = convert_rows(rows, problem_from_json, on_bad_row=on_bad_row,
                            row_id=lambda r: repr(r.get("id")))
    return [p for p in problems if split is None or p.split == split]
