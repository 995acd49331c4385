"""One side of the device check's timings: decode and the PPO update of a random-weight model.

    python benchmarks/device_timing.py --side jax|torch --shape smollm2|qwen2.5-1.5b|tiny-llama|tiny-qwen2 \
        --batches 1,64,256 --new-tokens 128 --update-batch 8 --update-seq 512

Runs in its own process (benchmarks/device_check.py starts one per side and shape), so JAX's and
torch's allocators never share the accelerator's memory. Prints one JSON line:

- ``decode``: {batch: tokens/s} of greedy generation forced to ``--new-tokens`` (EOS ignored) from
  16-token prompts, and ``decode_bytes_per_step`` {batch: bytes a decode step must read: the
  bfloat16 weights once plus the KV cache filled so far, averaged over the steps};
- ``update_tokens_per_s`` and ``update_flops``: jax, the whole PPO update (old-policy and reference
  forwards, one minibatch step: 5 forward-FLOPs a token, PaLM's count); torch, a causal-LM training
  step (forward + backward + AdamW: 3 forward-FLOPs a token). Both keep float32 parameters and run
  the matmuls in bfloat16 (jax: compute_dtype; torch: autocast);
- ``copy_bytes_per_s`` (jax side): the best bandwidth of an on-device array copy, read + write, the
  denominator of the decode fractions; ``matmul_peak_flops_per_s``: best bf16 square matmul.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path[:0] = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                os.path.dirname(os.path.abspath(__file__))]  # runs without the project installed

from ppo_update import best_time as best_seconds  # noqa: E402  (min over reps, seconds)

SHAPES = {  # HF-style shapes of the models the check times (random weights)
    "smollm2": dict(vocab_size=49152, hidden_size=576, num_layers=30, num_heads=9, num_kv_heads=3,
                    head_dim=64, intermediate_size=1536, rope_theta=100000.0, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(vocab_size=151936, hidden_size=1536, num_layers=28, num_heads=12, num_kv_heads=2,
                         head_dim=128, intermediate_size=8960, rope_theta=1e6, tie_word_embeddings=True,
                         attention_bias=True, rms_norm_eps=1e-6),
}
PROMPT_TOKENS = 16


def model_config(shape: str):
    from rltf_jax.models.config import ModelConfig, tiny_config

    if shape.startswith("tiny-"):
        return tiny_config(shape.removeprefix("tiny-")).replace(dtype="bfloat16")
    return ModelConfig(**SHAPES[shape], max_position_embeddings=4096, eos_token_ids=(2,), dtype="bfloat16")


def decode_bytes_per_step(config, batch: int, new_tokens: int) -> float:
    """bf16 weights read once per step + the KV cache read (average fill over the decode)."""
    c = config
    q, kv = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    per_layer = c.hidden_size * (q + 2 * kv) + q * c.hidden_size + 3 * c.hidden_size * c.intermediate_size
    weights = 2 * (c.num_layers * per_layer + c.vocab_size * c.hidden_size)
    cache = 2 * batch * c.num_layers * 2 * kv * (PROMPT_TOKENS + new_tokens / 2)
    return weights + cache


def jax_side(args, config) -> dict:
    import jax
    import jax.numpy as jnp

    from ppo_update import forward_flops_per_token, jax_matmul_peak, make_batch
    from rltf_jax import ppo
    from rltf_jax.models.load import LoadedModel
    from rltf_jax.models.params import random_model
    from rltf_jax.sampling import Sampler, SamplingParams

    tokenizer = load_check_tokenizer()
    loaded = LoadedModel(random_model(config.replace(param_dtype="bfloat16"), 0), tokenizer, config, args.shape)
    sampler = Sampler(loaded, cache_dtype=jnp.bfloat16, eos_token_ids=())
    prompt = tokenizer.decode(list(range(1000, 1000 + PROMPT_TOKENS)))
    params = SamplingParams(args.new_tokens, greedy=True)
    decode = {}
    for batch in args.batches:
        prompts = [f"{i}{prompt}" for i in range(batch)]
        sampler.generate(prompts, params, jax.random.key(0))  # compile
        seconds = best_seconds(lambda: sampler.generate(prompts, params, jax.random.key(0)), args.reps)
        decode[batch] = batch * args.new_tokens / seconds
    del sampler, loaded

    loaded = LoadedModel(random_model(config.replace(param_dtype="float32"), 0), tokenizer, config, args.shape)
    ppo_config = ppo.PPOConfig(compute_dtype="bfloat16", lr=1e-6)
    state, defs = ppo.init_train_state(loaded, ppo_config)
    data = make_batch(args.update_batch, args.update_seq, config.vocab_size, prompt=args.update_seq // 4)
    update = ppo.make_update(defs, ppo_config)
    state, metrics = update(state, data)
    jax.block_until_ready(metrics)

    def run_update():
        nonlocal state
        state, m = update(state, data)
        jax.block_until_ready(m)

    update_s = best_seconds(run_update, args.reps)
    tokens = args.update_batch * args.update_seq
    n = args.copy_mb * 1024 * 1024 // 2
    x = jnp.ones((n,), jnp.bfloat16)
    copy = jax.jit(lambda a: a + 1)
    copy(x).block_until_ready()
    copy_s = best_seconds(lambda: copy(x).block_until_ready(), 5)
    return {"decode": decode, "update_tokens_per_s": tokens / update_s,
            "update_flops": 5 * forward_flops_per_token(config, args.update_seq) * tokens,
            "update_s": update_s, "update_finite": bool(all(np.isfinite(float(v)) for v in metrics.values())),
            "copy_bytes_per_s": 2 * 2 * n / copy_s,
            "matmul_peak_flops_per_s": jax_matmul_peak("bfloat16", n=args.matmul_n),
            "device": str(jax.devices()[0].device_kind), "backend": jax.default_backend()}


def torch_model(config, device, dtype):
    import torch
    import transformers

    common = dict(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                  intermediate_size=config.intermediate_size, num_hidden_layers=config.num_layers,
                  num_attention_heads=config.num_heads, num_key_value_heads=config.num_kv_heads,
                  rope_theta=config.rope_theta, rms_norm_eps=config.rms_norm_eps,
                  tie_word_embeddings=config.tie_word_embeddings, max_position_embeddings=4096,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if config.attention_bias:
        cfg, cls = transformers.Qwen2Config(**common), transformers.Qwen2ForCausalLM
    else:
        cfg, cls = transformers.LlamaConfig(**common, head_dim=config.head_dim), transformers.LlamaForCausalLM
    torch.manual_seed(0)
    return cls(cfg).to(device=device, dtype=dtype)


def torch_side(args, config) -> dict:
    import torch

    from ppo_update import forward_flops_per_token, torch_matmul_peak

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    model = torch_model(config, device, torch.bfloat16).eval()
    rng = np.random.default_rng(0)
    decode = {}
    for batch in args.batches:
        ids = torch.as_tensor(rng.integers(1000, 2000, (batch, PROMPT_TOKENS)), device=device)
        mask = torch.ones_like(ids)

        def generate():
            with torch.no_grad():
                model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=args.new_tokens,
                               min_new_tokens=args.new_tokens, do_sample=False, pad_token_id=0)
            sync()

        generate()
        decode[batch] = batch * args.new_tokens / best_seconds(generate, args.reps)
    del model
    model = torch_model(config, device, torch.float32).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.0)
    ids = torch.as_tensor(rng.integers(0, config.vocab_size, (args.update_batch, args.update_seq)), device=device)

    def step():
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()

    step()
    tokens = args.update_batch * args.update_seq
    step_s = best_seconds(step, args.reps)
    peak = torch_matmul_peak_on(device, args.matmul_n) if device == "cuda" else torch_matmul_peak("bfloat16", n=args.matmul_n)
    return {"decode": decode, "update_tokens_per_s": tokens / step_s,
            "update_flops": 3 * forward_flops_per_token(config, args.update_seq) * tokens,
            "update_s": step_s, "matmul_peak_flops_per_s": peak, "device": device}


def torch_matmul_peak_on(device: str, n: int) -> float:
    import torch

    a = torch.randn(n, n, dtype=torch.bfloat16, device=device)
    torch.matmul(a, a)
    torch.cuda.synchronize()

    def mm():
        torch.matmul(a, a)
        torch.cuda.synchronize()

    return 2 * n ** 3 / best_seconds(mm, 5)


def load_check_tokenizer():
    """The tiny models' tokenizer (SmolLM2's): $RLTF_JAX_TINY_TOKENIZER or the installed GGUF's."""
    from rltf_jax.models.registry import tiny_tokenizer_source
    from rltf_jax.models.tokenizer import load_tokenizer

    return load_tokenizer(tiny_tokenizer_source())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", choices=("jax", "torch"), required=True)
    parser.add_argument("--shape", required=True, choices=(*SHAPES, "tiny-llama", "tiny-qwen2"))
    parser.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[1, 64, 256])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--update-batch", type=int, default=8)
    parser.add_argument("--update-seq", type=int, default=512)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--copy-mb", type=int, default=1024)
    parser.add_argument("--matmul-n", type=int, default=8192)
    args = parser.parse_args(argv)
    config = model_config(args.shape)
    result = (jax_side if args.side == "jax" else torch_side)(args, config)
    print(json.dumps({"side": args.side, "shape": args.shape, **result,
                      "decode_bytes_per_step": {b: decode_bytes_per_step(config, b, args.new_tokens)
                                                for b in args.batches}}, default=float))


if __name__ == "__main__":
    main()
