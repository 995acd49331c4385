"""Pure judging rules (no service needed)."""

from sandbox_service import judge


def test_stdout_tolerates_trailing_whitespace_and_blank_lines():
    assert judge.stdout_matches("1 2  \n3\n\n\n", "1 2\n3")
    assert judge.stdout_matches("a\r\nb\r\n", "a\nb\n")
    assert not judge.stdout_matches("1 2\n3\n", "1 2\n4\n")
    assert not judge.stdout_matches("1\n", "1\n2\n")
    assert not judge.stdout_matches("YES", "yes")  # no lower-casing


def test_stdout_floats_with_tolerance_integers_exact():
    assert judge.stdout_matches("0.3333333", "0.333333333333")
    assert judge.stdout_matches("1e-9", "0")  # absolute tolerance
    assert not judge.stdout_matches("0.34", "0.333333")
    assert not judge.stdout_matches("100000000000000000001", "100000000000000000000")
    assert judge.stdout_matches("2.0", "2")


def test_values_equal_is_structural_and_typed():
    assert judge.values_equal([1, [2, 3]], [1, [2, 3]])
    assert judge.values_equal(0.1 + 0.2, 0.3)
    assert judge.values_equal(2, 2.0)
    assert not judge.values_equal(True, 1)
    assert not judge.values_equal(1, True)
    assert not judge.values_equal("1", 1)
    assert not judge.values_equal([1, 2], [1, 2, 3])
    assert judge.values_equal({"a": [1]}, {"a": [1]})
    assert not judge.values_equal({"a": 1}, {"a": 1, "b": 2})
    assert not judge.values_equal(None, 0)


def test_overall_verdict_ranks_errors_over_wrong_answers():
    assert judge.overall_verdict(["pass", "pass"]) == "pass"
    assert judge.overall_verdict(["pass", "wrong_answer", "timeout"]) == "timeout"
    assert judge.overall_verdict(["runtime_error", "memory_limit"]) == "runtime_error"
    assert judge.overall_verdict(["wrong_answer", "syntax_error"]) == "syntax_error"
    assert judge.overall_verdict(["pass", "sandbox_error"]) == "sandbox_error"
    assert judge.pass_ratio(["pass", "wrong_answer"], 4) == 0.25
