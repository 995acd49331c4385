"""The packages stay readable: small files with one job, short functions, only subpackages at the top
of rltf_jax (the sandbox service is held to the same lengths).

Data tables (the starter set's problem families) are exempt from the length rules: they are lists of
problems, not logic.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rltf_jax"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
DATA_TABLES = {"data/starter/families.py", "data/starter/families_call.py", "data/starter/families_stdio.py"}
ENTRY_POINTS = {"__init__.py", "train.py", "evaluate.py", "generate.py", "export.py"}


def _modules():
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "sandbox_service").rglob("*.py")]):
        relative = path.relative_to(PACKAGE).as_posix() if path.is_relative_to(PACKAGE) else None
        if relative not in DATA_TABLES:
            yield path.relative_to(ROOT).as_posix(), path


def test_top_level_holds_only_subpackages_and_entry_points():
    files = {p.name for p in PACKAGE.glob("*.py")}
    assert files == ENTRY_POINTS, f"move these into a subpackage: {sorted(files - ENTRY_POINTS)}"


def test_no_file_over_the_line_limit():
    long = {name: n for name, path in _modules() if (n := len(path.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_function_over_the_line_limit():
    long = {}
    for name, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{name}:{node.lineno} {node.name}"] = lines
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
