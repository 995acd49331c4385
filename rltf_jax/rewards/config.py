"""Reward values and switches (a run config's `rewards` block maps onto this)."""

from __future__ import annotations

import dataclasses

FINE_GRAINED_SCALINGS = ("span_total", "per_token")


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """Values of RLTF's coarse / adaptive / fine-grained rewards (Liu et al. 2023, §3.2).

    Attributes:
      syntax_error: coarse reward of a program that does not compile (also a reply with no code).
      runtime_error: coarse reward of a program that crashes, times out or exceeds a limit.
      failed_tests: coarse reward of a program that runs but fails at least one test.
      passed: coarse reward of a program that passes every test.
      adaptive: if True, a program that runs but fails tests gets
        `failed_tests + (passed - failed_tests) * pass_ratio` (= -0.3 + 1.3 * pass_ratio by default).
      fine_grained: if True, add the fine-grained penalty on the tokens of the faulty span.
      fine_grained_penalty: RLTF's R_fine (-0.3): the penalty of one faulty span.
      fine_grained_scaling: "span_total": the span's tokens share the penalty equally, so the
        span as a whole gets exactly `fine_grained_penalty` whatever its length (the paper's
        α = T/(E-S) intent, and the right thing once rewards are summed into returns);
        "per_token": every masked token gets the full penalty (what RLTF's code did, α == 1).
    """

    syntax_error: float = -1.0
    runtime_error: float = -0.6
    failed_tests: float = -0.3
    passed: float = 1.0
    adaptive: bool = True
    fine_grained: bool = True
    fine_grained_penalty: float = -0.3
    fine_grained_scaling: str = "span_total"

    def __post_init__(self):
        if self.fine_grained_scaling not in FINE_GRAINED_SCALINGS:
            raise ValueError(
                f"RewardConfig.fine_grained_scaling={self.fine_grained_scaling!r}; "
                f"expected one of {FINE_GRAINED_SCALINGS}")
