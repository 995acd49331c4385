"""RLEF episodes with each episode's KV cache kept between turns vs prefilling the whole conversation
every turn (rltf_jax/conversation_cache.py).

SmolLM2-135M-Instruct, sampler in bf16 (configs/rlef.py's rollouts), the trainer's sampling settings
(T = 0.7, top-p 0.95, <= 128 new tokens, stop after the first code block), <= 3 turns with feedback
from a real local sandbox, the first P starter problems x 4 episodes. Both arms run the same seeds,
each timed pass right after an untimed pass of the same seed (the same draws, so every shape it needs is compiled), in alternating order; the medians over `--repeats` are
compared.

Baseline in the same run: `EpisodeConfig(reuse_kv_cache=False)`, the full-prefill path every
earlier session used. Both sample under the same distribution; in bf16 the cached keys of a turn's
reply come from the decode steps rather than from a prefill, so a draw can differ by rounding and
the two arms' episodes can diverge. The JSON line reports how many replies the arms share
(`same_replies`) next to the replies each generated, so a speed-up is read with the work done.

    flock /tmp/rltf_heavy.lock .venv/bin/python benchmarks/episode_cache.py --problems 8

`--turn` times one continued turn alone, where the draws cannot make the arms do different work:
`--rows` distinct prompts (~230 tokens), 128 new tokens each with no EOS (every step runs), then a
second turn of the same conversations plus a ~50-token feedback message, continued over the kept
cache vs prefilled whole, in turns after one untimed call each.

    flock /tmp/rltf_heavy.lock .venv/bin/python benchmarks/episode_cache.py --turn --rows 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax

from rltf_jax.data import load_problems
from rltf_jax.rollout.episodes import EpisodeConfig, run_episodes
from rltf_jax.models import load_model
from rltf_jax.sampling import Sampler, SamplingParams
from rltf_jax.env.sandbox_client import SandboxClient, local_sandbox


def turn(args) -> dict:
    """The --turn comparison (module docstring)."""
    loaded = load_model("smollm2-135m-instruct")
    sampler = Sampler(loaded, dtype=args.dtype, eos_token_ids=())
    tokenizer, rows = loaded.tokenizer, args.rows
    text = "def solve(xs):\n    # compute the running maximum of the list and return it as a new list\n" * 30
    prompts = [f"# problem {i}\n" + text[:900 + 10 * i] for i in range(rows)]
    params = SamplingParams(max_new_tokens=128, temperature=0.7, top_p=0.95)
    first = sampler.generate(prompts, params, jax.random.key(0), keep_cache=True)
    feedback = tokenizer(" The test failed: expected 3, got 4. Fix the code." * 3, add_special_tokens=False)["input_ids"]
    ids = [first.prompt_tokens[r][first.prompt_mask[r]].tolist()
           + first.response_tokens[r][first.response_mask[r]].tolist() + feedback for r in range(rows)]
    arms = {"cached": dict(cache=first.cache, cache_rows=list(range(rows))), "full_prefill": {}}
    seconds = {arm: [] for arm in arms}
    for repeat in range(args.repeats + 1):
        for arm, kwargs in arms.items():
            start = time.perf_counter()
            sampler.generate([""] * rows, params, jax.random.key(1), prompt_ids=ids, keep_cache=True, **kwargs)
            if repeat:  # the first call of each arm compiles
                seconds[arm].append(time.perf_counter() - start)
    cached, full = statistics.median(seconds["cached"]), statistics.median(seconds["full_prefill"])
    return {"benchmark": "episode_cache", "mode": "turn", "rows": rows, "prompt_tokens": len(ids[0]),
            "new_tokens": len(feedback) + 1, "dtype": args.dtype, "fused_attention": sampler.fused_attention,
            "cached_s": [round(x, 2) for x in seconds["cached"]],
            "full_prefill_s": [round(x, 2) for x in seconds["full_prefill"]], "speedup": round(full / cached, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--turn", action="store_true", help="time one continued turn alone (see above)")
    parser.add_argument("--rows", type=int, default=4)
    args = parser.parse_args()
    if args.turn:
        print(json.dumps(turn(args)))
        return

    loaded = load_model("smollm2-135m-instruct")
    sampler = Sampler(loaded, dtype=args.dtype)
    problems = load_problems("starter:train")[:args.problems]
    params = SamplingParams(max_new_tokens=128, temperature=0.7, top_p=0.95, stop_after_code_block=True)
    with local_sandbox(workers=2) as url, SandboxClient(url) as client:
        def episodes(reuse: bool, seed: int):
            start = time.perf_counter()
            eps = run_episodes(sampler, loaded.tokenizer, client, problems, samples_per_problem=args.samples,
                               params=params, rng=jax.random.key(seed), config=EpisodeConfig(reuse_kv_cache=reuse),
                               stop_ids=loaded.config.eos_token_ids)
            return time.perf_counter() - start, eps

        seconds = {True: [], False: []}
        replies = {True: 0, False: 0}
        tokens = {True: 0, False: 0}
        same = total = 0
        for repeat in range(args.repeats):
            runs = {}
            for reuse in ((True, False) if repeat % 2 == 0 else (False, True)):
                episodes(reuse, repeat)  # untimed: compiles the shapes of this seed's episodes
                runs[reuse] = episodes(reuse, repeat)
                seconds[reuse].append(runs[reuse][0])
                replies[reuse] += sum(len(e.turns) for e in runs[reuse][1])
                tokens[reuse] += sum(len(t.reply_ids) for e in runs[reuse][1] for t in e.turns)
            for a, b in zip(runs[True][1], runs[False][1]):
                for ta, tb in zip(a.turns, b.turns):
                    same += int(list(ta.reply_ids) == list(tb.reply_ids))
                total += max(len(a.turns), len(b.turns))
    cached, full = statistics.median(seconds[True]), statistics.median(seconds[False])
    print(json.dumps({
        "benchmark": "episode_cache", "problems": args.problems, "episodes": args.problems * args.samples,
        "dtype": args.dtype, "backend": jax.default_backend(),
        "cached_s": [round(s, 2) for s in seconds[True]], "full_prefill_s": [round(s, 2) for s in seconds[False]],
        "replies": {"cached": replies[True], "full_prefill": replies[False]},
        "reply_tokens": {"cached": tokens[True], "full_prefill": tokens[False]},
        "same_replies": f"{same}/{total}",
        "speedup": round(full / cached, 3),
    }))


if __name__ == "__main__":
    main()
