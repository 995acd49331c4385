"""A training rollout with shared prefill vs a prefill per row: the default RLTF config's shape.

8 starter problems x 4 samples (`configs/default.py`: chat prompts, T = 0.7, top-p 0.95, <= 128
new tokens, stop after the code block, bf16 rollouts), SmolLM2-135M-Instruct. Two samplers on the
same weights, `share_prompt_prefill` True and False, generate each step's batch in turn (the first
step compiles and is not timed); their tokens must be identical. Prints one JSON line with the
median seconds per rollout of each and the ratio.

    flock /tmp/rltf_heavy.lock .venv/bin/python benchmarks/rollout_prefill.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import numpy as np

from rltf_jax.data import load_problems
from rltf_jax.models import load_model
from rltf_jax.prompts import build_prompt
from rltf_jax.sampling import Sampler, SamplingParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    problems = load_problems("starter:train")
    loaded = load_model("smollm2-135m-instruct")
    params = SamplingParams(128, temperature=0.7, top_p=0.95, stop_after_code_block=True)
    samplers = {"shared": Sampler(loaded, dtype="bfloat16"),
                "per_row": Sampler(loaded, dtype="bfloat16", share_prompt_prefill=False)}
    times = {name: [] for name in samplers}
    for step in range(args.steps + 1):
        batch = problems[args.problems * step: args.problems * (step + 1)]
        prompts = [build_prompt(p, loaded.tokenizer, style="chat") for p in batch for _ in range(args.samples)]
        tokens = {}
        for name, sampler in samplers.items():
            start = time.perf_counter()
            tokens[name] = sampler.generate(prompts, params, jax.random.key(step)).response_tokens
            if step > 0:
                times[name].append(time.perf_counter() - start)
        assert np.array_equal(tokens["shared"], tokens["per_row"]), f"step {step}: the samplers' tokens differ"
    median = {name: statistics.median(t) for name, t in times.items()}
    print(json.dumps({"benchmark": "rollout_prefill", "rows": args.problems * args.samples,
                      "distinct_prompts": args.problems, "steps": args.steps,
                      "buckets": [list(k) for k in samplers["shared"].compiled_buckets],
                      "shared_s": round(median["shared"], 2), "per_row_s": round(median["per_row"], 2),
                      "per_row_vs_shared": round(median["per_row"] / median["shared"], 3)}))


if __name__ == "__main__":
    main()
