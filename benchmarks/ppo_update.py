"""Throughput of the jitted PPO update on SmolLM2-135M vs a plain torch training step.

Measured in one run, per dtype (float32, and bfloat16 = params f32 / matmuls bf16 with f32
accumulation on both sides: jax casts params per forward, torch uses CPU autocast):

- jax_update: the whole `rltf_jax.ppo.update` update (old-policy and reference forwards, GAE, one epoch of
  one minibatch: forward + backward + AdamW), tokens/s over batch × seq tokens;
- jax_train_step: the update's minibatch step alone (forward + backward + AdamW, same work as torch);
- torch: `transformers` SmolLM2 from the same GGUF, causal-LM loss, backward, torch.optim.AdamW;
- peaks: best square-matmul FLOP/s of each framework for that dtype;
- bfloat16 only, `jax_plain_vjp_train_step`: the same train step with plain autodiff of the model's
  matmuls instead of `rltf_jax.models.matmul`'s canonical-layout backward (the A/B of that fix).

Model FLOPs per token (PaLM's count): forward F = 2·N + 4·L·T·H·hd (N = matmul params incl. the
tied LM head); a train step is 3F, the PPO update 5F (two extra forwards). FLOP/s fraction = achieved
/ the best measured matmul peak of that dtype. Prints one JSON line.

    flock /tmp/rltf_heavy.lock .venv/bin/python benchmarks/ppo_update.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from rltf_jax import ppo
from rltf_jax.ppo import update as ppo_update_step
from rltf_jax.models import llama
from rltf_jax.models.load import load_model
from rltf_jax.models.registry import smollm2_gguf_path


@contextlib.contextmanager
def plain_matmul_vjp():
    """The model's matmuls as plain `jnp.matmul` / einsum, differentiated by autodiff (the pre-fix path)."""
    saved = llama.matmul_f32, llama.matmul_transposed_f32
    llama.matmul_f32 = lambda x, w: jnp.matmul(x.astype(w.dtype), w, preferred_element_type=jnp.float32)
    llama.matmul_transposed_f32 = lambda x, w: jnp.einsum("...k,nk->...n", x.astype(w.dtype), w,
                                                          preferred_element_type=jnp.float32)
    try:
        yield
    finally:
        llama.matmul_f32, llama.matmul_transposed_f32 = saved


def best_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def jax_matmul_peak(dtype: str, n: int = 2048, reps: int = 5) -> float:
    a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), dtype)
    mm = jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32))
    mm(a, a).block_until_ready()
    return 2 * n ** 3 / best_time(lambda: mm(a, a).block_until_ready(), reps)


def torch_matmul_peak(dtype: str, n: int = 2048, reps: int = 5) -> float:
    import torch

    a = torch.randn(n, n, dtype=getattr(torch, dtype))
    torch.matmul(a, a)
    return 2 * n ** 3 / best_time(lambda: torch.matmul(a, a), reps)


def forward_flops_per_token(config, seq: int) -> float:
    c = config
    q, kv = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    per_layer = c.hidden_size * (q + 2 * kv) + q * c.hidden_size + 3 * c.hidden_size * c.intermediate_size
    matmul_params = c.num_layers * per_layer + c.vocab_size * c.hidden_size
    return 2 * matmul_params + 4 * c.num_layers * seq * q


