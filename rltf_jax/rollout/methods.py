"""One training step's data, per method: the interface the trainer drives without knowing the method.

Each method turns a step's problems into training input in three calls:

    rollout = method.generate(step, problems, rng)   # sample (this process's share)
    results = method.execute(rollout)                # sandbox verdicts, or None when there is nothing to run
    data    = method.to_batch(step, rollout, results)   # StepData: a PPO batch and/or supervised problems

- `SingleTurnRollouts` (RLTF): K programs per problem, judged on the unit tests, scored with the
  coarse / fine-grained / adaptive rewards into token rewards; optional replay of past samples.
- `EpisodeRollouts` (RLEF): multi-turn episodes with public-test feedback, rewarded on private tests
  (the episodes run their own tests turn by turn, so `execute` has nothing left to do).
- `SupervisedSteps`: RLTF's supervised baseline, teacher forcing on the reference solutions.

`execute` runs on a worker thread while the next step generates (``rollout.overlap_execution``),
so it touches nothing but the sandbox client.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, Sequence

import jax
import numpy as np

from rltf_jax.data.problem import Problem
from rltf_jax.env.sandbox_client import SandboxClient
from rltf_jax.parallel import multihost
from rltf_jax.ppo import PPOBatch, PPOConfig
from rltf_jax.rewards import RewardConfig
from rltf_jax.rewards.rlef import RLEFRewardConfig
from rltf_jax.rollout import episode_batch
from rltf_jax.rollout import single_turn
from rltf_jax.rollout.episodes import EpisodeConfig, run_episodes
from rltf_jax.sampling import Sampler, SamplingParams


@dataclasses.dataclass(frozen=True)
class RolloutContext:
    """What every method samples and judges with, built once by the trainer.

    ``limits`` are the sandbox limits of one request (``timeout_s`` per test, ``memory_mb``);
    ``pad_id`` pads batch rows; ``stop_ids`` end a reply.
    """
    config: Any  # the run's ml_collections.ConfigDict
    ppo_config: PPOConfig
    sampler: Sampler
    tokenizer: Any
    client: SandboxClient
    params: SamplingParams
    limits: dict
    pad_id: int
    stop_ids: Sequence[int]

    @property
    def rows_per_step(self) -> int:
        """Rollout rows of one step over all processes: problems per step x samples per problem."""
        return self.config.data.problems_per_step * self.config.rollout.samples_per_problem


@dataclasses.dataclass
class StepData:
    """One step's training input: ``ppo`` (this process's rows, or None) for the PPO update and
    ``supervised`` (problems whose reference solutions make a supervised step, or None)."""
    ppo: PPOBatch | None
    supervised: list[Problem] | None
    metrics: dict[str, float]


class StepMethod(Protocol):
    def generate(self, step: int, problems: list[Problem], rng: jax.Array) -> Any: ...

    def execute(self, rollout: Any) -> Any: ...

    def to_batch(self, step: int, rollout: Any, results: Any) -> StepData: ...


class SingleTurnRollouts:
    """RLTF: single-turn programs, unit-test verdicts, token rewards, a PPO batch."""

    def __init__(self, ctx: RolloutContext):
        self.ctx = ctx
        self.reward_config = RewardConfig(**ctx.config.rewards.to_dict())
        self.buffer = single_turn.ReplayBuffer(ctx.config.buffer.size)

    def generate(self, step: int, problems: list[Problem], rng: jax.Array) -> single_turn.ProgramRollout:
        config = self.ctx.config
        mine, first = multihost.process_share(problems)
        return single_turn.sample_programs(
            self.ctx.sampler, self.ctx.tokenizer, mine, samples_per_problem=config.rollout.samples_per_problem,
            params=self.ctx.params, rng=rng, prompt_style=config.data.prompt_style, stop_ids=self.ctx.stop_ids,
            first_problem=first, greedy_baseline=self.ctx.ppo_config.advantage == "greedy")

    def execute(self, programs: single_turn.ProgramRollout):
        return single_turn.execute_programs(self.ctx.client, programs, tests=self.ctx.config.data.tests,
                                            limits=self.ctx.limits)

    def to_batch(self, step: int, programs: single_turn.ProgramRollout, results) -> StepData:
        config = self.ctx.config
        samples, metrics = single_turn.score_rollout(programs, results, self.ctx.tokenizer, self.reward_config)
        metrics = multihost.combine_metrics(metrics)
        replayed = []
        if config.buffer.replay_samples:
            replayed = self.buffer.draw(config.buffer.replay_samples, np.random.default_rng([config.seed, step]),
                                        first_group_id=config.data.problems_per_step)
        self.buffer.add(samples)
        rows_here = self.ctx.rows_per_step // jax.process_count() + config.buffer.replay_samples
        longest = max((len(s.prompt_tokens) + len(s.response_tokens) for s in samples + replayed), default=1)
        batch = PPOBatch(**single_turn.ppo_batch(samples + replayed, batch_size=rows_here, pad_id=self.ctx.pad_id,
                                                 min_length=multihost.agree_max(longest)))
        metrics["samples/replayed"] = float(len(replayed))
        return StepData(ppo=batch, supervised=None, metrics=metrics)


class EpisodeRollouts:
    """RLEF: multi-turn episodes with execution feedback, one PPO row per episode."""

    def __init__(self, ctx: RolloutContext):
        if ctx.ppo_config.advantage == "greedy":
            raise ValueError("ppo.advantage='greedy' needs single-turn rollouts (method='rltf')")
        self.ctx = ctx
        self.rewards = RLEFRewardConfig(**ctx.config.rlef.rewards.to_dict())
        rlef = ctx.config.rlef
        self.episode_config = EpisodeConfig(max_turns=rlef.max_turns, limits=ctx.limits,
                                            reuse_kv_cache=rlef.reuse_kv_cache)

    def generate(self, step: int, problems: list[Problem], rng: jax.Array):
        mine, first = multihost.process_share(problems)
        return run_episodes(self.ctx.sampler, self.ctx.tokenizer, self.ctx.client, mine,
                            samples_per_problem=self.ctx.config.rollout.samples_per_problem, params=self.ctx.params,
                            rng=rng, config=self.episode_config, stop_ids=self.ctx.stop_ids, first_problem=first)

    def execute(self, episodes) -> None:
        return None  # the episodes ran their public and private tests already

    def to_batch(self, step: int, episodes, results) -> StepData:
        turns = episode_batch.episode_batch(
            episodes, batch_size=self.ctx.rows_per_step // jax.process_count(), pad_id=self.ctx.pad_id,
            max_turns=self.ctx.config.rlef.max_turns, tokenizer=self.ctx.tokenizer, reward_config=self.rewards,
            agree=multihost.agree_max)
        batch = turns.ppo._replace(turn_ids=turns.turn_ids, value_positions=turns.value_positions)
        metrics = episode_batch.ratios_of(multihost.combine_sums(episode_batch.episode_metric_sums(episodes)))
        metrics["samples/replayed"] = 0.0
        return StepData(ppo=batch, supervised=None, metrics=metrics)


class SupervisedSteps:
    """RLTF's supervised baseline: nothing sampled; the step's problems' reference solutions."""

    def __init__(self, ctx: RolloutContext):
        self.ctx = ctx

    def generate(self, step: int, problems: list[Problem], rng: jax.Array) -> list[Problem]:
        return problems

    def execute(self, problems) -> None:
        return None

    def to_batch(self, step: int, problems: list[Problem], results) -> StepData:
        return StepData(ppo=None, supervised=problems, metrics={})


METHODS: dict[str, type] = {"rltf": SingleTurnRollouts, "rlef": EpisodeRollouts, "supervised": SupervisedSteps}


def check_method(name: str) -> None:
    """Raises ValueError unless ``name`` is a step method (the trainer checks before loading a model)."""
    if name not in METHODS:
        raise ValueError(f"config.method={name!r}; expected one of {tuple(METHODS)}")


def make_method(name: str, ctx: RolloutContext) -> StepMethod:
    """The step method ``config.method`` names."""
    check_method(name)
    return METHODS[name](ctx)
