"""Generate the starter problem set: ``python -m rltf_jax.data.starter.generate``.

Expands every `Family` of `families.py` into up to `MAX_VARIANTS` distinct variants (name ×
phrasing × constant), computes each variant's expected outputs by running its reference solution,
and writes `problems.jsonl` next to this file (one `Problem.to_json()` per line).

Split, stratified by family: in every family the last variant is held out, and in every other
family (odd index) the second-to-last too, giving about 25% held out (all families appear in both
parts). Tests are call-mode sandbox dicts ``{"args": [...], "expected": ...}``; the first is the
public test, all of them are private. Deterministic: the same code writes the same file.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import re

from rltf_jax.data.problem import Problem, validate_problem
from rltf_jax.data.starter.families import FAMILIES, Family

MAX_VARIANTS = 6
OUTPUT = pathlib.Path(__file__).with_name("problems.jsonl")


def _variants(family: Family) -> list[tuple[str, str, object]]:
    """Distinct ``(fn_name, request, k)`` combinations, at most MAX_VARIANTS."""
    seen, out = set(), []
    count = max(len(family.names), len(family.requests), len(family.ks))
    for i in range(max(MAX_VARIANTS, count) * 2):
        k = family.ks[i % len(family.ks)]
        name = family.names[i % len(family.names)].format(k=k)
        request = family.requests[(i // len(family.names)) % len(family.requests)]
        request = request.format(name=name, k=k, params=family.params)
        if (name, request) not in seen:
            seen.add((name, request))
            out.append((name, request, k))
        if len(out) == MAX_VARIANTS:
            break
    return out


def _solution(family: Family, name: str, request: str, k) -> tuple[str, str]:
    """(starter_code, reference solution source)."""
    doc = re.sub(r"^Write (a )?(Python )?function `[^`]*` that ", "", request).replace('"', "'")
    doc = doc[:1].upper() + doc[1:]
    starter = f'def {name}({family.params}):\n    """{doc}"""\n'
    return starter, starter + family.body.format(k=k) + "\n"


def _run_reference(source: str, name: str, args_list: list) -> list[dict]:
    namespace: dict = {}
    exec(compile(source, f"<reference {name}>", "exec"), namespace)  # our own reference code
    tests, seen = [], set()
    for args in args_list:
        key = json.dumps(args)
        if key in seen:
            continue
        seen.add(key)
        expected = namespace[name](*json.loads(key))
        # Round-trip through JSON: what the sandbox will compare against.
        tests.append({"args": json.loads(key), "expected": json.loads(json.dumps(expected))})
    return tests


def build_problems() -> list[Problem]:
    """All starter problems, in a fixed order, with their split."""
    problems = []
    for family_index, family in enumerate(FAMILIES):
        variants = _variants(family)
        heldout = {len(variants) - 1}
        if family_index % 2 == 1 and len(variants) > 3:
            heldout.add(len(variants) - 2)
        for v, (name, request, k) in enumerate(variants):
            rng = random.Random(f"{family.key}/{v}")
            starter, solution = _solution(family, name, request, k)
            tests = _run_reference(solution, name, family.inputs(rng, k))
            problems.append(validate_problem(Problem(
                id=f"starter/{family.key}/{v}", source="starter", prompt=request, mode="call",
                public_tests=tuple(tests[:1]), private_tests=tuple(tests), fn_name=name,
                starter_code=starter, solutions=(solution,), difficulty="introductory",
                split="heldout" if v in heldout else "train")))
    return problems


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args(argv)
    problems = build_problems()
    with open(args.output, "w") as f:
        for problem in problems:
            f.write(json.dumps(problem.to_json(), sort_keys=True) + "\n")
    held = sum(p.split == "heldout" for p in problems)
    print(f"wrote {len(problems)} problems ({len(problems) - held} train, {held} heldout) "
          f"from {len(FAMILIES)} families to {args.output}")


if __name__ == "__main__":
    main()
