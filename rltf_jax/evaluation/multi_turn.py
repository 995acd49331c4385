"""Multi-turn evaluation (RLEF §4): n@k counting every turn as a sample, single- vs multi-turn at
an equal sample budget, and the random-feedback ablation.

Budget accounting follows Gehring et al. 2024: every reply is one sample. For a problem, the
samples in draw order are the turns of its episodes, one episode after the other. A turn is a
*submission candidate* when it passes the public tests or ends its episode (the episode's final
answer); n@k takes the first k turns, submits the first n candidates and counts the problem solved
when one of them passes the private tests (`n_at_k_over_turns`). Correctness is known for each
episode's final turn (graded on private tests); an earlier turn failed its public tests (that is
why the episode went on) and is never submitted.

Arms compared at a budget of k samples per attempt (`compare_turns`):
  single-turn: k independent replies; pass@k (unbiased, any of k correct: an oracle picks) and
    1@k (the first reply passing the public tests is submitted);
  multi-turn:  one episode of at most k turns; 1@k = its final answer passes (≤ k samples used);
  random feedback: the same episodes, with each feedback message replaced by real feedback of
    another problem (EpisodeConfig.feedback_mode = "random").
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Sequence

import jax
import numpy as np

from rltf_jax.evaluation.pass_at_k import estimate_pass_at_k, n_at_k_one, summarize
from rltf_jax.rollout.episode_batch import episode_metrics
from rltf_jax.rollout.episodes import Episode, EpisodeConfig, run_episodes


def turn_samples(episodes: Sequence[Episode]) -> tuple[list[bool], list[bool], list[bool]]:
    """One problem's episodes as samples in draw order: (passed_public, correct, ends_episode),
    each [total turns]; correct is True only on a final turn whose code passed the private tests."""
    public, correct, ends = [], [], []
    for episode in episodes:
        last = len(episode.turns) - 1
        for k in range(len(episode.turns)):
            public.append(episode.turn_passed_public(k))
            correct.append(k == last and episode.final_passed)
            ends.append(k == last)
    return public, correct, ends


def n_at_k_over_turns(episodes: Sequence[Episode], n: int, k: int) -> float:
    """n@k of one problem (module docstring): 1.0 solved / 0.0 not, from its first k turns."""
    public, correct, ends = turn_samples(episodes)
    if k < 1 or n < 1:
        raise ValueError(f"need n ≥ 1 and k ≥ 1, got n={n}, k={k}")
    if k > len(public):
        raise ValueError(f"k={k} turns requested but the episodes hold {len(public)}")
    candidates = [c for p, c, e in zip(public[:k], correct[:k], ends[:k]) if p or e]
    return 1.0 if any(candidates[:n]) else 0.0


def by_problem(episodes: Sequence[Episode]) -> dict[str, list[Episode]]:
    """Kept (not dropped) episodes grouped by problem id, in order."""
    groups: dict[str, list[Episode]] = collections.OrderedDict()
    for episode in episodes:
        if not episode.dropped:
            groups.setdefault(episode.problem.id, []).append(episode)
    return groups


def multi_turn_scores(episodes: Sequence[Episode]) -> dict:
    """Per-problem 1@max_turns (the mean of its episodes' final answers) and turns used."""
    groups = by_problem(episodes)
    if not groups:
        raise ValueError("no episodes to score (all dropped?)")
    solved = [float(np.mean([e.final_passed for e in eps])) for eps in groups.values()]
    turns = [len(e.turns) for eps in groups.values() for e in eps]
    first = [float(np.mean([e.turn_passed_public(0) and len(e.turns) == 1 and e.final_passed for e in eps]))
             for eps in groups.values()]
    return {"ids": list(groups), "per_problem": solved, "solved_at_turn_1": float(np.mean(first)),
            "mean_turns": float(np.mean(turns)), "num_episodes": len(turns)}


def single_turn_scores(episodes: Sequence[Episode], k: int) -> dict:
    """pass@k and 1@k per problem from one-turn episodes (each one independent sample).

    1@k averages `n_at_k_one` over consecutive chunks of k samples (every full chunk is one draw).
    """
    groups = by_problem(episodes)
    if not groups:
        raise ValueError("no samples to score (all dropped?)")
    if any(len(e.turns) != 1 for eps in groups.values() for e in eps):
        raise ValueError("single_turn_scores needs one-turn episodes (EpisodeConfig(max_turns=1))")
    counts = [len(eps) for eps in groups.values()]
    if min(counts) < k:
        raise ValueError(f"pass@{k} needs ≥ {k} samples per problem, got as few as {min(counts)}")
    correct = [sum(e.final_passed for e in eps) for eps in groups.values()]
    one_at_k = []
    for eps in groups.values():
        public = [e.turn_passed_public(0) for e in eps]
        right = [e.final_passed for e in eps]
        draws = [n_at_k_one(public[i:i + k], right[i:i + k], 1, k) for i in range(0, len(eps) - k + 1, k)]
        one_at_k.append(float(np.mean(draws)))
    return {"ids": list(groups), "pass_at_k": estimate_pass_at_k(counts, correct, k).tolist(), "one_at_k": one_at_k,
            "pass_at_1": estimate_pass_at_k(counts, correct, 1).tolist()}


@dataclasses.dataclass(frozen=True)
class TurnComparison:
    """Numbers of `compare_turns`: means over problems with 95% bootstrap CIs."""

    budget: int
    single_pass_at_k: dict
    single_one_at_k: dict
    single_pass_at_1: dict | None
    multi_one_at_k: dict
    multi_mean_turns: float
    random_one_at_k: dict | None
    random_mean_turns: float | None
    multi_metrics: dict = dataclasses.field(default_factory=dict)
    # arm name -> {problem id: that problem's score}; what `paired` and pooling across runs use
    per_problem: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_per_problem(cls, budget: int, per_problem: dict, multi_mean_turns: float | None,
                         random_mean_turns: float | None, multi_metrics: dict | None = None):
        """Arm summaries (mean, bootstrap CI) from {arm name: {problem id: score}}."""
        k = budget

        def arm(name):
            return summarize(list(per_problem[name].values())) if name in per_problem else None

        return cls(budget=k, single_pass_at_k=arm(f"single_turn_pass@{k}"),
                   single_one_at_k=arm(f"single_turn_1@{k}"), single_pass_at_1=arm("single_turn_pass@1"),
                   multi_one_at_k=arm(f"multi_turn_1@{k}"), multi_mean_turns=multi_mean_turns,
                   random_one_at_k=arm(f"random_feedback_1@{k}"), random_mean_turns=random_mean_turns,
                   multi_metrics=multi_metrics or {}, per_problem=per_problem)

    def paired(self) -> dict[str, dict]:
        """Multi-turn 1@k minus each other arm, problem by problem (the problems both arms scored),
        with a bootstrap CI over problems: tighter than comparing two independent CIs."""
        k = self.budget
        multi = self.per_problem.get(f"multi_turn_1@{k}", {})
        out = {}
        for other in (f"single_turn_pass@{k}", f"random_feedback_1@{k}"):
            scores = self.per_problem.get(other)
            shared = [pid for pid in multi if scores and pid in scores]
            if shared:
                out[f"multi_turn_1@{k}_minus_{other}"] = summarize([multi[p] - scores[p] for p in shared])
        return out

    def flat(self) -> dict[str, float]:
        """One flat dict (for a JSON line): means, CIs, turns used."""
        k = self.budget
        out: dict[str, float] = {}
        for name, value in ((f"single_turn_pass@{k}", self.single_pass_at_k),
                            (f"single_turn_1@{k}", self.single_one_at_k),
                            ("single_turn_pass@1", self.single_pass_at_1),
                            (f"multi_turn_1@{k}", self.multi_one_at_k),
                            (f"random_feedback_1@{k}", self.random_one_at_k)):
            if value is not None:
                out[name] = value["mean"]
                out[name + "_ci"] = [value["ci_low"], value["ci_high"]]
        out["multi_turn_mean_turns"] = self.multi_mean_turns
        if self.random_mean_turns is not None:
            out["random_feedback_mean_turns"] = self.random_mean_turns
        out.update({f"multi_turn_{k.split('/')[-1]}": v for k, v in self.multi_metrics.items()})
        for name, value in self.paired().items():
            out[name] = value["mean"]
            out[name + "_ci"] = [value["ci_low"], value["ci_high"]]
        return out


def pool_comparisons(runs: Sequence[dict]) -> TurnComparison:
    """Pool independent `benchmarks/rlef.py` runs (their JSON lines) of one policy on one dataset.

    Each problem's score in each arm is the attempts-weighted mean over the runs that scored it
    (a run with A attempts holds A draws per problem), so two runs of one attempt each pool into
    what one run of two attempts estimates; CIs and paired differences are recomputed over the
    pooled per-problem scores. Runs must share budget, dataset, model and sampling settings.
    """
    if not runs:
        raise ValueError("nothing to pool")
    keys = ("budget", "dataset", "model", "temperature", "top_p", "max_new_tokens")
    for run in runs[1:]:
        differing = [key for key in keys if run.get(key) != runs[0].get(key)]
        if differing:
            raise ValueError(f"runs differ in {', '.join(differing)}: not the same evaluation")
    seeds = [run.get("seed") for run in runs if run.get("seed") is not None]
    if len(seeds) != len(set(seeds)):
        raise ValueError(f"runs share a seed ({seeds}): they hold the same draws, not new ones")
    if any("per_problem" not in run for run in runs):
        raise ValueError("a run has no per_problem scores (written before they were recorded)")
    sums: dict = collections.defaultdict(lambda: collections.defaultdict(float))
    weights: dict = collections.defaultdict(lambda: collections.defaultdict(float))
    for run in runs:
        for arm, scores in run["per_problem"].items():
            for pid, value in scores.items():
                sums[arm][pid] += run["attempts"] * value
                weights[arm][pid] += run["attempts"]
    per_problem = {arm: {pid: sums[arm][pid] / weights[arm][pid] for pid in sums[arm]} for arm in sums}
    k = int(runs[0]["budget"])
    total = sum(run["attempts"] for run in runs)

    def turns(name):
        if any(run.get(name) is None for run in runs):
            return None
        return sum(run["attempts"] * run[name] for run in runs) / total

    return TurnComparison.from_per_problem(k, per_problem, turns("multi_turn_mean_turns"),
                                           turns("random_feedback_mean_turns"))


def compare_turns(source, tokenizer, client, problems, *, budget: int, attempts: int, params, rng,
                  config: EpisodeConfig = EpisodeConfig(), random_feedback: bool = True) -> TurnComparison:
    """Single-turn vs multi-turn at ``budget`` samples per attempt, ``attempts`` attempts each.

    Single-turn draws ``budget * attempts`` independent replies per problem; multi-turn runs
    ``attempts`` episodes of at most ``budget`` turns per problem (and as many with random
    feedback). Same ReplySource, sampling params and sandbox limits for every arm; the real- and
    random-feedback arms share their sampling key (common random numbers: identical first turns).
    """

    keys = jax.random.split(rng, 3)
    single = run_episodes(source, tokenizer, client, problems, samples_per_problem=budget * attempts,
                          params=params, rng=keys[0], config=dataclasses.replace(config, max_turns=1))
    multi_config = dataclasses.replace(config, max_turns=budget, feedback_mode="real")
    multi = run_episodes(source, tokenizer, client, problems, samples_per_problem=attempts,
                         params=params, rng=keys[1], config=multi_config)
    single_scores = single_turn_scores(single, budget)
    multi_scores = multi_turn_scores(multi)
    k = budget
    per_problem = {f"single_turn_pass@{k}": dict(zip(single_scores["ids"], single_scores["pass_at_k"])),
                   f"single_turn_1@{k}": dict(zip(single_scores["ids"], single_scores["one_at_k"])),
                   "single_turn_pass@1": dict(zip(single_scores["ids"], single_scores["pass_at_1"])),
                   f"multi_turn_1@{k}": dict(zip(multi_scores["ids"], multi_scores["per_problem"]))}
    random_turns = None
    if random_feedback:
        shuffled = run_episodes(source, tokenizer, client, problems, samples_per_problem=attempts,
                                params=params, rng=keys[1],
                                config=dataclasses.replace(multi_config, feedback_mode="random"))
        random_scores = multi_turn_scores(shuffled)
        random_turns = random_scores["mean_turns"]
        per_problem[f"random_feedback_1@{k}"] = dict(zip(random_scores["ids"], random_scores["per_problem"]))
    return TurnComparison.from_per_problem(budget, per_problem, multi_scores["mean_turns"], random_turns,
                                           multi_metrics=episode_metrics(multi))


def evaluate_episodes(source, tokenizer, client, problems, *, turns: int, num_samples: int,
                      ks: Sequence[int], params, rng, config: EpisodeConfig = EpisodeConfig()) -> dict:
    """`python -m rltf_jax.evaluate --turns T`: ``num_samples`` episodes of ≤ ``turns`` turns per
    problem; 1@k over turns (every reply is a sample, module docstring) for each k in ``ks`` up to
    the turns drawn, per difficulty, with 95% CIs; the layout of `evaluate.score` with keys "1@k"."""
    episodes = run_episodes(source, tokenizer, client, problems, samples_per_problem=num_samples,
                            params=params, rng=rng, config=dataclasses.replace(config, max_turns=turns))
    groups = by_problem(episodes)
    if not groups:
        raise ValueError("no episodes to score (all dropped by sandbox errors?)")
    difficulty = {p.id: p.difficulty or "unknown" for p in problems}
    # A problem whose episodes ended early (public tests passed) drew fewer than k turns: its 1@k is
    # scored on the turns it drew (its submitted answers are all among them).
    per_k = {}
    for k in sorted(set(ks)):
        per_k[f"1@{k}"] = {pid: n_at_k_over_turns(eps, 1, min(k, sum(len(e.turns) for e in eps)))
                           for pid, eps in groups.items()}
    result = {"num_problems": len(groups), "num_samples": num_samples, "turns": turns, "ci95": {},
              "by_difficulty": {}, "sandbox_errors": sum(e.dropped for e in episodes),
              "mean_turns": float(np.mean([len(e.turns) for eps in groups.values() for e in eps]))}
    for key, solved in per_k.items():
        stats = summarize(list(solved.values()))
        result[key] = stats["mean"]
        result["ci95"][key] = [stats["ci_low"], stats["ci_high"]]
        for name in sorted(set(difficulty[pid] for pid in solved)):
            values = [v for pid, v in solved.items() if difficulty[pid] == name]
            result["by_difficulty"].setdefault(name, {})[key] = summarize(values)
    result["problems"] = [{"id": pid, "difficulty": difficulty[pid], "episodes": len(eps),
                           "turns": [len(e.turns) for e in eps],
                           "final_passed": [bool(e.final_passed) for e in eps]}
                          for pid, eps in groups.items()]
    return result
