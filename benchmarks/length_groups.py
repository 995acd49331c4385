"""The RLEF PPO update over length groups vs over one padded batch (rltf_jax/length_groups.py).

SmolLM2-135M-Instruct (f32, the update of configs/rlef.py: turn-level values, KL 0.05, remat "auto";
by default 8 rows in 2 microbatches, a quarter of configs/rlef.py's 32 in 4, to fit a session on a
slow CPU), one batch of RLEF-shaped rows built to the statistics of the session-9 RLEF run
(docs/results/rlef/rlef_run3/metrics.jsonl: 1.85 replies per episode, ~42 tokens per reply; feedback
≤ 256 tokens): 1 reply with p 0.45, 2 with 0.25, 3 with 0.30; prompt 90–150 tokens, replies 15–70,
feedback 80–256 (uniform). Token ids are random: the update's cost does not depend on them.

Baseline in the same run: the same update on the single batch padded to its longest row
(`length_groups=1`, what the trainer did before). Each arm is compiled, checked against the baseline
from the same initial state (metrics), then timed in turns; medians are compared. Prints one JSON line
with `speedup` = baseline seconds / grouped seconds per arm.

    flock /tmp/rltf_heavy.lock .venv/bin/python benchmarks/length_groups.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import numpy as np

from rltf_jax import ppo
from rltf_jax.ppo import update as ppo_update_step
from rltf_jax.ppo.length_groups import bucket_lengths, split_by_length
from rltf_jax.models.load import load_model


def rlef_rows(rows: int, vocab: int, seed: int = 0) -> ppo.PPOBatch:
    """A [rows, T] RLEF-shaped batch (module docstring), right-padded to a multiple of 64 as
    episode_batch.py pads, with turn_ids and value_positions."""
    rng = np.random.default_rng(seed)
    layouts = []
    for _ in range(rows):
        turns = int(rng.choice([1, 2, 3], p=[0.45, 0.25, 0.30]))
        segments = [("env", int(rng.integers(90, 151)))]
        for k in range(turns):
            if k:
                segments.append(("env", int(rng.integers(80, 257))))
            segments.append(("reply", int(rng.integers(15, 71))))
        layouts.append(segments)
    width = bucket_lengths(max(sum(n for _, n in s) for s in layouts), 64)
    tokens = rng.integers(0, vocab, (rows, width)).astype(np.int32)
    attention = np.zeros((rows, width), bool)
    response = np.zeros((rows, width), bool)
    rewards = np.zeros((rows, width), np.float32)
    turn_ids = np.full((rows, width), -1, np.int32)
    positions = np.full((rows, 3), -1, np.int32)
    for row, segments in enumerate(layouts):
        start, k = 0, 0
        for kind, n in segments:
            if kind == "reply":
                positions[row, k] = start - 1
                response[row, start:start + n] = True
                turn_ids[row, start:start + n] = k
                k += 1
            start += n
        attention[row, :start] = True
        rewards[row, start - 1] = rng.choice([1.0, -1.0])
    return ppo.PPOBatch(tokens, attention, response, rewards, np.arange(rows) // 4,
                        np.zeros((rows, width), np.float32), turn_ids, positions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=8, help="episodes per update (configs/rlef.py: 32)")
    parser.add_argument("--grad-accum", type=int, default=2, help="microbatches (configs/rlef.py: 4)")
    parser.add_argument("--groups", default="2", help="length-group counts to compare with 1")
    parser.add_argument("--reps", type=int, default=1, help="timed updates per arm, in turns")
    args = parser.parse_args()

    loaded = load_model("smollm2-135m-instruct", dtype="float32", param_dtype="float32", remat="auto")
    config = ppo.PPOConfig(advantage="turn", kl_coef=0.05, value_lr=1e-4, lr=1e-5, grad_accum=args.grad_accum, warmup_steps=2,
                           temperature=0.7)
    state, defs = ppo.init_train_state(loaded, config)
    update = ppo.make_update(defs, config)
    batch = rlef_rows(args.rows, loaded.config.vocab_size)
    arms = {1: batch}
    for g in (int(x) for x in args.groups.split(",")):
        arms[g] = split_by_length(batch, g, rows_multiple=config.grad_accum)
    real = int(batch.attention_mask.sum())
    out = {"benchmark": "length_groups", "model": "smollm2-135m-instruct", "dtype": "float32",
           "rows": args.rows, "real_tokens": real, "baseline": "one batch padded to its longest row",
           "shapes": {g: [list(p.tokens.shape) for p in ppo_update_step.batch_parts(a)] for g, a in arms.items()},
           "padded_tokens": {g: int(sum(p.tokens.size for p in ppo_update_step.batch_parts(a))) for g, a in arms.items()}}

    # compile + agreement: every arm's first update from the same initial state
    compile_s, metrics = {}, {}
    for g, data in arms.items():
        fresh = jax.tree.map(lambda x: x.copy(), state)
        start = time.perf_counter()
        _, m = update(fresh, data)
        metrics[g] = {k: float(v) for k, v in jax.device_get(m).items()}
        compile_s[g] = time.perf_counter() - start
    out["first_update_s (with compile)"] = compile_s
    out["max_metric_diff_vs_baseline"] = {
        g: max(abs(metrics[g][k] - metrics[1][k]) for k in metrics[1]) for g in arms if g != 1}

    times = {g: [] for g in arms}
    for _ in range(args.reps):
        for g, data in arms.items():
            start = time.perf_counter()
            state, m = update(state, data)
            jax.block_until_ready(m)
            times[g].append(time.perf_counter() - start)
    out["update_s"] = {g: statistics.median(t) for g, t in times.items()}
    out["update_s_all"] = times
    out["speedup"] = {g: out["update_s"][1] / out["update_s"][g] for g in arms if g != 1}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
