"""Single-turn evaluation: sample programs for each problem, grade them, report pass@k by difficulty.

`evaluate_problems` is the core the trainer calls for held-out pass@1 and `python -m
rltf_jax.evaluate` (`rltf_jax.cli.evaluate`) wraps for users; `evaluate_solutions` grades the
reference programs. Samples come from `rltf_jax.sampling.Sampler`; programs are graded by the
sandbox service (`rltf_jax.env.grading`). Results are dicts with top-level ``pass@1``, ``pass@5``,
...; `markdown_table` renders the same numbers with 95% bootstrap CIs per difficulty.
"""

from __future__ import annotations

import collections
import sys
from typing import Sequence

import jax
from tqdm import tqdm

from rltf_jax.data import Problem
from rltf_jax.env.grading import grade_programs
from rltf_jax.env.prompts import PLAIN_STOP_SEQUENCES, build_prompt, extract_code
from rltf_jax.evaluation.pass_at_k import estimate_pass_at_k, summarize
from rltf_jax.sampling import SamplingParams


def _progress(total: int, desc: str, enabled: bool):
    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def score(problems: Sequence[Problem], verdicts: Sequence[Sequence[str]], ks: Sequence[int]) -> dict:
    """pass@k (overall with CI, and per difficulty) from ``[problem][sample]`` verdicts."""
    if not problems:
        raise ValueError("no problems to score")
    num_samples = min(len(v) for v in verdicts)
    ks = [k for k in ks if k <= num_samples]
    if not ks:
        raise ValueError(f"every k exceeds the {num_samples} samples per problem")
    correct = [sum(v == "pass" for v in vs) for vs in verdicts]
    counts = [len(vs) for vs in verdicts]
    groups = collections.defaultdict(list)
    for index, problem in enumerate(problems):
        groups[problem.difficulty].append(index)
    result: dict = {}
    by_difficulty: dict = {name: {} for name in sorted(groups)}
    ci: dict = {}
    for k in ks:
        values = estimate_pass_at_k(counts, correct, k)
        overall = summarize(values)
        result[f"pass@{k}"] = overall["mean"]
        ci[f"pass@{k}"] = [overall["ci_low"], overall["ci_high"]]
        for name, indices in groups.items():
            by_difficulty[name][f"pass@{k}"] = summarize(values[indices])
    histogram = collections.Counter(v for vs in verdicts for v in vs)
    result.update({
        "ci95": ci, "by_difficulty": by_difficulty, "num_problems": len(problems),
        "num_samples": num_samples, "verdicts": dict(sorted(histogram.items())),
        "sandbox_errors": histogram.get("sandbox_error", 0),
        "problems": [{"id": p.id, "difficulty": p.difficulty, "n": n, "correct": c, "verdicts": list(vs)}
                     for p, n, c, vs in zip(problems, counts, correct, verdicts)]})
    return result


def evaluate_problems(sampler, client, problems: Sequence[Problem], *, tokenizer=None, num_samples: int = 1,
                      ks: Sequence[int] = (1,), temperature: float = 0.0, top_p: float = 1.0,
                      max_new_tokens: int = 512, style: str = "chat", batch_size: int = 16,
                      seed: int = 0, limits: dict | None = None, progress: bool = True,
                      stop_after_code_block: bool = True, samples: list | None = None) -> dict:
    """Sample ``num_samples`` replies per problem, grade them in the sandbox, return `score`.

    ``temperature == 0`` means greedy (then ``num_samples`` must be 1). Problems are processed in
    batches of ``batch_size`` prompts (each repeated ``num_samples`` times); grading of a batch
    goes to the sandbox as one ``execute_batch``. ``tokenizer`` defaults to the sampler's.
    Plain-style batches of function problems stop at `PLAIN_STOP_SEQUENCES`; chat replies stop
    once their first ``` block is closed (``stop_after_code_block``; the graded code is that block
    unless a later one defines the function, which small models rarely write). ``samples``, if
    given, gets every graded ``(problem, program or None)`` appended (for `harness_samples`).
    """

    if temperature == 0.0 and num_samples != 1:
        raise ValueError("greedy decoding (temperature 0) gives identical samples; use --num-samples 1 "
                         "or a temperature > 0")
    tokenizer = tokenizer if tokenizer is not None else sampler.tokenizer
    base = dict(max_new_tokens=max_new_tokens, temperature=temperature or 1.0, top_p=top_p,
                greedy=temperature == 0.0)
    rng = jax.random.PRNGKey(seed)
    verdicts: list[list[str]] = []
    bar = _progress(len(problems), "evaluate", progress)
    per_batch = max(1, batch_size // num_samples)
    for start in range(0, len(problems), per_batch):
        chunk = problems[start:start + per_batch]
        prompts = [build_prompt(p, tokenizer, style=style) for p in chunk for _ in range(num_samples)]
        stops = PLAIN_STOP_SEQUENCES if style == "plain" and all(p.starter_code for p in chunk) else ()
        rng, key = jax.random.split(rng)
        params = SamplingParams(**base, stop_strings=stops,
                                stop_after_code_block=stop_after_code_block and style == "chat")
        texts = sampler.generate(prompts, params, key).texts
        programs = []
        for i, problem in enumerate(chunk):
            replies = texts[i * num_samples:(i + 1) * num_samples]
            codes = [extract_code(problem, reply, style=style) for reply in replies]
            programs.append([c.program if c is not None else None for c in codes])
            if samples is not None:
                samples.extend((problem, program) for program in programs[-1])
        verdicts += grade_programs(client, chunk, programs, limits=limits)
        bar.update(len(chunk))
    bar.close()
    return score(problems, verdicts, ks)


def evaluate_solutions(client, problems: Sequence[Problem], *, limits: dict | None = None,
                       progress: bool = True, batch_size: int = 32, samples: list | None = None) -> dict:
    """Grade each problem's first reference solution as its one sample (pass@1 should be 1.0)."""
    with_solution = [p for p in problems if p.solutions]
    if samples is not None:
        samples.extend((p, p.solutions[0]) for p in with_solution)
    verdicts: list[list[str]] = []
    bar = _progress(len(with_solution), "solutions", progress)
    for start in range(0, len(with_solution), batch_size):
        chunk = with_solution[start:start + batch_size]
        verdicts += grade_programs(client, chunk, [[p.solutions[0]] for p in chunk], limits=limits)
        bar.update(len(chunk))
    bar.close()
    result = score(with_solution, verdicts, (1,))
    result["without_solution"] = len(problems) - len(with_solution)
    return result


def markdown_table(result: dict) -> str:
    """pass@k per difficulty (and overall) with 95% CIs as a Markdown table."""
    ks = [key for key in result if (key.startswith("pass@") and key[5:].isdigit()) or
          (key.startswith("1@") and key[2:].isdigit())]
    head = "| difficulty | problems | " + " | ".join(f"{k} (95% CI)" for k in ks) + " |"
    rows = [head, "|" + "---|" * (2 + len(ks))]

    def cell(mean, low, high):
        return f"{100 * mean:.1f}% ({100 * low:.1f}–{100 * high:.1f})"

    for name, stats in result["by_difficulty"].items():
        n = stats[ks[0]]["num_problems"]
        rows.append(f"| {name} | {n} | " + " | ".join(
            cell(stats[k]["mean"], stats[k]["ci_low"], stats[k]["ci_high"]) for k in ks) + " |")
    rows.append(f"| **all** | {result['num_problems']} | " + " | ".join(
        cell(result[k], *result["ci95"][k]) for k in ks) + " |")
    return "\n".join(rows)
