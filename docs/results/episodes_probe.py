"""Time the RLEF episodes of P problems x 4 samples (the trainer's first-step sampling settings)."""
import sys, time
import jax
from rltf_jax.models import load_model
from rltf_jax.sampling import Sampler, SamplingParams
from rltf_jax.data.registry import load_problems
from rltf_jax.rollout.episodes import run_episodes, EpisodeConfig
from rltf_jax.env.sandbox_client import SandboxClient, local_sandbox

P = int(sys.argv[1])
loaded = load_model("smollm2-135m-instruct")
sampler = Sampler(loaded, dtype="bfloat16")
problems = load_problems("starter:train")[:P]
params = SamplingParams(max_new_tokens=128, temperature=0.7, top_p=0.95, top_k=0, stop_after_code_block=True)
with local_sandbox(workers=2) as url, SandboxClient(url) as client:
    for rep in range(2):
        t = time.time()
        eps = run_episodes(sampler, loaded.tokenizer, client, problems, samples_per_problem=4, params=params,
                           rng=jax.random.key(rep), config=EpisodeConfig(max_turns=3), stop_ids=loaded.config.eos_token_ids)
        turns = sum(len(e.turns) for e in eps) if hasattr(eps[0], "turns") else None
        print(f"rep {rep}: {time.time() - t:.1f} s, episodes {len(eps)}, turns {turns}", flush=True)
