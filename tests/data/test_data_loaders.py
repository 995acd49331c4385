"""Loaders on fixture files in the upstream formats, the registry's spec grammar, bad rows.

Fixtures (tests/fixtures/): mbpp.jsonl (rows 2, 11, 605 are MBPP's own; 520 and the two bad rows
599 / 700 are written in its format), mbpp_sanitized.json (2 and 606 as upstream, 17 bad: empty
prompt), apps.jsonl (codeparrot/apps rows written for the test: stdin, call-based LeetCode-style
with wrapped outputs, list-of-lines I/O, and a row with empty input_output), codecontests.jsonl and
.parquet (deepmind/code_contests schema; one bad row with mismatched test lists).
"""

import json
import logging
import pathlib

import pytest

from rltf_jax.data import BadRowError, load_problems, parse_spec

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"


def _by_id(problems):
    return {p.id: p for p in problems}


def test_humaneval_from_wheel():
    problems = load_problems("humaneval")
    assert len(problems) == 164
    first = problems[0]
    assert first.id == "HumanEval/0" and first.mode == "assert" and first.split == "test"
    assert first.fn_name == "has_close_elements"
    assert first.starter_code == first.prompt
    assert first.tests("all")[0]["assert"].rstrip().endswith("check(has_close_elements)")
    assert first.solutions[0].startswith(first.prompt)
    assert load_problems("humaneval:test") == problems


def test_mbpp_full_splits_tests_and_setup():
    problems = _by_id(load_problems(f"mbpp:{FIXTURES / 'mbpp.jsonl'}"))
    assert set(problems) == {"mbpp/2", "mbpp/11", "mbpp/520", "mbpp/605"}
    assert [problems[i].split for i in ("mbpp/2", "mbpp/11", "mbpp/520", "mbpp/605")] == \
        ["prompt", "test", "validation", "train"]
    occ = problems["mbpp/11"]
    assert occ.fn_name == "remove_Occ" and occ.mode == "assert"
    assert len(occ.private_tests) == 3 and occ.public_tests == occ.private_tests[:1]
    assert occ.public_tests[0]["assert"].strip() in occ.prompt
    assert "\r" not in occ.solutions[0]
    circle = problems["mbpp/520"]
    assert all(t["assert"].startswith("import math\n") for t in circle.private_tests)
    only_test = load_problems(f"mbpp:{FIXTURES / 'mbpp.jsonl'}:test")
    assert [p.id for p in only_test] == ["mbpp/11"]


def test_mbpp_challenge_tests_are_opt_in():
    from rltf_jax.data.loaders.mbpp import load_mbpp
    with_challenge = _by_id(load_mbpp(path=str(FIXTURES / "mbpp.jsonl"), include_challenge_tests=True))
    assert len(with_challenge["mbpp/11"].private_tests) == 5


def test_mbpp_sanitized_uses_test_imports():
    problems = _by_id(load_problems(f"mbpp-sanitized:{FIXTURES / 'mbpp_sanitized.json'}"))
    assert set(problems) == {"mbpp/2", "mbpp/606"}
    radian = problems["mbpp/606"]
    assert radian.fn_name == "radian_degree" and radian.split == "train"
    assert all(t["assert"].startswith("import math\n") for t in radian.private_tests)


def test_apps_call_and_stdio():
    problems = _by_id(load_problems(f"apps:{FIXTURES / 'apps.jsonl'}:test"))
    assert set(problems) == {"apps/test/4001", "apps/test/17", "apps/test/3012"}
    call = problems["apps/test/17"]
    assert call.mode == "call" and call.fn_name == "maxArea" and call.difficulty == "interview"
    assert call.private_tests[0] == {"args": [[1, 8, 6, 2, 5, 4, 8, 3, 7]], "expected": 49}
    assert call.private_tests[1] == {"args": [[1, 1]], "expected": 1}
    assert call.starter_code.startswith("from typing import *\n\nclass Solution:")
    assert call.solutions[0].startswith("import sys\n")
    stdio = problems["apps/test/4001"]
    assert stdio.mode == "stdio" and stdio.difficulty == "introductory"
    assert stdio.public_tests == ({"stdin": "1 2\n", "expected_stdout": "3\n"},)
    assert len(stdio.private_tests) == 3
    lines = problems["apps/test/3012"]
    assert lines.private_tests[0] == {"stdin": "3", "expected_stdout": "1\n2\n3"}


@pytest.mark.parametrize("name", ["codecontests.jsonl", "codecontests.parquet"])
def test_codecontests_public_private_generated(name):
    problems = _by_id(load_problems(f"codecontests:{FIXTURES / name}:valid"))
    assert set(problems) == {"codecontests/1_A. Double It", "codecontests/2_B. Reverse Words"}
    double = problems["codecontests/1_A. Double It"]
    assert double.mode == "stdio" and double.split == "valid" and double.difficulty == "A"
    assert double.public_tests == ({"stdin": "2\n1\n5\n", "expected_stdout": "2\n10\n"},)
    assert len(double.private_tests) == 3   # 2 private + 1 generated
    assert len(double.tests("all")) == 4
    assert len(double.solutions) == 1 and "print(2 * int(input()))" in double.solutions[0]
    assert problems["codecontests/2_B. Reverse Words"].difficulty == "easy"


def test_bad_rows_are_reported_by_id_and_skipped(caplog):
    with caplog.at_level(logging.WARNING):
        load_problems(f"mbpp:{FIXTURES / 'mbpp.jsonl'}")
        load_problems(f"apps:{FIXTURES / 'apps.jsonl'}")
        load_problems(f"codecontests:{FIXTURES / 'codecontests.jsonl'}")
    text = caplog.text
    assert "mbpp/599" in text and "empty test_list" in text
    assert "mbpp/700" in text and "plus" in text
    assert "apps/4999" in text and "input_output" in text
    assert "3_C. Broken" in text and "2 inputs but 1 outputs" in text


def test_bad_rows_rejected_with_error_option():
    with pytest.raises(BadRowError, match="mbpp/599"):
        load_problems(f"mbpp:{FIXTURES / 'mbpp.jsonl'}", on_bad_row="error")
    with pytest.raises(BadRowError, match="3_C. Broken"):
        load_problems(f"codecontests:{FIXTURES / 'codecontests.parquet'}", on_bad_row="error")
    with pytest.raises(ValueError, match="on_bad_row"):
        load_problems("starter", on_bad_row="ignore")


def test_malformed_starter_row_is_rejected(tmp_path):
    rows = [json.loads(l) for l in open(pathlib.Path(__file__).parents[2] / "rltf_jax/data/starter/problems.jsonl")][:2]
    rows[1]["private_tests"] = [{"args": 3, "expected": 1}]
    path = tmp_path / "starter.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert len(load_problems(f"starter:{path}")) == 1
    with pytest.raises(BadRowError, match=rows[1]["id"]):
        load_problems(f"starter:{path}", on_bad_row="error")


def test_spec_grammar():
    assert parse_spec("mbpp") == ("mbpp", None, None)
    assert parse_spec("starter:heldout") == ("starter", None, "heldout")
    assert parse_spec("mbpp:my_problems.jsonl") == ("mbpp", "my_problems.jsonl", None)
    assert parse_spec("apps:data/test.jsonl:test") == ("apps", "data/test.jsonl", "test")
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        parse_spec("nope:test")
    with pytest.raises(ValueError, match="split"):
        load_problems("starter:validation")
    with pytest.raises(FileNotFoundError):
        load_problems("mbpp:/does/not/exist.jsonl")
