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
        assert len(problem.public_tests) == 2 and problem.public_tests[0] == problem.private_tests[0]
        assert all(test in problem.private_tests for test in problem.public_tests)
        assert len(problem.private_tests) >= 3
        namespace = {}
        exec(problem.solutions[0], namespace)
        for test in problem.tests("all"):
            got = json.loads(json.dumps(namespace[problem.fn_name](*test["args"])))
            assert got == test["expected"], (problem.id, test)


def _expected(tests) -> set[str]:
    return {json.dumps(t["expected"], sort_keys=True) for t in tests}


def test_no_constant_function_passes_the_public_or_the_private_tests():
    # Two public examples with different answers: feedback catches `return False` / `return 0`.
    for problem in load_problems("starter"):
        assert len(_expected(problem.public_tests)) == 2, problem.id
        assert len(_expected(problem.private_tests)) >= 2, problem.id


def test_word_level_tasks_are_tested_on_texts_of_several_words():
    # reverse_words on single words is the identity: its tests would pass `return text`.
    for problem in load_problems("starter"):
        if problem.id.split("/")[1] in ("reverse_words", "capitalize_words", "count_words"):
            texts = [test["args"][0] for test in problem.private_tests]
            assert sum(" " in text for text in texts) >= len(texts) - 1, problem.id
            assert any(test["expected"] != test["args"][0] for test in problem.public_tests), problem.id
