"""Coarse / adaptive reward table, RLTF error classes, and score_batch's assembly rules."""


import numpy as np
import pytest

from rltf_jax.env.prompts import ExtractedCode
from rltf_jax.rewards import (RewardConfig, adaptive_reward, classify_error, coarse_reward,
                              reward_metrics, score_batch)
from rltf_jax.env.sandbox_client import ExceptionInfo, ExecutionResult, TestOutcome


def result(verdict, ratio=0.0, exc=None, test_verdicts=None):
    """An ExecutionResult the way the service reports it: per-test verdicts in order."""
    test_verdicts = test_verdicts or [verdict]
    tests = tuple(TestOutcome(v, exc if v == verdict else None, "", "", False, 0.01) for v in test_verdicts)
    return ExecutionResult(verdict=verdict, pass_ratio=ratio, tests=tests)


PROGRAM = "def f(x):\n    y = x + 1\n    return y / 0\n"


@pytest.mark.parametrize("verdict,coarse", [
    ("syntax_error", -1.0), ("no_code", -1.0), ("runtime_error", -0.6), ("timeout", -0.6),
    ("memory_limit", -0.6), ("output_limit", -0.6), ("wrong_answer", -0.3), ("pass", 1.0)])
def test_coarse_table(verdict, coarse):
    assert coarse_reward(verdict) == coarse
    assert adaptive_reward(verdict, 0.0) == coarse  # 0 tests passed: adaptive == coarse everywhere


@pytest.mark.parametrize("ratio,want", [(0.0, -0.3), (0.25, -0.3 + 1.3 * 0.25), (0.5, 0.35), (1.0, 1.0)])
def test_adaptive_for_failed_tests(ratio, want):
    assert adaptive_reward("wrong_answer", ratio) == pytest.approx(want)
    assert adaptive_reward("runtime_error", ratio) == -0.6  # errors keep their coarse value


def test_configurable_values_and_refusals():
    config = RewardConfig(syntax_error=-2.0, failed_tests=-0.5, passed=2.0)
    assert coarse_reward("syntax_error", config) == -2.0
    assert adaptive_reward("wrong_answer", 0.5, config) == pytest.approx(-0.5 + 2.5 * 0.5)
    for fn in (lambda: coarse_reward("sandbox_error"), lambda: adaptive_reward("sandbox_error", 0.0),
               lambda: classify_error(result("sandbox_error"), PROGRAM, False)):
        with pytest.raises(ValueError, match="refusing to score a 'sandbox_error'"):
            fn()
    with pytest.raises(ValueError, match="unknown sandbox verdict 'crashed'"):
        coarse_reward("crashed")
    with pytest.raises(ValueError, match="pass_ratio=1.5"):
        adaptive_reward("wrong_answer", 1.5)
    with pytest.raises(ValueError, match="fine_grained_scaling"):
        RewardConfig(fine_grained_scaling="alpha")


