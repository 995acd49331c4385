"""`load_problems(spec)`: one entry point for every problem source.

Spec grammar (also what ``--dataset`` of the evaluate CLI takes):

- ``NAME``            all problems of a registered source, e.g. ``humaneval``, ``starter``
- ``NAME:SPLIT``      one split, e.g. ``starter:heldout``, ``mbpp:test``, ``apps:train``
- ``NAME:PATH``       local file(s) in that source's upstream format, e.g. ``mbpp:my.jsonl``
- ``NAME:PATH:SPLIT`` local file(s), then one split (sources whose split comes from the row)

A part after ``NAME:`` is a path when it names an existing file/folder or contains ``/`` or a file
extension; otherwise it is a split name. Sources: humaneval, mbpp, mbpp-sanitized, apps,
codecontests, starter.
"""

from __future__ import annotations

import importlib
import os
from typing import Callable

from rltf_jax.data.problem import Problem

# source name -> (module under rltf_jax.data.loaders, function); imported only when used.
_LOADERS = {
    "humaneval": ("humaneval", "load_humaneval"),
    "mbpp": ("mbpp", "load_mbpp"),
    "mbpp-sanitized": ("mbpp", "load_mbpp_sanitized"),
    "apps": ("apps", "load_apps"),
    "codecontests": ("codecontests", "load_codecontests"),
    "starter": ("starter", "load_starter"),
}


def _loader(name: str) -> Callable[..., list[Problem]]:
    module, function = _LOADERS[name]
    return getattr(importlib.import_module(f"rltf_jax.data.loaders.{module}"), function)


SOURCES = tuple(_LOADERS)


def _looks_like_path(part: str) -> bool:
    return os.path.exists(part) or "/" in part or os.sep in part or \
        part.endswith((".jsonl", ".json", ".gz", ".parquet"))


def parse_spec(spec: str) -> tuple[str, str | None, str | None]:
    """``spec`` -> ``(source, path or None, split or None)``; ValueError naming the problem."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"dataset spec must be a non-empty string, got {spec!r}")
    name, _, rest = spec.partition(":")
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r} in spec {spec!r}; known: {', '.join(SOURCES)}")
    if not rest:
        return name, None, None
    head, _, tail = rest.rpartition(":")
    if head and _looks_like_path(head) and not _looks_like_path(tail):
        return name, head, tail
    if _looks_like_path(rest):
        return name, rest, None
    return name, None, rest


def load_problems(spec: str, *, on_bad_row: str = "skip") -> list[Problem]:
    """Problems for a dataset spec (see the module docstring).

    ``on_bad_row``: "skip" logs and drops a malformed row (named by its id); "error" raises
    `BadRowError` on the first one.
    """
    name, path, split = parse_spec(spec)
    return _loader(name)(split=split, path=path, on_bad_row=on_bad_row)
