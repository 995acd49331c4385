"""Coarse and adaptive outcome rewards from a sandbox verdict (RLTF §3.2, CodeRL's table)."""

from __future__ import annotations

from rltf_jax.rewards.config import RewardConfig

SYNTAX_VERDICTS = frozenset({"syntax_error"})
RUNTIME_VERDICTS = frozenset({"runtime_error", "timeout", "memory_limit", "output_limit"})
FAILED_VERDICTS = frozenset({"wrong_answer"})
PASS_VERDICTS = frozenset({"pass"})
KNOWN_VERDICTS = SYNTAX_VERDICTS | RUNTIME_VERDICTS | FAILED_VERDICTS | PASS_VERDICTS
NO_CODE = "no_code"  # pseudo-verdict: extract_code found no program in the reply


def check_verdict(verdict: str) -> None:
    """Raise for verdicts that must never be scored (`sandbox_error`) or are unknown."""
    if verdict == "sandbox_error":
        raise ValueError(
            "refusing to score a 'sandbox_error' result: it is an infrastructure failure, not the "
            "program's; the loop must drop such samples before computing rewards")
    if verdict not in KNOWN_VERDICTS and verdict != NO_CODE:
        raise ValueError(f"unknown sandbox verdict {verdict!r}; expected one of {sorted(KNOWN_VERDICTS)}")


def coarse_reward(verdict: str, config: RewardConfig = RewardConfig()) -> float:
    """RLTF/CodeRL coarse reward of one program.

        R = syntax_error  (-1.0)  if verdict is syntax_error or the reply held no code
            runtime_error (-0.6)  if runtime_error | timeout | memory_limit | output_limit
            failed_tests  (-0.3)  if wrong_answer
            passed        (+1.0)  if pass

    Raises ValueError on `sandbox_error` (never a program's fault) and on unknown verdicts.
    """
    check_verdict(verdict)
    if verdict in SYNTAX_VERDICTS or verdict == NO_CODE:
        return config.syntax_error
    if verdict in RUNTIME_VERDICTS:
        return config.runtime_error
    if verdict in FAILED_VERDICTS:
        return config.failed_tests
    return config.passed


def adaptive_reward(verdict: str, pass_ratio: float, config: RewardConfig = RewardConfig()) -> float:
    """RLTF adaptive reward: for a program that runs but fails some tests,

        R = failed_tests + (passed - failed_tests) * pass_ratio      (-0.3 + 1.3 * pass_ratio)

    so 0 tests passed gives -0.3 and a full pass ratio gives +1.0; every other verdict keeps its
    coarse reward (as in RLTF's `get_reward_from_error_type`). `pass_ratio` is in [0, 1].
    """
    check_verdict(verdict)
    if verdict not in FAILED_VERDICTS:
        return coarse_reward(verdict, config)
    if not 0.0 <= pass_ratio <= 1.0:
        raise ValueError(f"pass_ratio={pass_ratio} is outside [0, 1]")
    return config.failed_tests + (config.passed - config.failed_tests) * float(pass_ratio)


def outcome_reward(verdict: str, pass_ratio: float, config: RewardConfig = RewardConfig()) -> float:
    """The scalar outcome reward the trainer uses: adaptive if `config.adaptive`, else coarse."""
    if config.adaptive:
        return adaptive_reward(verdict, pass_ratio, config)
    return coarse_reward(verdict, config)
