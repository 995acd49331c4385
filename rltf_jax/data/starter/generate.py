"""Generate the starter problem set: ``python -m rltf_jax.data.starter.generate``.

Expands every family of `catalog.ALL_FAMILIES` into its variants (name × phrasing × constant),
computes each variant's expected outputs by running its reference solution, and writes
`problems.jsonl` next to this file (one `Problem.to_json()` per line).

Splits:

- ``unseen``: about a quarter of the families, all their variants. Chosen with a fixed seed within
  each stratum (mode × topic), ``max(1, round(n / 4))`` of a stratum of ``n >= 2`` families, so
  every mode and every topic contributes. No instance of these families is in train or heldout.
- ``heldout``: every 4th problem in the fixed family-by-family order (counted over all families,
  so the first 63 families keep the assignment they had before the unseen split existed): new
  instances of training families.
- ``train``: the rest.

The difficulty field is the family's calibration tier (easy / medium / hard, see catalog.py).
Tests are sandbox dicts: call mode ``{"args": [...], "expected": ...}``, stdio mode
``{"stdin": ..., "expected_stdout": ...}``, with at least two different expected values; two of
them are public (the first, and the first with another expected value), all are private. A stdio
statement ends with its first public test as an example. Deterministic: the same code writes the
same file.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import pathlib
import random
import re
import sys

from rltf_jax.data.problem import Problem, validate_problem
from rltf_jax.data.starter.catalog import ALL_FAMILIES, tier, variants
from rltf_jax.data.starter.families import Family

HELDOUT_EVERY = 4
UNSEEN_FRACTION = 0.25
UNSEEN_SEED = "starter-unseen-0"
MAX_DRAWS = 20
OUTPUT = pathlib.Path(__file__).with_name("problems.jsonl")


def _variants(family: Family) -> list[tuple[str, str, object]]:
    """Distinct ``(fn_name, request, k)`` combinations, at most ``variants(family)``.

    A stdio family has no function name; its variants cycle through phrasings × constants and
    differ in their tests (each variant draws its own inputs), hence in the example shown.
    """
    seen, out = set(), []
    wanted = variants(family)
    combos = len(family.names) * len(family.requests) * len(family.ks)
    for i in range(combos * (2 if family.mode == "call" else wanted)):
        k = family.ks[i % len(family.ks)]
        name = family.names[i % len(family.names)].format(k=k)
        request = family.requests[(i // len(family.names)) % len(family.requests)]
        request = request.format(name=name, k=k, params=family.params)
        if family.mode == "stdio" or (name, request) not in seen:
            seen.add((name, request))
            out.append((name, request, k))
        if len(out) == wanted:
            break
    return out


def _solution(family: Family, name: str, request: str, k) -> tuple[str, str]:
    """(starter_code, reference solution source)."""
    if family.mode == "stdio":
        return "", family.body.format(k=k) + "\n"
    doc = re.sub(r"^Write (a )?(Python )?function `[^`]*` that ", "", request).replace('"', "'")
    doc = doc[:1].upper() + doc[1:]
    starter = f'def {name}({family.params}):\n    """{doc}"""\n'
    return starter, starter + family.body.format(k=k) + "\n"


def _run_program(source: str, stdin: str) -> str:
    """What the stdio program `source` prints on `stdin` (our own reference code, in process)."""
    saved = sys.stdin
    sys.stdin, out = io.StringIO(stdin), io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(source, "<reference program>", "exec"), {"__name__": "__main__"})
    finally:
        sys.stdin = saved
    return out.getvalue()


def _run_reference(family: Family, source: str, name: str, inputs: list) -> list[dict]:
    tests, seen = [], set()
    if family.mode == "stdio":
        for stdin in inputs:
            if stdin not in seen:
                seen.add(stdin)
                tests.append({"stdin": stdin, "expected_stdout": _run_program(source, stdin)})
        return tests
    namespace: dict = {}
    exec(compile(source, f"<reference {name}>", "exec"), namespace)  # our own reference code
    for args in inputs:
        key = json.dumps(args)
        if key in seen:
            continue
        seen.add(key)
        expected = namespace[name](*json.loads(key))
        # Round-trip through JSON: what the sandbox will compare against.
        tests.append({"args": json.loads(key), "expected": json.loads(json.dumps(expected))})
    return tests


def expected_values(tests) -> set[str]:
    """The distinct expected answers of call or stdio tests (as canonical JSON text)."""
    return {json.dumps(t["expected"] if "expected" in t else t["expected_stdout"], sort_keys=True)
            for t in tests}


def _varied_tests(family: Family, solution: str, name: str, rng: random.Random, k) -> list[dict]:
    """The reference's tests on the family's inputs, redrawn until two expected values differ.

    A test set whose expected values are all equal is passed by a constant (``return 0``,
    ``print('NO')``): it grades nothing. The same seed gives the same draws.
    """
    for _ in range(MAX_DRAWS):
        tests = _run_reference(family, solution, name, family.inputs(rng, k))
        if len(expected_values(tests)) >= 2:
            return tests
    raise ValueError(f"family {family.key!r} ({name}): {MAX_DRAWS} draws of inputs all gave tests "
                     "with one expected value; a constant function would pass them")


def _public_tests(tests: list[dict]) -> tuple[dict, ...]:
    """The tests shown to the model (feedback): the first test and the first with another expected value.

    Two examples with different answers, so the feedback of an RLEF episode catches a constant or
    an echo of the input; the rest stay private. All public tests are also private tests.
    """
    first = tests[0]
    other = next(t for t in tests[1:] if expected_values([t]) != expected_values([first]))
    return (first, other)


def _stdio_statement(request: str, example: dict) -> str:
    return (f"{request}\n\nExample input:\n{example['stdin']}"
            f"Example output:\n{example['expected_stdout']}").rstrip("\n")


def unseen_families(families=ALL_FAMILIES) -> frozenset[str]:
    """Keys of the families held out whole: per stratum (mode, topic), a seeded draw of a quarter.

    Each family's rank in its stratum is the SHA-256 of ``UNSEEN_SEED/key``, so adding or dropping
    a family moves the draw of its own stratum only.
    """
    strata: dict[tuple[str, str], list[str]] = {}
    for family in families:
        strata.setdefault((family.mode, family.topic), []).append(family.key)
    chosen = set()
    for keys in strata.values():
        if len(keys) < 2:
            continue
        ranked = sorted(keys, key=lambda key: hashlib.sha256(f"{UNSEEN_SEED}/{key}".encode()).hexdigest())
        chosen.update(ranked[:max(1, round(len(keys) * UNSEEN_FRACTION))])
    return frozenset(chosen)


def build_problems() -> list[Problem]:
    """All starter problems, in a fixed order, with their split."""
    problems = []
    unseen = unseen_families()
    position = 0  # across families: every HELDOUT_EVERY-th variant is held out
    for family in ALL_FAMILIES:
        for v, (name, request, k) in enumerate(_variants(family)):
            rng = random.Random(f"{family.key}/{v}")
            starter, solution = _solution(family, name, request, k)
            tests = _varied_tests(family, solution, name, rng, k)
            public = _public_tests(tests)
            position += 1
            split = "heldout" if position % HELDOUT_EVERY == 0 else "train"
            problems.append(validate_problem(Problem(
                id=f"starter/{family.key}/{v}", source="starter",
                prompt=_stdio_statement(request, public[0]) if family.mode == "stdio" else request,
                mode=family.mode, public_tests=public, private_tests=tuple(tests),
                fn_name=name or None, starter_code=starter, solutions=(solution,),
                difficulty=tier(family), split="unseen" if family.key in unseen else split)))
    return problems


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args(argv)
    problems = build_problems()
    with open(args.output, "w") as f:
        for problem in problems:
            f.write(json.dumps(problem.to_json(), sort_keys=True) + "\n")
    counts = {s: sum(p.split == s for p in problems) for s in ("train", "heldout", "unseen")}
    print(f"wrote {len(problems)} problems ({counts['train']} train, {counts['heldout']} heldout, "
          f"{counts['unseen']} unseen) from {len(ALL_FAMILIES)} families "
          f"({len(unseen_families())} unseen) to {args.output}")


if __name__ == "__main__":
    main()