@pytest.mark.parametrize("verdict,exc,truncated,kind,line", [
    ("pass", None, False, "ignore", None),
    ("wrong_answer", None, False, "ignore", None),
    ("timeout", None, False, "global", None),
    ("memory_limit", ExceptionInfo("MemoryError", "", 2), False, "global", None),
    ("runtime_error", ExceptionInfo("RecursionError", "maximum recursion depth exceeded", 2), False, "global", None),
    ("runtime_error", ExceptionInfo("ZeroDivisionError", "division by zero", 3), False, "line", 3),
    ("runtime_error", ExceptionInfo("NameError", "name 'z' is not defined", 2), True, "line", 2),
    ("runtime_error", ExceptionInfo("ValueError", "bad", None), False, "ignore", None),
    ("syntax_error", ExceptionInfo("SyntaxError", "invalid syntax", 2), False, "line", 2),
    ("syntax_error", ExceptionInfo("SyntaxError", "invalid syntax", 3), True, "global", None),
    ("syntax_error", ExceptionInfo("SyntaxError", "'(' was never closed", 2), True, "global", None),
    ("syntax_error", ExceptionInfo("SyntaxError", "'(' was never closed", 2), False, "line", 2),
    ("syntax_error", ExceptionInfo("SyntaxError", "invalid syntax", 3), False, "line", 3),
    ("syntax_error", ExceptionInfo("TabError", "inconsistent use of tabs and spaces in indentation", 2),
     False, "ignore", None),
    ("syntax_error", ExceptionInfo("IndentationError", "unindent does not match any outer indentation level", 3),
     False, "ignore", None),
    ("syntax_error", ExceptionInfo("SyntaxError", "duplicate argument 'x' in function definition", 1),
     False, "ignore", None),
    ("syntax_error", ExceptionInfo("IndentationError", "unexpected indent", 2), False, "line", 2),
    # a cut reply with a syntax error the cut did not produce: the model's line
    ("syntax_error", ExceptionInfo("SyntaxError", "invalid syntax", 2), True, "line", 2),
    ("syntax_error", ExceptionInfo("IndentationError",
                                   "expected an indented block after function definition on line 1", 2),
     True, "line", 2),
    ("syntax_error", ExceptionInfo("SyntaxError", "unterminated string literal (detected at line 2)", 2),
     True, "line", 2),
    ("syntax_error", ExceptionInfo("SyntaxError", "unexpected EOF while parsing", 1), True, "global", None),
    # RLTF's ignored triple-quoted string, in each supported Python's spelling
    ("syntax_error", ExceptionInfo("SyntaxError", "EOF while scanning triple-quoted string literal", 2),
     False, "ignore", None),
    ("syntax_error", ExceptionInfo("SyntaxError", "unterminated triple-quoted string literal (detected at line 3)",
                                   2), False, "ignore", None),
    ("syntax_error", ExceptionInfo("SyntaxError",
                                   "unterminated triple-quoted f-string literal (detected at line 3)", 2),
     True, "ignore", None),
])
def test_error_classes(verdict, exc, truncated, kind, line):
    location = classify_error(result(verdict, exc=exc), PROGRAM, truncated)
    assert (location.kind, location.line) == (kind, line), location


# (program, truncated, class) compiled by *this* Python: its own messages must hit the rules.
COMPILED = [
    ('def f(x):\n    """Doubles x.\n    return 2 * x', True, "ignore"),
    ('def f(x):\n    s = f"""{x}\n    return s\n\ndef g():\n    return 1', False, "ignore"),
    ("def f(x):\n    y = x +* 2\n    return y\n\ndef g(y):\n    return y +", True, "line"),
    ("def f(x):\n    return (x *", True, "global"),
    ("def f(x):\n    y = [1,\n    return y\n\ndef g():\n    pass", True, "global"),
    ("def f(x):\n    return x +", True, "global"),
    ("def f(x):\nreturn x\n\ndef g(y):\n    return y", True, "line"),
    ("def f(x):\n    if x:", True, "global"),
]


@pytest.mark.parametrize("program,truncated,kind", COMPILED)
def test_error_classes_of_this_pythons_messages(program, truncated, kind):
    try:
        compile(program, "<solution>", "exec")
    except SyntaxError as error:
        exc = ExceptionInfo(type(error).__name__, error.msg, error.lineno)
    else:
        raise AssertionError("the program compiles")
    location = classify_error(result("syntax_error", exc=exc), program, truncated)
    assert location.kind == kind, (exc, location)
    if kind == "line":
        assert location.line == exc.line < program.count("\n") + 1


def test_first_failing_test_with_the_reported_verdict_decides():
    first = ExceptionInfo("KeyError", "'a'", 2)
    second = ExceptionInfo("ZeroDivisionError", "division by zero", 3)
    tests = (TestOutcome("pass", None, "", "", False, 0.0),
             TestOutcome("wrong_answer", None, "", "", False, 0.0),
             TestOutcome("runtime_error", first, "", "", False, 0.0),
             TestOutcome("runtime_error", second, "", "", False, 0.0))
    location = classify_error(ExecutionResult("runtime_error", 0.25, tests), PROGRAM, False)
    assert (location.kind, location.line) == ("line", 2)


def test_no_code_classes():
    assert classify_error(None, None, truncated=False).kind == "ignore"
    assert classify_error(None, None, truncated=True).kind == "global"


def reply(tokenizer, code):
    text = f"Sure:\n```python\n{code}```\nDone."
    ids = tokenizer.encode(text, add_special_tokens=False)
    start = text.index(code)
    return text, ids, ExtractedCode(program=code.rstrip("\n"), prefix="", response_start=start,
                                    response_end=start + len(code.rstrip("\n")))


