"""Shared row handling for loaders: read local / hub files through HF `datasets`, and turn rows
into `Problem`s with the skip-or-reject policy for malformed rows."""

from __future__ import annotations

import logging
import os
from typing import Callable, Iterable

from rltf_jax.data.problem import BadRowError, Problem, validate_problem

log = logging.getLogger(__name__)
ON_BAD_ROW = ("skip", "error")


def read_rows(path_or_hub_id: str, *, split: str = "train", hub_config: str | None = None) -> Iterable[dict]:
    """Rows of a local .jsonl/.json/.jsonl.gz/.parquet file (or folder of them) or a hub dataset."""
    from datasets import load_dataset  # lazy: keeps `import rltf_jax` light

    if os.path.exists(path_or_hub_id):
        files = _data_files(path_or_hub_id)
        fmt = "parquet" if files[0].endswith(".parquet") else "json"
        return load_dataset(fmt, data_files=files, split="train")
    if path_or_hub_id.endswith((".jsonl", ".json", ".gz", ".parquet")) or os.sep in path_or_hub_id \
            and path_or_hub_id.count("/") != 1:
        raise FileNotFoundError(f"no such dataset file or folder: {path_or_hub_id}")
    try:
        return load_dataset(path_or_hub_id, hub_config, split=split)
    except ConnectionError as err:
        raise ConnectionError(f"cannot reach the hub for {path_or_hub_id!r} ({err}); offline, pass local "
                              "files in the upstream format as NAME:PATH, e.g. mbpp:mbpp.jsonl") from err


def _data_files(path: str) -> list[str]:
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path)
                       if n.endswith((".jsonl", ".json", ".jsonl.gz", ".parquet")))
        if not names:
            raise FileNotFoundError(f"no .jsonl/.json/.parquet files in {path}")
        return [os.path.join(path, n) for n in names]
    if not path.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz", ".parquet")):
        raise ValueError(f"{path}: expected a .jsonl, .json(.gz) or .parquet file")
    return [path]


def convert_rows(rows: Iterable[dict], to_problem: Callable[[dict], Problem], *,
                 on_bad_row: str = "skip", row_id: Callable[[dict], str] = lambda r: "?") -> list[Problem]:
    """Apply `to_problem` to every row, validating each result.

    A row that fails (`BadRowError`, or a KeyError/TypeError/ValueError from a missing or
    mistyped field) is logged with its id and skipped, or re-raised as `BadRowError` when
    ``on_bad_row="error"``.
    """
    if on_bad_row not in ON_BAD_ROW:
        raise ValueError(f"on_bad_row must be one of {ON_BAD_ROW}, got {on_bad_row!r}")
    problems, seen = [], set()
    for index, row in enumerate(rows):
        try:
            problem = validate_problem(to_problem(row))
            if problem.id in seen:
                raise BadRowError(f"duplicate problem id {problem.id!r}")
        except (BadRowError, KeyError, TypeError, ValueError) as err:
            try:
                rid = row_id(row)
            except Exception:  # the id itself may be what is malformed
                rid = f"row {index}"
            message = f"bad row {rid}: {type(err).__name__}: {err}"
            if on_bad_row == "error":
                raise BadRowError(message) from err
            log.warning("skipping %s", message)
            continue
        seen.add(problem.id)
        problems.append(problem)
    return problems
