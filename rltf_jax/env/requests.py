"""The one place a problem's tests become a sandbox request."""

from __future__ import annotations

from rltf_jax.data.problem import Problem
from rltf_jax.env.sandbox_client import ExecutionRequest


def judge_request(problem: Problem, program: str, *, tests: str = "all", limits: dict | None = None,
                 stop_on_first_failure: bool = False) -> ExecutionRequest:
    """The request that judges ``program`` on ``problem``'s ``tests`` (``all`` | ``public`` | ``private``).

    ``limits`` overrides the service's per-request limits (``timeout_s``, ``memory_mb``, ...);
    ``stop_on_first_failure`` skips the remaining tests after the first failure (grading needs only
    pass/fail; RLTF's adaptive reward needs every test's outcome, so training leaves it off).
    """
    return ExecutionRequest(code=program, mode=problem.mode, tests=list(problem.tests(tests)),
                            fn_name=problem.fn_name, limits=None if limits is None else dict(limits),
                            stop_on_first_failure=stop_on_first_failure)
