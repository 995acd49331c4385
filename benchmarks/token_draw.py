"""The top-p draw of a flat row: the sort-free nucleus (rltf_jax/sampling/token_draw.py `_threshold_nucleus`) vs a full sort.

A row whose 64 largest logits hold less than top_p of the mass (a random model; a small model at
T = 1) cannot take the candidates' fast path. The baseline sorts the whole vocabulary
(`jnp.argsort`, 49,152 entries, single-threaded on XLA:CPU); the sampler's two bisections find the
nucleus and the drawn token. Both arms draw from the same logits with the same uniforms, are
compared token by token, and are timed in turns (median of `--repeats`). On rows this flat each
token holds ~2e-5 of the mass, about the float32 rounding of a 49k-term sum, so the two can differ
on a rare row: both are exact only to float32 (tests/sampling/test_token_sampling.py checks equality
wherever the float64 reference is not within 1e-5 of a boundary). Logits: normal
with standard deviation 1 over SmolLM2's vocabulary (top-p 0.95), one [B, V] block per batch size.

Prints one JSON line; `speedup` = full-sort ms / sort-free ms per batch size.

    flock /tmp/rltf_heavy.lock .venv/bin/python benchmarks/token_draw.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from rltf_jax.sampling.token_draw import _uniforms, full_sort_nucleus, sample_tokens

VOCAB = 49152


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,32,64")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--top-p", type=float, default=0.95)
    args = parser.parse_args()

    top_p = args.top_p
    sort_free = jax.jit(lambda x, keys: sample_tokens(x, keys, 1.0, top_p, greedy=False, top_k=0, use_top_p=True))
    full_sort = jax.jit(lambda x, keys: full_sort_nucleus(x, top_p, _uniforms(keys, x.shape[0])))
    result = {"benchmark": "token_draw", "vocab": VOCAB, "top_p": top_p, "backend": jax.default_backend()}
    for batch in (int(b) for b in args.batches.split(",")):
        x = jax.random.normal(jax.random.key(batch), (batch, VOCAB), jnp.float32)
        keys = jax.random.split(jax.random.key(0), batch)
        ours, reference = jax.block_until_ready((sort_free(x, keys), full_sort(x, keys)))
        same = int(np.sum(np.asarray(ours[0]) == np.asarray(reference[0])))
        times = {"sort_free": [], "full_sort": []}
        for _ in range(args.repeats):
            for name, fn in (("sort_free", sort_free), ("full_sort", full_sort)):
                start = time.perf_counter()
                jax.block_until_ready(fn(x, keys))
                times[name].append(1000 * (time.perf_counter() - start))
        sort_free_ms, full_sort_ms = (statistics.median(times[k]) for k in ("sort_free", "full_sort"))
        result[f"batch_{batch}"] = {"sort_free_ms": round(sort_free_ms, 2), "full_sort_ms": round(full_sort_ms, 2),
                                    "speedup": round(full_sort_ms / sort_free_ms, 2), "rows_drawing_the_same_token": same}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
