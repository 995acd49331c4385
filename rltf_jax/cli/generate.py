"""Generate one completion from the command line (for people and for parity checks).

    python -m rltf_jax.generate --model smollm2-135m-instruct --prompt "Write fizzbuzz" --chat --greedy
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import jax

from rltf_jax.cli.errors import report_user_errors
from rltf_jax.models import load_model
from rltf_jax.sampling import Sampler, SamplingParams


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rltf_jax.generate", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct",
                   help="registered name (smollm2-135m-instruct, tiny-llama, tiny-qwen2), HF folder, .gguf, hub id")
    p.add_argument("--prompt", required=True, help="the prompt text (the user message with --chat)")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the tokenizer's chat template")
    p.add_argument("--system", default=None, help="system message (with --chat)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--greedy", action="store_true", help="argmax decoding (else temperature/top-p sampling)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="parameter and compute dtype")
    p.add_argument("--verbose", action="store_true", help="log loading / compile times to stderr")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p.parse_args(argv)


def main(argv=None) -> str:
    """Prints and returns the completion; a user's mistake prints ``error: ...`` and exits 2."""
    args = parse_args(argv)
    return report_user_errors(lambda: generate(args), debug=args.debug)


def generate(args: argparse.Namespace) -> str:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    start = time.perf_counter()
    loaded = load_model(args.model, dtype=args.dtype, param_dtype=args.dtype)
    prompt = args.prompt
    if args.chat:
        messages = ([{"role": "system", "content": args.system}] if args.system else [])
        messages.append({"role": "user", "content": prompt})
        prompt = loaded.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    params = SamplingParams(args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                            top_k=args.top_k, greedy=args.greedy, stop_strings=tuple(args.stop))
    rollout = Sampler(loaded).generate([prompt], params, jax.random.key(args.seed))
    text = rollout.texts[0]
    print(text)
    if args.verbose:
        n = int(rollout.response_mask[0].sum())
        print(f"[{n} tokens in {time.perf_counter() - start:.1f}s incl. load and compile]", file=sys.stderr)
    return text


def run() -> None:
    """Console-script entry point (rltf-generate)."""
    main()


if __name__ == "__main__":
    run()
