"""Every fixture problem's reference solution passes through the real sandbox service; a broken
program fails with the right verdict. HumanEval's 164 canonical solutions pass via the CLI."""

import pathlib

import pytest

from rltf_jax.data import load_problems
from rltf_jax.cli.evaluate import main as evaluate_main
from rltf_jax.env.grading import grade_programs
from rltf_jax.env.sandbox_client import SandboxClient, local_sandbox

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"
LIMITS = {"timeout_s": 2.0}

# problem id -> (broken program, expected verdict)
BROKEN = {
    "mbpp/11": ("def remove_Occ(s, ch):\n    return s\n", "wrong_answer"),
    "mbpp/520": ("def circle_perimeter(r):\n    return 1 / 0\n", "runtime_error"),
    "mbpp/606": ("def radian_degree(degree)\n    return degree\n", "syntax_error"),
    "apps/test/4001": ("print(0)\n", "wrong_answer"),
    "apps/test/17": ("class Solution:\n    def maxArea(self, height):\n        return height[100]\n",
                     "runtime_error"),
    "codecontests/1_A. Double It": ("while True:\n    pass\n", "timeout"),
    "starter/add/0": ("def add(a, b):\n    return a - b\n", "wrong_answer"),
}


@pytest.fixture(scope="module")
def sandbox_url():
    with local_sandbox() as url:
        yield url


@pytest.fixture(scope="module")
def client(sandbox_url):
    return SandboxClient(sandbox_url)


def _fixture_problems():
    problems = []
    for spec in (f"mbpp:{FIXTURES / 'mbpp.jsonl'}", f"mbpp-sanitized:{FIXTURES / 'mbpp_sanitized.json'}",
                 f"apps:{FIXTURES / 'apps.jsonl'}:test", f"codecontests:{FIXTURES / 'codecontests.parquet'}"):
        problems += load_problems(spec)
    return problems + load_problems("starter")[:1]


def test_reference_solutions_pass_and_broken_programs_fail(client):
    problems = _fixture_problems()
    # The same id can come from full and sanitized MBPP; grade each problem on its own tests.
    verdicts = grade_programs(client, problems, [[p.solutions[0]] for p in problems], limits=LIMITS)
    assert {p.id + p.prompt[:20]: v[0] for p, v in zip(problems, verdicts)} == \
        {p.id + p.prompt[:20]: "pass" for p in problems}
    broken = [p for p in problems if p.id in BROKEN]
    assert {p.id for p in broken} == set(BROKEN)
    verdicts = grade_programs(client, broken, [[BROKEN[p.id][0]] for p in broken], limits=LIMITS)
    assert {p.id: v[0] for p, v in zip(broken, verdicts)} == {p.id: BROKEN[p.id][1] for p in broken}
    assert grade_programs(client, broken[:1], [[None]]) == [["no_code"]]


def test_humaneval_canonical_solutions_pass_through_the_cli(sandbox_url, tmp_path, capsys):
    output = tmp_path / "humaneval_solutions.json"
    result = evaluate_main(["--solutions", "--dataset", "humaneval", "--sandbox-url", sandbox_url,
                            "--output", str(output), "--no-progress"])
    assert result["num_problems"] == 164
    assert result["verdicts"] == {"pass": 164}
    assert result["pass@1"] == 1.0
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert last_line.startswith('{"pass@1": 1.0')
    assert output.with_suffix(".md").read_text().startswith("| difficulty |")

