"""The shipped starter set: size, fixed splits (train / heldout / unseen families), tests that the
references pass (in process, and the stdio ones through the real sandbox service)."""

import collections
import io
import json
import pathlib
import sys
from contextlib import redirect_stdout

import pytest

from rltf_jax.data import load_problems
from rltf_jax.data.starter.catalog import ALL_FAMILIES, WORD_LEVEL
from rltf_jax.data.starter.families import TOPICS
from rltf_jax.data.starter.generate import OUTPUT, build_problems, expected_values, unseen_families


def _family(problem) -> str:
    return problem.id.split("/")[1]


@pytest.fixture(scope="module")
def problems():
    return load_problems("starter")


def test_three_splits_load_and_partition_the_set(problems):
    splits = {s: load_problems(f"starter:{s}") for s in ("train", "heldout", "unseen")}
    assert sum(len(v) for v in splits.values()) == len(problems) >= 400
    assert len({p.id for p in problems}) == len(problems)
    assert all(p.split == s for s, v in splits.items() for p in v)
    train, heldout, unseen = (splits[s] for s in ("train", "heldout", "unseen"))
    assert 0.2 <= len(heldout) / (len(train) + len(heldout)) <= 0.3
    # No held-out prompt is also a training prompt.
    assert not {p.prompt for p in heldout} & {p.prompt for p in train}


def test_at_least_150_families_and_every_mode_and_topic(problems):
    families = {_family(p) for p in problems}
    assert len(families) == len(ALL_FAMILIES) >= 150
    assert {f.mode for f in ALL_FAMILIES} == {"call", "stdio"}
    assert {f.topic for f in ALL_FAMILIES} == set(TOPICS)
    assert {p.mode for p in problems} == {"call", "stdio"}
    assert sum(p.mode == "stdio" for p in problems) >= 40


def test_unseen_families_are_a_stratified_quarter_disjoint_from_train_and_heldout(problems):
    by_split = collections.defaultdict(set)
    for p in problems:
        by_split[p.split].add(_family(p))
    assert by_split["unseen"] == set(unseen_families())
    assert not by_split["unseen"] & (by_split["train"] | by_split["heldout"])
    assert 0.2 <= len(by_split["unseen"]) / len(ALL_FAMILIES) <= 0.3
    unseen = [f for f in ALL_FAMILIES if f.key in by_split["unseen"]]
    # Every mode and every topic contributes, and so does every stratum of 2+ families.
    assert {f.mode for f in unseen} == {"call", "stdio"}
    assert {f.topic for f in unseen} == set(TOPICS)
    strata = collections.Counter((f.mode, f.topic) for f in ALL_FAMILIES)
    assert {s for s, n in strata.items() if n >= 2} == {(f.mode, f.topic) for f in unseen}
    # Training families with 4+ variants are in both train and heldout; each tier is in both.
    sizes = collections.Counter(_family(p) for p in problems if p.split != "unseen")
    assert {f for f, n in sizes.items() if n >= 4} <= by_split["train"] & by_split["heldout"]
    tiers = {s: {p.difficulty for p in problems if p.split == s} for s in ("train", "heldout", "unseen")}
    assert tiers["train"] == tiers["heldout"] == tiers["unseen"] == {"easy", "medium", "hard"}


def test_shipped_file_is_what_the_generator_writes(tmp_path):
    from rltf_jax.data.starter.generate import main
    main(["--output", str(tmp_path / "problems.jsonl")])
    assert (tmp_path / "problems.jsonl").read_bytes() == OUTPUT.read_bytes()
    shipped = [json.loads(l) for l in OUTPUT.read_text().splitlines()]
    assert shipped == [json.loads(json.dumps(p.to_json())) for p in build_problems()]


def _run_stdio(source: str, stdin: str) -> str:
    saved, sys.stdin = sys.stdin, io.StringIO(stdin)
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            exec(source, {"__name__": "__main__"})
    finally:
        sys.stdin = saved
    return out.getvalue()


def test_reference_solutions_pass_their_tests(problems):
    for problem in problems:
        assert len(problem.public_tests) == 2 and problem.public_tests[0] == problem.private_tests[0]
        assert all(test in problem.private_tests for test in problem.public_tests)
        assert len(problem.private_tests) >= 3
        if problem.mode == "stdio":
            assert problem.fn_name is None and not problem.starter_code
            example = problem.public_tests[0]
            assert problem.prompt.endswith(f"Example input:\n{example['stdin']}Example output:\n"
                                           + example["expected_stdout"].rstrip("\n"))
            for test in problem.tests("all"):
                assert _run_stdio(problem.solutions[0], test["stdin"]) == test["expected_stdout"], problem.id
            continue
        assert problem.mode == "call" and problem.fn_name
        namespace = {}
        exec(problem.solutions[0], namespace)
        for test in problem.tests("all"):
            got = json.loads(json.dumps(namespace[problem.fn_name](*test["args"])))
            assert got == test["expected"], (problem.id, test)


def test_stdio_reference_solutions_pass_in_the_real_sandbox(problems):
    from rltf_jax.evaluation.single_turn import grade_programs
    from rltf_jax.env.sandbox_client import SandboxClient, local_sandbox
    stdio = [p for p in problems if p.mode == "stdio"]
    wrong = {"stdio_add": "print(0)\n", "stdio_reverse": "print(input())\n"}
    broken = [next(p for p in stdio if _family(p) == key) for key in wrong]
    with local_sandbox() as url:
        client = SandboxClient(url)
        verdicts = grade_programs(client, stdio, [[p.solutions[0]] for p in stdio], limits={"timeout_s": 5.0})
        broken_verdicts = grade_programs(client, broken, [[wrong[_family(p)]] for p in broken])
    assert {p.id: v[0] for p, v in zip(stdio, verdicts)} == {p.id: "pass" for p in stdio}
    assert [v[0] for v in broken_verdicts] == ["wrong_answer", "wrong_answer"]


def test_no_constant_program_passes_the_public_or_the_private_tests(problems):
    # Two public examples with different answers: feedback catches `return False` / `print(0)`.
    for problem in problems:
        assert len(expected_values(problem.public_tests)) == 2, problem.id
        assert len(expected_values(problem.private_tests)) >= 2, problem.id


def test_word_level_tasks_are_tested_on_texts_of_several_words(problems):
    # reverse_words on single words is the identity: its tests would pass `return text`.
    assert {"reverse_words", "capitalize_words", "count_words", "stdio_count_words"} <= set(WORD_LEVEL)
    for problem in problems:
        if _family(problem) in WORD_LEVEL:
            texts = [t["args"][0] if problem.mode == "call" else t["stdin"].strip()
                     for t in problem.private_tests]
            assert sum(" " in text for text in texts) >= len(texts) - 1, problem.id
            if problem.mode == "call":
                assert any(t["expected"] != t["args"][0] for t in problem.public_tests), problem.id


def test_calibration_script_runs_stdio_tests_locally(problems):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
    from starter_calibration import run_tests_locally
    stdio = [p for p in problems if p.mode == "stdio"][:3]
    assert [run_tests_locally(p, p.solutions[0]) for p in stdio] == [True] * 3
    assert [run_tests_locally(p, "print(0)\n") for p in stdio] == [False] * 3
