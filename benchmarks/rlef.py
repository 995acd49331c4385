"""RLEF claim: multi-turn 1@k (reading execution feedback) vs single-turn pass@k at the same budget.

    flock /tmp/rltf_heavy.lock .venv/bin/python benchmarks/rlef.py \
        --dataset starter:heldout --limit 16 --max-new-tokens 192
    # after RLEF training (a training checkpoint directory):
    flock /tmp/rltf_heavy.lock .venv/bin/python benchmarks/rlef.py --checkpoint runs/rlef/checkpoints

On the starter problems, with the same policy, sampling parameters and sandbox limits for every
arm (rltf_jax/evaluate_turns.py): single-turn pass@k and 1@k from k independent replies,
multi-turn 1@k from one episode of ≤ k turns with real feedback, and the same with feedback from
another problem (the ablation). Prints one JSON line; ``ratio`` is multi-turn 1@k over
single-turn pass@k (RLEF's claim after training: > 1; for the base model RLEF found ≤ 1), and
``multi_turn_1@k_minus_*`` the per-problem (paired) differences with bootstrap CIs. Runs with
other ``--seed``s pool into one estimate with ``--pool RUN1.jsonl RUN2.jsonl ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import jax

from rltf_jax.data import load_problems
from rltf_jax.rollout.episodes import EpisodeConfig
from rltf_jax.cli.evaluate import load_policy
from rltf_jax.evaluation.multi_turn import compare_turns, pool_comparisons
from rltf_jax.env.feedback import FeedbackConfig
from rltf_jax.sampling import Sampler, SamplingParams
from rltf_jax.env.sandbox_client import SandboxClient, local_sandbox


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model name or path (base policy)")
    parser.add_argument("--checkpoint", default=None, help="RLEF-trained checkpoint directory (overrides --model)")
    parser.add_argument("--dataset", default="starter:heldout")
    parser.add_argument("--limit", type=int, default=16, help="first N problems of the dataset (0 = all)")
    parser.add_argument("--budget", type=int, default=3, help="k: samples (turns) per attempt")
    parser.add_argument("--attempts", type=int, default=1, help="attempts per problem and arm")
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--temperature", type=float, default=0.2, help="RLEF's 1@3 setting")
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--feedback-tokens", type=int, default=256)
    parser.add_argument("--no-random-feedback", action="store_true", help="skip the ablation arm")
    parser.add_argument("--sandbox-url", default=None, help="a running sandbox (default: start one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool", nargs="+", metavar="JSONL", default=None,
                        help="pool the result lines of earlier runs (other seeds) instead of running")
    return parser.parse_args(argv)


def _ratio(flat: dict, k: int) -> float | None:
    """Multi-turn 1@k over single-turn pass@k (None when the latter is 0)."""
    single = flat[f"single_turn_pass@{k}"]
    return flat[f"multi_turn_1@{k}"] / single if single else None


def pooled(paths: list[str]) -> dict:
    """One result line from the last line of each file (runs of one policy with other seeds)."""
    runs = []
    for path in paths:
        with open(path) as f:
            lines = [line for line in f if line.strip()]
        if not lines:
            raise SystemExit(f"{path}: no result line")
        runs.append(json.loads(lines[-1]))
    comparison = pool_comparisons(runs)
    flat = comparison.flat()
    k = comparison.budget
    first = runs[0]
    return {"benchmark": "rlef", **{key: first[key] for key in ("model", "trained", "dataset", "budget",
                                                                  "max_new_tokens", "temperature", "top_p")},
            "problems": len(comparison.per_problem[f"multi_turn_1@{k}"]),
            "attempts": sum(run["attempts"] for run in runs), "pooled_from": paths,
            "seeds": [run.get("seed") for run in runs], **flat, "ratio": _ratio(flat, k),
            "per_problem": comparison.per_problem}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.pool:
        result = pooled(args.pool)
        print(json.dumps(result))
        return result
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    start = time.perf_counter()
    problems = load_problems(args.dataset)
    problems = problems[:args.limit] if args.limit else problems
    loaded = load_policy(None if args.checkpoint else args.model, args.checkpoint)
    sampler = Sampler(loaded)
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                            top_p=args.top_p)
    config = EpisodeConfig(feedback=FeedbackConfig(max_tokens=args.feedback_tokens), seed=args.seed)
    with local_sandbox() if args.sandbox_url is None else _given(args.sandbox_url) as url, \
            SandboxClient(url) as client:
        comparison = compare_turns(sampler, loaded.tokenizer, client, problems, budget=args.budget,
                                   attempts=args.attempts, params=params, rng=jax.random.key(args.seed),
                                   config=config, random_feedback=not args.no_random_feedback)
    flat = comparison.flat()
    k = args.budget
    result = {"benchmark": "rlef", "model": args.checkpoint or args.model,
              "trained": bool(args.checkpoint), "dataset": args.dataset, "problems": len(problems),
              "budget": k, "attempts": args.attempts, "max_new_tokens": args.max_new_tokens,
              "temperature": args.temperature, "top_p": args.top_p, "seed": args.seed, **flat,
              "ratio": _ratio(flat, k), "wall_s": round(time.perf_counter() - start, 1),
              "per_problem": comparison.per_problem}
    print(json.dumps(result))
    return result


class _given:
    """A context manager yielding an already running sandbox's URL."""

    def __init__(self, url: str):
        self.url = url

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc) -> None:
        return None


if __name__ == "__main__":
    main()
