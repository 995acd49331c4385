"""The v1 HTTP contract as pydantic models: validation of requests, shape of responses.

Anything malformed (non-UTF-8 or oversized code, no tests, an unknown mode, a test that does not
fit its mode, call mode without ``fn_name``, non-positive limits) fails validation and FastAPI
answers 422 with a message naming the field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_CODE_BYTES = 1024 * 1024
MAX_TESTS = 1000
MAX_TEST_TEXT_BYTES = 16 * 1024 * 1024
MAX_BATCH = 512
MAX_TIMEOUT_S = 60.0
MAX_MEMORY_MB = 16384
MIN_MEMORY_MB = 64
MAX_OUTPUT_BYTES = 64 * 1024 * 1024

Verdict = Literal["pass", "wrong_answer", "runtime_error", "syntax_error", "timeout",
                  "memory_limit", "output_limit", "sandbox_error"]
_TEST_KEYS = {"stdio": {"stdin", "expected_stdout"}, "call": {"args", "expected"},
              "assert": {"assert"}}


def _utf8_size(text: str, what: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} is not valid UTF-8 (lone surrogate at {exc.start})") from None


class Limits(BaseModel):
    """Per-test limits. timeout_s: wall seconds per test; memory_mb: address-space cap of the
    program; output_bytes: cap per stream (stdout, stderr) per test."""

    model_config = ConfigDict(extra="forbid")
    timeout_s: float = Field(4.0, gt=0, le=MAX_TIMEOUT_S)
    memory_mb: int = Field(512, ge=MIN_MEMORY_MB, le=MAX_MEMORY_MB)
    output_bytes: int = Field(1024 * 1024, ge=1, le=MAX_OUTPUT_BYTES)


class ExecuteRequest(BaseModel):
    """One program and its tests (`mode` decides the shape of each test)."""

    code: str
    mode: Literal["stdio", "call", "assert"]
    fn_name: str | None = None
    tests: list[dict[str, Any]]
    limits: Limits = Field(default_factory=Limits)
    stop_on_first_failure: bool = False

    @field_validator("code")
    @classmethod
    def _code_fits(cls, code: str) -> str:
        size = _utf8_size(code, "code")
        if size > MAX_CODE_BYTES:
            raise ValueError(f"code is {size} bytes, more than the limit of {MAX_CODE_BYTES}")
        return code

    @model_validator(mode="after")
    def _tests_fit_mode(self) -> "ExecuteRequest":
        if not self.tests:
            raise ValueError("tests is empty: at least one test is required")
        if len(self.tests) > MAX_TESTS:
            raise ValueError(f"{len(self.tests)} tests, more than the limit of {MAX_TESTS}")
        if self.mode == "call":
            if not self.fn_name or not self.fn_name.isidentifier():
                raise ValueError("mode 'call' needs fn_name, a Python identifier")
        want = _TEST_KEYS[self.mode]
        for i, test in enumerate(self.tests):
            if set(test) != want:
                raise ValueError(f"tests[{i}] has keys {sorted(test)}; mode {self.mode!r} "
                                 f"needs exactly {sorted(want)}")
            if self.mode == "call" and not isinstance(test["args"], list):
                raise ValueError(f"tests[{i}].args must be a list")
            for key in want - {"args", "expected"}:
                if not isinstance(test[key], str):
                    raise ValueError(f"tests[{i}].{key} must be a string")
                if _utf8_size(test[key], f"tests[{i}].{key}") > MAX_TEST_TEXT_BYTES:
                    raise ValueError(f"tests[{i}].{key} is larger than {MAX_TEST_TEXT_BYTES} "
                                     "bytes")
        return self

    def job(self) -> dict:
        """The plain dict sent to a zygote."""
        return {"code": self.code, "mode": self.mode, "fn_name": self.fn_name,
                "tests": self.tests, "limits": self.limits.model_dump(),
                "stop_on_first_failure": self.stop_on_first_failure}


class BatchRequest(BaseModel):
    requests: list[ExecuteRequest] = Field(min_length=1, max_length=MAX_BATCH)


class ExceptionInfo(BaseModel):
    type: str
    message: str
    line: int | None = Field(description="1-based line in the submitted code, or null")


class TestResult(BaseModel):
    verdict: Verdict
    exception: ExceptionInfo | None
    stdout: str
    stderr: str
    truncated: bool
    time_s: float
    stdout_bytes: int = Field(description="bytes the program wrote (stdout is cut to "
                                          "limits.output_bytes)")
    stderr_bytes: int


class ExecuteResponse(BaseModel):
    verdict: Verdict
    pass_ratio: float
    tests: list[TestResult] = Field(description="one per test that ran, in request order")


class BatchResponse(BaseModel):
    results: list[ExecuteResponse]
