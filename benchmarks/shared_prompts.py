"""The default PPO update with each prompt packed once (ppo.share_prompts) vs two length groups.

SmolLM2-135M-Instruct (f32 parameters), the PPO block of configs/default.py (GRPO, KL 0.02 k3,
bf16 compute, 4 microbatches), one batch shaped like a `make train` step: 8 problems of
`starter:train` in the chat prompt the trainer builds, 4 replies each. A reply is the problem's
reference solution in a ```python block, cut at 50–100% of its tokens (≤ 128): `make train`'s
replies average ~34 tokens (docs/results/make_train_relayout), these 24, the prompts ~70, so most
of an unpacked row is prompt.

Baseline in the same run: the update over the same rows in two length groups (`length_groups=2`,
the default before). Each arm is compiled and run once from the same initial state (its metrics
are compared), then timed in turns; medians are compared. Prints one JSON line with
`speedup` = baseline seconds / packed seconds.

    .venv/bin/python benchmarks/shared_prompts.py --reps 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rltf_jax import ppo  # noqa: E402
from rltf_jax.data import load_problems  # noqa: E402
from rltf_jax.env.prompts import build_prompt  # noqa: E402
from rltf_jax.models.load import load_model  # noqa: E402
from rltf_jax.ppo.length_groups import split_by_length  # noqa: E402
from rltf_jax.ppo.shared_prompts import pack_shared_prompts  # noqa: E402
from rltf_jax.run.config_files import load_config_file  # noqa: E402


def step_batch(tokenizer, problems: int, replies: int, max_new_tokens: int, seed: int = 0) -> ppo.PPOBatch:
    """A PPOBatch like a default RL step's (module docstring): prompts left-padded, replies right-padded."""
    rng = np.random.default_rng(seed)
    chosen = load_problems("starter:train")[:problems]
    prompts = [tokenizer.encode(build_prompt(p, tokenizer, style="chat")) for p in chosen]
    rows, group_ids = [], []
    for g, (problem, prompt) in enumerate(zip(chosen, prompts)):
        code = tokenizer.encode(f"```python\n{problem.solutions[0]}\n```", add_special_tokens=False)
        for _ in range(replies):
            keep = max(1, min(max_new_tokens, int(len(code) * rng.uniform(0.5, 1.0))))
            rows.append((prompt, code[:keep]))
            group_ids.append(g)
    width_p, width_r = max(len(p) for p, _ in rows), max(len(r) for _, r in rows)
    prompt_tokens = np.zeros((len(rows), width_p), np.int32)
    prompt_mask = np.zeros((len(rows), width_p), bool)
    reply_tokens = np.zeros((len(rows), width_r), np.int32)
    reply_mask = np.zeros((len(rows), width_r), bool)
    for i, (prompt, reply) in enumerate(rows):
        prompt_tokens[i, width_p - len(prompt):], prompt_mask[i, width_p - len(prompt):] = prompt, True
        reply_tokens[i, :len(reply)], reply_mask[i, :len(reply)] = reply, True
    rewards = np.zeros(reply_mask.shape, np.float32)
    ends = reply_mask.sum(1) - 1
    rewards[np.arange(len(rows)), ends] = rng.choice([-1.0, -0.3, 1.0], len(rows))
    return ppo.batch_from_rollout(prompt_tokens, prompt_mask, reply_tokens, reply_mask, rewards, group_ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--replies", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3, help="timed updates per arm, in turns")
    args = parser.parse_args()

    run_config = load_config_file(os.path.join(ROOT, "configs", "default.py"))
    base = ppo.PPOConfig(**{"temperature": run_config.rollout.temperature, **run_config.ppo.to_dict()})
    configs = {"length_groups": dataclasses.replace(base, share_prompts=False, length_groups=2),
               "shared_prompts": dataclasses.replace(base, share_prompts=True, length_groups=1)}
    loaded = load_model("smollm2-135m-instruct", dtype="float32", param_dtype="float32", remat="auto")
    batch = step_batch(loaded.tokenizer, args.problems, args.replies, run_config.rollout.max_new_tokens)
    per_step = base.num_minibatches * base.grad_accum
    inputs = {"length_groups": split_by_length(batch, 2, rows_multiple=per_step),
              "shared_prompts": pack_shared_prompts(batch, per_step)}
    positions = {"length_groups": int(sum(p.tokens.size for p in inputs["length_groups"])),
                 "shared_prompts": int(inputs["shared_prompts"].packing.tokens.size)}
    reply_lengths = np.asarray(batch.response_mask).sum(1)
    out = {"benchmark": "shared_prompts", "model": "smollm2-135m-instruct", "config": "configs/default.py ppo",
           "rows": int(batch.tokens.shape[0]), "real_tokens": int(np.asarray(batch.attention_mask).sum()),
           "prompt_tokens_mean": float((np.asarray(batch.attention_mask).sum(1) - reply_lengths).mean()),
           "reply_tokens_mean": float(reply_lengths.mean()),
           "baseline": "two length groups (length_groups=2)", "model_positions": positions,
           "shapes": {"length_groups": [list(p.tokens.shape) for p in inputs["length_groups"]],
                      "shared_prompts": list(inputs["shared_prompts"].packing.tokens.shape)}}

    state, defs = ppo.init_train_state(loaded, base)
    updates = {name: ppo.make_update(defs, config) for name, config in configs.items()}
    compile_s, metrics = {}, {}
    for name, update in updates.items():  # compile, and each arm's first update from the same state
        start = time.perf_counter()
        _, m = update(jax.tree.map(lambda x: x.copy(), state), inputs[name])
        metrics[name] = {k: float(v) for k, v in jax.device_get(m).items()}
        compile_s[name] = time.perf_counter() - start
    out["first_update_s (with compile)"] = compile_s
    out["metrics"] = metrics
    times = {name: [] for name in updates}
    for _ in range(args.reps):
        for name, update in updates.items():
            start = time.perf_counter()
            state, m = update(state, inputs[name])
            jax.block_until_ready(m)
            times[name].append(time.perf_counter() - start)
    out["update_s"] = {name: statistics.median(t) for name, t in times.items()}
    out["update_s_all"] = times
    out["speedup"] = out["update_s"]["length_groups"] / out["update_s"]["shared_prompts"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
