"""The online RL loop's host-side pieces: which problems a step draws, rollouts, execution, scoring.

One RL step (``rltf_jax.cli.train`` drives it):

    problems  = ProblemStream.for_step(step)                     # deterministic in (seed, step)
    rollout   = sample_programs(sampler, problems, ...)          # jitted sampler, K programs each
                                                                 # (+ one greedy decode each for the
                                                                 #  "greedy" advantage's baseline)
    results   = execute_programs(client, rollout, ...)           # HTTP sandbox (may overlap the next sample)
    samples   = score_rollout(rollout, results, ...)             # coarse / adaptive / fine-grained
    batch     = ppo_batch(samples + replayed, ...)               # [B, T] arrays for the jitted update

Execution failures of the *service* (``sandbox_error`` after the client's retries) are dropped and
counted, never scored as program failures. Everything here is plain numpy / Python; the jitted
parts live in ``sampling.py`` and ``ppo.py``.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Sequence

import numpy as np

from rltf_jax.data.problem import Problem
from rltf_jax.env.prompts import ExtractedCode, build_prompt, extract_code
from rltf_jax.env.requests import judge_request
from rltf_jax.env.sandbox_client import ExecutionRequest, ExecutionResult, SandboxClient
from rltf_jax.ppo.length_groups import bucket_lengths
from rltf_jax.ppo.types import padded_rows
from rltf_jax.rewards import RewardConfig
from rltf_jax.rewards.token_rewards import reward_metrics, score_batch
from rltf_jax.sampling import Rollout, SamplingParams


class ProblemStream:
    """The training problems in a seeded order, epoch after epoch; a pure function of the step.

    Step ``s`` takes the problems at global positions ``[s * n, (s + 1) * n)`` of the infinite
    sequence made of one seeded permutation per epoch, so a resumed run draws exactly the problems
    an uninterrupted one would have (the checkpoint only needs the step).
    """

    def __init__(self, problems: Sequence[Problem], problems_per_step: int, seed: int):
        if not problems:
            raise ValueError("the training problem set is empty")
        if problems_per_step <= 0:
            raise ValueError(f"problems_per_step must be positive, got {problems_per_step}")
        self.problems = list(problems)
        self.problems_per_step = problems_per_step
        self.seed = seed
        self._orders: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            rng = np.random.default_rng([self.seed, epoch])
            self._orders[epoch] = rng.permutation(len(self.problems))
        return self._orders[epoch]

    def position(self, step: int) -> int:
        """How many problems the steps before ``step`` (0-based) consumed."""
        return step * self.problems_per_step

    def for_step(self, step: int) -> list[Problem]:
        """The problems of 0-based step ``step``."""
        size = len(self.problems)
        chosen = []
        for position in range(self.position(step), self.position(step + 1)):
            epoch, index = divmod(position, size)
            chosen.append(self.problems[int(self._order(epoch)[index])])
        return chosen


@dataclasses.dataclass
class ProgramRollout:
    """K sampled replies per problem, and the programs taken from them (host data).

    ``problems[i]`` is the problem of row i (each problem repeated K times, consecutively);
    ``group_ids[i]`` numbers the problem within the step, for GRPO / RLOO groups.
    ``greedy`` (the "greedy" advantage): one row per problem, decoded greedily with the same
    budget; it is judged with the samples, its reward is their baseline, it is never trained on.
    """

    problems: list[Problem]
    group_ids: np.ndarray            # [B] int32
    rollout: Rollout                 # tokens, logprobs, masks, texts of the B replies
    extracted: list[ExtractedCode | None]
    truncated: np.ndarray            # [B] bool: the reply hit max_new_tokens without a stop
    greedy: "ProgramRollout | None" = None  # one greedy (temperature 0) decode per problem, or None


def _truncated(rollout: Rollout, max_new_tokens: int, stop_ids: Sequence[int]) -> np.ndarray:
    lengths = rollout.response_mask.sum(axis=1)
    rows = np.arange(len(lengths))
    last = rollout.response_tokens[rows, np.maximum(lengths - 1, 0)]
    return (lengths >= max_new_tokens) & ~np.isin(last, np.asarray(list(stop_ids) or [-1]))


def sample_programs(sampler, tokenizer, problems: Sequence[Problem], *, samples_per_problem: int,
                    params: SamplingParams, rng, prompt_style: str,
                    stop_ids: Sequence[int], first_problem: int = 0,
                    greedy_baseline: bool = False) -> ProgramRollout:
    """Samples ``samples_per_problem`` replies per problem and extracts their programs.

    first_problem: the step-wide index of ``problems[0]`` (a process's share of a multi-process
    step): group ids and sampling rows continue from it, so the shares add up to the whole step.
    greedy_baseline: also decode each problem once greedily (``ProgramRollout.greedy``)."""
    repeated = [p for p in problems for _ in range(samples_per_problem)]
    prompts = [build_prompt(p, tokenizer, style=prompt_style) for p in repeated]
    rollout = sampler.generate(prompts, params, rng, row_offset=first_problem * samples_per_problem)
    extracted = [extract_code(p, text, style=prompt_style) for p, text in zip(repeated, rollout.texts)]
    group_ids = np.repeat(np.arange(first_problem, first_problem + len(problems), dtype=np.int32),
                          samples_per_problem)
    greedy = None
    if greedy_baseline:
        greedy = sample_programs(sampler, tokenizer, problems, samples_per_problem=1,
                                 params=dataclasses.replace(params, greedy=True), rng=rng,
                                 prompt_style=prompt_style, stop_ids=stop_ids, first_problem=first_problem)
    return ProgramRollout(repeated, group_ids, rollout, extracted,
                          _truncated(rollout, params.max_new_tokens, stop_ids), greedy)


def execution_request(problem: Problem, code: ExtractedCode, *, tests: str, limits: dict) -> ExecutionRequest:
    """The sandbox request that judges ``code`` on ``problem``'s tests (``all``/``public``/``private``)."""
    return judge_request(problem, code.program, tests=tests, limits=limits)


