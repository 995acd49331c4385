"""A training rollout, two sampler variants side by side: the default RLTF config's shape.

8 starter problems x 4 samples (`configs/default.py`: chat prompts, T = 0.7, top-p 0.95, <= 128
new tokens, stop after the code block, bf16 rollouts), SmolLM2-135M-Instruct. Two samplers on the
same weights generate each step's batch in turn (the first step compiles and is not timed):
  --compare prefill (default): `share_prompt_prefill` True vs False; their tokens must be identical;
  --compare attention: the fused CPU decode attention vs XLA's (`decode_attention`); bf16 rounds
    differently on the two paths, so the share of identical rows is reported, not asserted.
Prints one JSON line with the median seconds per rollout of each and the ratio.

    flock /tmp/rltf_heavy.lock .venv/bin/python benchmarks/rollout_prefill.py [--compare attention]
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
from rltf_jax.env.prompts import build_prompt
from rltf_jax.sampling import Sampler, SamplingParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--compare", choices=("prefill", "attention"), default="prefill")
    args = parser.parse_args()
    problems = load_problems("starter:train")
    loaded = load_model("smollm2-135m-instruct")
    params = SamplingParams(128, temperature=0.7, top_p=0.95, stop_after_code_block=True)
    if args.compare == "prefill":
        samplers = {"shared": Sampler(loaded, dtype="bfloat16"),
                    "per_row": Sampler(loaded, dtype="bfloat16", share_prompt_prefill=False)}
    else:
        samplers = {"fused": Sampler(loaded, dtype="bfloat16", decode_attention="fused"),
                    "xla": Sampler(loaded, dtype="bfloat16", decode_attention="xla")}
    (first, second), same_rows = samplers, []
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
        same_rows.append(float(np.mean(np.all(tokens[first] == tokens[second], axis=1))))
        if args.compare == "prefill":
            assert same_rows[-1] == 1.0, f"step {step}: the samplers' tokens differ"
    median = {name: statistics.median(t) for name, t in times.items()}
    print(json.dumps({"benchmark": "rollout_prefill", "compare": args.compare, "rows": args.problems * args.samples,
                      "distinct_prompts": args.problems, "steps": args.steps,
                      "buckets": [list(k) for k in samplers[first].compiled_buckets],
                      f"{first}_s": round(median[first], 2), f"{second}_s": round(median[second], 2),
                      f"{second}_vs_{first}": round(median[second] / median[first], 3),
                      "identical_rows": round(float(np.mean(same_rows)), 3)}))


if __name__ == "__main__":
    main()
