"""One online RL step on the default config, broken into generate / execute / score / update /
checkpoint seconds, with sandbox execution serial vs overlapped with the next generation.

Target: overlapped step time ≤ 1.15 × (generate + update), i.e. execution hidden.

    python benchmarks/rl_step.py [--steps 4] [--config configs/default.py] [--set key=value ...]

Prints one JSON line: per-phase seconds (mean over the steady steps, the first step excluded as it
compiles) for both modes, and ``overlapped_step_over_generate_plus_update``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHASES = ("generate", "execute", "execute_wait", "score", "update", "checkpoint", "step")


def _config(path: str, steps: int, overrides: list[str]):
    from rltf_jax.run.config_files import load_config_file

    config = load_config_file(path)
    config.total_steps = steps
    config.eval.before_and_after = False
    config.log.progress = False
    config.checkpoint.every = 1          # measure a checkpoint every step
    config.checkpoint.best_metric = ""
    for item in overrides:
        key, _, value = item.partition("=")
        node = config
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = type(node[leaf])(value) if not isinstance(node[leaf], bool) else value == "True"
    return config


def _measure(config, overlap: bool) -> dict[str, float]:
    from rltf_jax.run.metrics import read_metrics
    from rltf_jax.run.trainer import Trainer

    config.rollout.overlap_execution = overlap
    with tempfile.TemporaryDirectory() as workdir:
        with Trainer(config, workdir, resume=False) as trainer:
            trainer.run()
        records = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    steady = records[1:-1] if len(records) > 2 else records[1:]
    return {phase: float(np.mean([r.get(f"time/{phase}_s", 0.0) for r in steady])) for phase in PHASES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "default.py"))
    parser.add_argument("--steps", type=int, default=4, help="steps per mode (≥ 3: the first compiles)")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, e.g. rollout.max_new_tokens=128")
    args = parser.parse_args()
    from rltf_jax.run import setup as run_setup

    run_setup.configure_host()
    serial = _measure(_config(args.config, args.steps, args.set), overlap=False)
    overlapped = _measure(_config(args.config, args.steps, args.set), overlap=True)
    ratio = overlapped["step"] / max(overlapped["generate"] + overlapped["update"], 1e-9)
    print(json.dumps({
        "benchmark": "rl_step", "steps_per_mode": args.steps,
        "serial_s": {k: round(v, 3) for k, v in serial.items()},
        "overlapped_s": {k: round(v, 3) for k, v in overlapped.items()},
        "overlapped_step_over_generate_plus_update": round(ratio, 3),
        "serial_step_over_generate_plus_update": round(
            serial["step"] / max(serial["generate"] + serial["update"], 1e-9), 3),
        "target": "<= 1.15",
    }))


if __name__ == "__main__":
    sys.exit(main())