def execute_programs(client: SandboxClient, programs: ProgramRollout, *, tests: str,
                     limits: dict) -> list[ExecutionResult | None]:
    """Runs every extracted program on its problem's tests; None where the reply had no code.

    One result per row, followed by one per ``programs.greedy`` row when there are greedy decodes
    (all in one batch to the sandbox)."""
    rollouts = [programs] + ([programs.greedy] if programs.greedy is not None else [])
    pairs = [(p, c) for r in rollouts for p, c in zip(r.problems, r.extracted)]
    requests, rows = [], []
    for row, (problem, code) in enumerate(pairs):
        if code is not None:
            requests.append(execution_request(problem, code, tests=tests, limits=limits))
            rows.append(row)
    results: list[ExecutionResult | None] = [None] * len(pairs)
    for row, result in zip(rows, client.execute_batch(requests)):
        results[row] = result
    return results


@dataclasses.dataclass
class ScoredSample:
    """One judged program, as the PPO batch and the replay buffer need it (unpadded token lists)."""

    prompt_tokens: np.ndarray        # [P_i] int32
    response_tokens: np.ndarray      # [N_i] int32
    token_rewards: np.ndarray        # [N_i] float32, the outcome reward (on the last token)
    token_penalties: np.ndarray      # [N_i] float32, fine-grained penalties on the blamed tokens
    group_id: int
    passed: bool
    baseline: float = 0.0            # the "greedy" advantage's baseline: its problem's greedy reward


def _judged_rows(results: Sequence[ExecutionResult | None]) -> list[int]:
    """Rows the sandbox judged or that had no code: infrastructure failures left out."""
    return [row for row, result in enumerate(results) if result is None or not result.infra_error]


