"""Grade many problems' programs in one sandbox batch: pass/fail verdicts for evaluation."""

from __future__ import annotations

from typing import Sequence

from rltf_jax.data.problem import Problem
from rltf_jax.env.requests import judge_request


def grade_programs(client, problems: Sequence[Problem], programs: Sequence[Sequence[str | None]],
                   *, limits: dict | None = None) -> list[list[str]]:
    """Run every problem's programs on all its tests; ``[problem][sample]`` verdict strings.

    A ``None`` program (no code in the reply) gets the verdict ``"no_code"`` without a request.
    Grading stops a program at its first failing test: only pass/fail counts here.
    """
    flat, where = [], []
    for p_index, (problem, progs) in enumerate(zip(problems, programs)):
        for s_index, program in enumerate(progs):
            if program is not None:
                flat.append(judge_request(problem, program, limits=limits, stop_on_first_failure=True))
                where.append((p_index, s_index))
    verdicts = [["no_code"] * len(progs) for progs in programs]
    results = client.execute_batch(flat) if flat else []
    for (p_index, s_index), result in zip(where, results):
        verdicts[p_index][s_index] = result.verdict
    return verdicts
