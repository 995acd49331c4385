"""Generate the starter problem set: ``python -m rltf_jax.data.starter.generate``.

Expands every `Family` of `families.py` into up to `MAX_VARIANTS` distinct variants (name ×
phrasing × constant), computes each variant's expected outputs by running its reference solution,
and writes `problems.jsonl` next to this file (one `Problem.to_json()` per line).

Split: every 4th problem in the fixed family-by-family order is held out (25%), so each family
contributes about a quarter of its variants and every family with 4+ variants appears in both parts;
the difficulty field is the family's calibration tier (easy / medium / hard, see families.py). Tests are call-mode sandbox dicts ``{"args": [...], "expected": ...}``, with at least two
different expected values; two of them are public (the first, and the first with another expected
value), all of them are private. Deterministic: the same code writes the same file.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import re

from rltf_jax.data.problem import Problem, validate_problem
from rltf_jax.data.starter.families import DEFAULT_VARIANTS, FAMILIES, VARIANTS, Family

HELDOUT_EVERY = 4
MAX_DRAWS = 20
OUTPUT = pathlib.Path(__file__).with_name("problems.jsonl")


def _variants(family: Family) -> list[tuple[str, str, object]]:
    """Distinct ``(fn_name, request, k)`` combinations, at most ``VARIANTS[family.key]``."""
    seen, out = set(), []
    wanted = VARIANTS.get(family.key, DEFAULT_VARIANTS)
    for i in range(len(family.names) * len(family.requests) * len(family.ks) * 2):
        k = family.ks[i % len(family.ks)]
        name = family.names[i % len(family.names)].format(k=k)
        request = family.requests[(i // len(family.names)) % len(family.requests)]
        request = request.format(name=name, k=k, params=family.params)
        if (name, request) not in seen:
            seen.add((name, request))
            out.append((name, request, k))
        if len(out) == wanted:
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


def _expected_values(tests: list[dict]) -> set[str]:
    return {json.dumps(t["expected"], sort_keys=True) for t in tests}


def _varied_tests(family: Family, solution: str, name: str, rng: random.Random, k) -> list[dict]:
    """The reference's tests on the family's inputs, redrawn until two expected values differ.

    A test set whose expected values are all equal is passed by a constant (``return 0``,
    ``return False``): it grades nothing. The same seed gives the same draws.
    """
    for _ in range(MAX_DRAWS):
        tests = _run_reference(solution, name, family.inputs(rng, k))
        if len(_expected_values(tests)) >= 2:
            return tests
    raise ValueError(f"family {family.key!r} ({name}): {MAX_DRAWS} draws of inputs all gave tests "
                     "with one expected value; a constant function would pass them")


def _public_tests(tests: list[dict]) -> tuple[dict, ...]:
    """The tests shown to the model (feedback): the first test and the first with another expected value.

    Two examples with different answers, so the feedback of an RLEF episode catches a constant or
    an echo of the input; the rest stay private. All public tests are also private tests.
    """
    first = tests[0]
    other = next(t for t in tests[1:] if _expected_values([t]) != _expected_values([first]))
    return (first, other)


def build_problems() -> list[Problem]:
    """All starter problems, in a fixed order, with their split."""
    problems = []
    position = 0  # across families: every HELDOUT_EVERY-th variant is held out
    for family in FAMILIES:
        for v, (name, request, k) in enumerate(_variants(family)):
            rng = random.Random(f"{family.key}/{v}")
            starter, solution = _solution(family, name, request, k)
            tests = _varied_tests(family, solution, name, rng, k)
            position += 1
            problems.append(validate_problem(Problem(
                id=f"starter/{family.key}/{v}", source="starter", prompt=request, mode="call",
                public_tests=_public_tests(tests), private_tests=tuple(tests), fn_name=name,
                starter_code=starter, solutions=(solution,), difficulty=_tier(family),
                split="heldout" if position % HELDOUT_EVERY == 0 else "train")))
    return problems


def _tier(family: Family) -> str:
    """The calibration tier as the problem's difficulty: easy / medium / hard."""
    wanted = VARIANTS.get(family.key, DEFAULT_VARIANTS)
    return {2: "easy", 4: "medium"}.get(wanted, "hard")


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