def _score_rows(programs: ProgramRollout, results, rows: list[int], tokenizer, reward_config):
    """`score_batch` over the given rows of a rollout: (token_rewards [len(rows), N], components)."""
    rollout, index = programs.rollout, np.asarray(rows)
    return score_batch(
        [results[r] for r in rows], [programs.extracted[r] for r in rows],
        rollout.response_tokens[index], rollout.response_mask[index], programs.truncated[index],
        tokenizer, reward_config, texts=[rollout.texts[r] for r in rows])


def greedy_baselines(greedy: ProgramRollout, results: Sequence[ExecutionResult | None], tokenizer,
                     reward_config: RewardConfig) -> tuple[dict[int, float], dict[str, float]]:
    """{group id: outcome reward of its problem's greedy decode} (the "greedy" advantage's baseline:
    the same reward a sample gets, without the fine-grained term, as RLTF's R(baseline_error,
    baseline_pass_ratio)) and metrics. A greedy row lost to a sandbox_error leaves its group out."""
    rows = _judged_rows(results)
    metrics = {"baseline/dropped_sandbox_error": float(len(results) - len(rows)),
               "baseline/greedy_outcome": float("nan"), "baseline/greedy_pass_rate": float("nan")}
    if not rows:
        return {}, metrics
    _, parts = _score_rows(greedy, results, rows, tokenizer, reward_config)
    metrics["baseline/greedy_outcome"] = float(np.mean(parts["outcome"]))
    metrics["baseline/greedy_pass_rate"] = float(np.mean(
        [results[r] is not None and results[r].verdict == "pass" for r in rows]))
    return {int(greedy.group_ids[r]): float(parts["outcome"][i]) for i, r in enumerate(rows)}, metrics


def score_rollout(programs: ProgramRollout, results: Sequence[ExecutionResult | None], tokenizer,
                  reward_config: RewardConfig) -> tuple[list[ScoredSample], dict[str, float]]:
    """Token rewards for every program the sandbox judged; infrastructure failures are dropped.

    `results`: `execute_programs`'s, one per row, then one per greedy row if `programs.greedy`;
    then each sample's `baseline` is its problem's greedy reward (`greedy_baselines`), and the
    samples of a problem whose greedy decode was lost are dropped too.
    Returns the scored samples (in row order, dropped rows left out) and metrics: reward
    components, error-class shares, pass rate, and ``samples/dropped_sandbox_error``.
    """
    rollout, rows_count = programs.rollout, len(programs.problems)
    results, greedy_results = list(results[:rows_count]), list(results[rows_count:])
    baselines, metrics = {}, {}
    keep = _judged_rows(results)
    metrics.update({"samples/dropped_sandbox_error": float(len(results) - len(keep)),
                    "samples/total": float(len(results))})
    if programs.greedy is not None:
        baselines, greedy_metrics = greedy_baselines(programs.greedy, greedy_results, tokenizer, reward_config)
        metrics.update(greedy_metrics)
        judged = len(keep)
        keep = [row for row in keep if int(programs.group_ids[row]) in baselines]
        metrics["samples/dropped_no_baseline"] = float(judged - len(keep))
    if not keep:
        return [], metrics
    token_rewards, parts = _score_rows(programs, results, keep, tokenizer, reward_config)
    samples = []
    for i, row in enumerate(keep):
        result = results[row]
        n = int(rollout.response_mask[row].sum())
        outcome_rewards = np.zeros(n, np.float32)
        outcome_rewards[n - 1] = parts["outcome"][i]
        samples.append(ScoredSample(
            prompt_tokens=rollout.prompt_tokens[row][rollout.prompt_mask[row]].astype(np.int32),
            response_tokens=rollout.response_tokens[row, :n].astype(np.int32),
            token_rewards=outcome_rewards,
            token_penalties=token_rewards[i, :n] - outcome_rewards,
            group_id=int(programs.group_ids[row]),
            passed=result is not None and result.verdict == "pass",
            baseline=baselines.get(int(programs.group_ids[row]), 0.0),
        ))
    metrics.update(reward_metrics(parts))
    metrics["samples/pass_rate"] = float(np.mean([s.passed for s in samples]))
    metrics["samples/no_code"] = float(np.mean([programs.extracted[r] is None for r in keep]))
    metrics["samples/truncated"] = float(np.mean(programs.truncated[np.asarray(keep)]))
    metrics["samples/response_tokens"] = float(np.mean([len(s.response_tokens) for s in samples]))
    return samples, metrics