def pad(rows, eos):
    n = max(len(r) for r in rows) + 2
    tokens = np.zeros((len(rows), n), np.int32)
    mask = np.zeros((len(rows), n), bool)
    for i, r in enumerate(rows):
        tokens[i, :len(r) + 1] = list(r) + [eos]
        mask[i, :len(r) + 1] = True
    return tokens, mask


def test_score_batch_assembly(tokenizer):
    text, ids, code = reply(tokenizer, PROGRAM)
    exc = ExceptionInfo("ZeroDivisionError", "division by zero", 3)
    results = [result("runtime_error", exc=exc), result("wrong_answer", 0.5, test_verdicts=["pass", "wrong_answer"]),
               result("timeout"), None]
    codes = [code, code, code, None]
    tokens, mask = pad([ids] * 4, tokenizer.eos_token_id)
    rewards, parts = score_batch(results, codes, tokens, mask, [False] * 4, tokenizer, texts=[text] * 4)
    n = len(ids) + 1
    assert rewards.dtype == np.float32 and rewards.shape == tokens.shape
    assert not rewards[:, n:].any()
    np.testing.assert_allclose(parts["coarse"], [-0.6, -0.3, -0.6, -1.0])
    np.testing.assert_allclose(parts["adaptive"], [-0.6, 0.35, -0.6, -1.0], rtol=1e-6)
    np.testing.assert_allclose(parts["outcome"], parts["adaptive"])
    # span_total: the line's tokens share -0.3; the outcome sits on the last (eos) token
    line_tokens = [i for i in range(n) if rewards[0, i] != 0 and i != n - 1]
    assert tokenizer.decode([int(tokens[0, i]) for i in line_tokens]).strip() == "return y / 0"
    np.testing.assert_allclose(rewards[0, :n].sum(), -0.6 - 0.3, rtol=1e-6)
    assert rewards[0, n - 1] == pytest.approx(-0.6)
    np.testing.assert_allclose(rewards[1, :n], np.eye(n)[n - 1] * 0.35, atol=1e-7)  # wrong answer: ignore
    np.testing.assert_allclose(rewards[2, :n - 1], -0.3 / n, rtol=1e-6)             # timeout: global
    np.testing.assert_allclose(rewards[3, :n], np.eye(n)[n - 1] * -1.0)              # no code, not truncated
    assert parts["error_class"].tolist() == [1, 2, 0, 2]
    assert parts["fine_tokens"].tolist() == [len(line_tokens), 0, n, 0]
    np.testing.assert_allclose(parts["fine_grained"], [-0.3, 0.0, -0.3, 0.0], rtol=1e-6)
    metrics = reward_metrics(parts)
    assert metrics["reward/class_global"] == 0.25 and metrics["reward/outcome"] == pytest.approx(-0.4625)

    per_token, _ = score_batch(results[:1], codes[:1], tokens[:1], mask[:1], [False], tokenizer,
                               RewardConfig(fine_grained_scaling="per_token", adaptive=False))
    np.testing.assert_allclose(per_token[0, line_tokens], -0.3)               # RLTF's code: α = 1
    off, _ = score_batch(results[:1], codes[:1], tokens[:1], mask[:1], [False], tokenizer,
                         RewardConfig(fine_grained=False))
    np.testing.assert_allclose(off[0, :n], np.eye(n)[n - 1] * -0.6)


def test_score_batch_refuses_bad_input(tokenizer):
    text, ids, code = reply(tokenizer, PROGRAM)
    tokens, mask = pad([ids], tokenizer.eos_token_id)
    with pytest.raises(ValueError, match="refusing to score a 'sandbox_error'"):
        score_batch([result("sandbox_error")], [code], tokens, mask, [False], tokenizer)
    with pytest.raises(ValueError, match="len\\(results\\)=2"):
        score_batch([result("pass")] * 2, [code], tokens, mask, [False], tokenizer)
    with pytest.raises(ValueError, match="prefix of each row"):
        score_batch([result("pass")], [code], tokens, ~mask, [False], tokenizer)
    exc = ExceptionInfo("NameError", "name 'q' is not defined", 2)
    with pytest.raises(ValueError, match="not a prefix of the decoded"):
        score_batch([result("runtime_error", exc=exc)], [code], tokens, mask, [False], tokenizer,
                    texts=["something else"])
