"""Session-14 probe: generate for 24 distinct ~452-token prompts, 1 and 64 new tokens, in DTYPE (argv[1]).

    flock /tmp/rltf_heavy.lock .venv/bin/python docs/results/prefill_probe.py bfloat16
"""
import time, jax
from rltf_jax.models import load_model
from rltf_jax.sampling import Sampler, SamplingParams
loaded = load_model("smollm2-135m-instruct")
import sys; s = Sampler(loaded, dtype=sys.argv[1])
tok = loaded.tokenizer
base = "def solve(xs):\n    # compute the running maximum of the list and return it as a new list\n" * 30
prompts = [f"# problem {i}\n" + base[: 1800 + 10 * i] for i in range(24)]
print("prompt tokens", len(tok(prompts[0])["input_ids"]))
for new in (1, 1, 64, 64):
    t = time.time(); s.generate(prompts, SamplingParams(new, temperature=0.7, top_p=0.95), jax.random.key(0)); print("new", new, round(time.time() - t, 1))