class ReplayBuffer:
    """A FIFO of the most recent scored groups (all samples of one problem at one step).

    RLTF kept the newest 6,400 programs and trained on draws from them. Whole groups are kept
    and drawn so that group advantages (GRPO / RLOO) stay meaningful for replayed samples.
    """

    def __init__(self, max_samples: int):
        self.max_samples = max(1, max_samples)
        self._groups: collections.deque[list[ScoredSample]] = collections.deque()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, samples: Sequence[ScoredSample]) -> None:
        groups: dict[int, list[ScoredSample]] = {}
        for sample in samples:
            groups.setdefault(sample.group_id, []).append(sample)
        for group in groups.values():
            self._groups.append(group)
            self._count += len(group)
        while self._count > self.max_samples and len(self._groups) > 1:
            self._count -= len(self._groups.popleft())

    def draw(self, max_samples: int, rng: np.random.Generator, first_group_id: int) -> list[ScoredSample]:
        """Whole groups drawn uniformly without replacement, at most ``max_samples`` samples.

        The drawn samples get fresh group ids from ``first_group_id`` on, so they never share a
        group with the current step's samples.
        """
        drawn: list[ScoredSample] = []
        for offset, index in enumerate(rng.permutation(len(self._groups))):
            group = self._groups[int(index)]
            if len(drawn) + len(group) > max_samples:
                continue
            drawn.extend(dataclasses.replace(s, group_id=first_group_id + offset) for s in group)
        return drawn


def ppo_batch(samples: Sequence[ScoredSample], *, batch_size: int, pad_id: int,
              length_multiple: int = 64, min_length: int = 0) -> dict[str, np.ndarray]:
    """Right-padded ``prompt ⧺ response`` arrays for the PPO step (docs/interfaces.md).

    Rows past ``len(samples)`` (dropped samples) are padding with an all-False ``response_mask``,
    so the batch shape (and the compiled update) stays the same whatever was dropped.
    ``min_length``: at least this many columns (processes agree on one length, see trainer.py).

    Returns:
      tokens [B, T] int32, attention_mask [B, T] bool, response_mask [B, T] bool,
      token_rewards [B, T] float32, token_penalties [B, T] float32, group_ids [B] int32 (-1 on
      padding rows), baselines [B] float32 (each sample's `baseline`, 0 on padding rows).
    """
    if len(samples) > batch_size:
        raise ValueError(f"{len(samples)} samples do not fit a batch of {batch_size}")
    longest = max((len(s.prompt_tokens) + len(s.response_tokens) for s in samples), default=1)
    length = bucket_lengths(max(longest, min_length), length_multiple)
    tokens, attention, response = padded_rows(
        [(np.concatenate([s.prompt_tokens, s.response_tokens]),
          np.arange(len(s.prompt_tokens) + len(s.response_tokens)) >= len(s.prompt_tokens)) for s in samples],
        batch_size=batch_size, length=length, pad_id=pad_id)
    rewards = np.zeros((batch_size, length), np.float32)
    penalties = np.zeros((batch_size, length), np.float32)
    groups = np.full((batch_size,), -1, np.int32)
    baselines = np.zeros((batch_size,), np.float32)
    for row, sample in enumerate(samples):
        p, n = len(sample.prompt_tokens), len(sample.response_tokens)
        rewards[row, p:p + n] = sample.token_rewards
        penalties[row, p:p + n] = sample.token_penalties
        groups[row] = sample.group_id
        baselines[row] = sample.baseline
    return {"tokens": tokens, "attention_mask": attention, "response_mask": response,
            "token_rewards": rewards, "group_ids": groups, "token_penalties": penalties,
            "baselines": baselines}
