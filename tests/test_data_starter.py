"""The shipped starter set: size, fixed stratified split, tests that the references pass."""

import collections
import json

from rltf_jax.data import load_problems
from rltf_jax.data.starter.generate import OUTPUT, build_problems


def test_size_and_split_are_fixed_and_stratified():
    problems = load_problems("starter")
    train, heldout = load_problems("starter:train"), load_problems("starter:heldout")
    assert len(problems) >= 200
    assert len(train) + len(heldout) == len(problems)
    assert 0.2 <= len(heldout) / len(problems) <= 0.3
    assert len({p.id for p in problems}) == len(problems)
    family = lambda p: p.id.rsplit("/", 1)[0]
    sizes = collections.Counter(family(p) for p in problems)
    held_families = {family(p) for p in heldout}
    train_families = {family(p) for p in train}
    # Every family with 4+ variants is in both parts; each tier is in both parts.
    assert {f for f, n in sizes.items() if n >= 4} <= held_families & train_families
    assert {p.difficulty for p in heldout} == {p.difficulty for p in train} == {"easy", "medium", "hard"}
    # No held-out prompt is also a training prompt.
    assert not {p.prompt for p in heldout} & {p.prompt for p in train}


def test_shipped_file_is_what_the_generator_writes():
    shipped = [json.loads(l) for l in OUTPUT.read_text().splitlines()]
    assert shipped == [json.loads(json.dumps(p.to_json())) for p in build_problems()]


def test_reference_solutions_pass_their_tests():
    for problem in load_problems("starter"):
        assert problem.mode == "call" and problem.fn_name
        assert problem.public_tests == problem.private_tests[:1]
        assert len(problem.private_tests) >= 3
        namespace = {}
        exec(problem.solutions[0], namespace)
        for test in problem.tests("all"):
            got = json.loads(json.dumps(namespace[problem.fn_name](*test["args"])))
            assert got == test["expected"], (problem.id, test)