def make_batch(batch: int, seq: int, vocab: int, prompt: int) -> ppo.PPOBatch:
    rng = np.random.default_rng(0)
    response = seq - prompt
    rewards = np.zeros((batch, response), np.float32)
    rewards[:, -1] = rng.choice([-1.0, -0.3, 1.0], batch)
    return ppo.batch_from_rollout(rng.integers(0, vocab, (batch, prompt)), np.ones((batch, prompt), bool),
                                  rng.integers(0, vocab, (batch, response)), np.ones((batch, response), bool),
                                  rewards, np.arange(batch) // 4)


def bench_jax(dtype: str, batch: int, seq: int, steps: int, model: str = "smollm2-135m-instruct") -> dict:
    loaded = load_model(model, dtype=dtype, param_dtype="float32")
    config = ppo.PPOConfig(compute_dtype=dtype, lr=1e-6)
    state, defs = ppo.init_train_state(loaded, config)
    data = make_batch(batch, seq, loaded.config.vocab_size, prompt=seq // 4)
    update = ppo.make_update(defs, config)
    start = time.perf_counter()
    state, metrics = update(state, data)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start

    def run_update():
        nonlocal state
        state, m = update(state, data)
        jax.block_until_ready(m)

    update_s = best_time(run_update, steps)

    # The minibatch step alone (forward + backward + AdamW): the same work as the torch step.
    stats = jax.jit(lambda s, b: ppo.rollout_statistics(defs, config, s, b))(state, jax.tree.map(jnp.asarray, data))
    mb = {k: stats[k] for k in ("old_logp", "ref_logp", "advantages", "action_mask")}
    if "returns" in stats:  # a critic (GAE): the value loss's inputs too
        mb.update({k: stats[k] for k in ("old_values", "returns", "value_mask")})
    mb.update(tokens=jnp.asarray(data.tokens), attention_mask=jnp.asarray(data.attention_mask))
    mb = jax.tree.map(lambda x: x[None], mb)  # one minibatch of one microbatch: [accum=1, B, ...]
    optimizer = ppo.make_optimizer(config)
    kl_coef = state.kl_coef
    train_step = jax.jit(lambda carry, m: ppo_update_step._minibatch_step(defs, config, optimizer, kl_coef, carry, (m,)),
                         donate_argnums=(0,))
    carry = ({"policy": state.policy, "value": state.value}, state.opt_state)
    carry, sums = train_step(carry, mb)
    jax.block_until_ready(sums)

    def run_step():
        nonlocal carry
        carry, s = train_step(carry, mb)
        jax.block_until_ready(s)

    step_s = best_time(run_step, steps)
    return {"update_s": update_s, "train_step_s": step_s, "compile_s": compile_s,
            "finite": bool(all(np.isfinite(float(v)) for v in metrics.values())), "config": loaded.config}


def bench_torch(dtype: str, batch: int, seq: int, steps: int, vocab: int) -> dict:
    import os

    import torch
    from transformers import AutoModelForCausalLM

    folder, name = os.path.split(smollm2_gguf_path())
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.0)
    ids = torch.as_tensor(np.random.default_rng(0).integers(0, vocab, (batch, seq)))
    mask = torch.ones_like(ids)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            loss = model(input_ids=ids, attention_mask=mask, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    return {"train_step_s": best_time(step, steps), "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="timed repetitions (best is kept)")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    args = parser.parse_args()
    tokens = args.batch * args.seq
    out = {"benchmark": "ppo_update", "model": "smollm2-135m-instruct", "batch": args.batch, "seq": args.seq,
           "jax_devices": jax.device_count(), "baseline": "torch forward+backward+AdamW (transformers, same GGUF)"}
    for dtype in args.dtypes.split(","):
        j = bench_jax(dtype, args.batch, args.seq, args.steps)
        if dtype == "bfloat16":
            with plain_matmul_vjp():
                plain = bench_jax(dtype, args.batch, args.seq, args.steps)
        t = bench_torch(dtype, args.batch, args.seq, args.steps, j["config"].vocab_size)
        flops = forward_flops_per_token(j["config"], args.seq) * tokens
        peaks = {"jax": jax_matmul_peak(dtype), "torch": torch_matmul_peak(dtype)}
        peak = max(peaks.values())
        out[dtype] = {
            "jax_update_tokens_per_s": tokens / j["update_s"],
            "jax_train_step_tokens_per_s": tokens / j["train_step_s"],
            "torch_train_step_tokens_per_s": tokens / t["train_step_s"],
            "ratio_train_step_vs_torch": t["train_step_s"] / j["train_step_s"],
            "ratio_update_vs_torch_step": t["train_step_s"] / j["update_s"],
            "jax_update_flops_per_s": 5 * flops / j["update_s"],
            "jax_train_step_flops_per_s": 3 * flops / j["train_step_s"],
            "torch_train_step_flops_per_s": 3 * flops / t["train_step_s"],
            "matmul_peak_flops_per_s": peaks,
            "jax_update_fraction_of_peak": 5 * flops / j["update_s"] / peak,
            "jax_train_step_fraction_of_peak": 3 * flops / j["train_step_s"] / peak,
            "torch_fraction_of_peak": 3 * flops / t["train_step_s"] / peak,
            "jax_update_compile_s": j["compile_s"], "metrics_finite": j["finite"],
            "torch_threads": t["threads"],
        }
        if dtype == "bfloat16":
            out[dtype]["jax_plain_vjp_train_step_tokens_per_s"] = tokens / plain["train_step_s"]
            out[dtype]["canonical_vjp_speedup_train_step"] = plain["train_step_s"] / j["train_step_s"]
            out[dtype]["canonical_vjp_speedup_update"] = plain["update_s"] / j["update_s"]
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
