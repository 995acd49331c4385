"""The learning experiment: does unit-test feedback make SmolLM2-135M-Instruct write better code?

For each arm of RLTF's reward ablation, train from the base policy on `starter:train` for the
config's time budget (configs/learning.py: 60 minutes, evaluation excluded) and measure greedy pass@1
on `starter:heldout` before and after, and on HumanEval (never trained on) after; the base model's
HumanEval pass@1 is measured once. Arms:

    coarse     outcome reward only (-1 / -0.6 / -0.3 / +1)
    fine       coarse + fine-grained per-line penalties
    adaptive   coarse + fine-grained + adaptive (pass-fraction) reward: the full RLTF reward
    supervised the supervised baseline: fine-tuning on the reference solutions, same budget

    python benchmarks/learning.py [--arms adaptive,coarse,fine,supervised] [--minutes 60]
        [--seed 0] [--workdir runs/learning] [--no-humaneval] [--fresh] [--set key=value ...]

Each arm's run directory keeps its metrics, checkpoints and summary; an arm that was interrupted
resumes from its latest checkpoint with the training time it had already spent (`--fresh` deletes
its run directory and starts it over instead); results accumulate in
`<workdir>/results.jsonl` (an arm already there is not re-run), the table goes to
`<workdir>/learning.md`, and the last line printed is one JSON object with every arm's numbers and
`gain_points` (held-out pass@1 after - before, in percentage points) per arm.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARMS = {
    "coarse": {"rewards.fine_grained": False, "rewards.adaptive": False},
    "fine": {"rewards.fine_grained": True, "rewards.adaptive": False},
    "adaptive": {"rewards.fine_grained": True, "rewards.adaptive": True},
    "supervised": {"method": "supervised"},
}
HUMANEVAL_MAX_NEW_TOKENS = 384


def _set(config, key: str, value) -> None:
    node = config
    *parents, leaf = key.split(".")
    for parent in parents:
        node = node[parent]
    if isinstance(value, str) and not isinstance(node[leaf], str):
        current = node[leaf]
        value = value == "True" if isinstance(current, bool) else type(current)(value)
    node[leaf] = value


def _humaneval(trainer) -> dict:
    from rltf_jax.data import load_problems
    from rltf_jax.evaluation.single_turn import evaluate_problems

    scores = evaluate_problems(
        trainer.sampler, trainer.client, load_problems("humaneval"), tokenizer=trainer.tokenizer,
        temperature=0.0, max_new_tokens=HUMANEVAL_MAX_NEW_TOKENS, style="chat",
        batch_size=trainer.config.eval.batch_size, limits=trainer.limits, progress=False,
        stop_after_code_block=trainer.config.rollout.stop_after_code_block)
    return {"pass@1": float(scores["pass@1"]), "problems": int(scores["num_problems"]),
            "sandbox_errors": int(scores["sandbox_errors"])}


def run_arm(name: str, args, base_humaneval: dict | None) -> dict:
    from rltf_jax.run.config_files import load_config_file
    from rltf_jax.run.metrics import read_metrics
    from rltf_jax.run.trainer import Trainer

    config = load_config_file(args.config)
    config.seed = args.seed
    config.max_train_minutes = args.minutes
    config.log.progress = False
    for key, value in ARMS[name].items():
        _set(config, key, value)
    for item in args.set:
        key, _, value = item.partition("=")
        _set(config, key, value)
    workdir = os.path.join(args.workdir, f"{name}_seed{args.seed}")
    if args.fresh and os.path.isdir(workdir):
        shutil.rmtree(workdir)  # old checkpoints and metrics would mix with the new run's
    started = time.time()
    with Trainer(config, workdir, resume=not args.fresh) as trainer:
        resumed_from = trainer.start_step
        if args.humaneval and base_humaneval is None and not resumed_from:  # the base model only
            base_humaneval = _humaneval(trainer)
        summary = trainer.run()
        after_humaneval = _humaneval(trainer) if args.humaneval else None
    steps = [m for m in read_metrics(os.path.join(workdir, "metrics.jsonl")) if "step" in m]
    before, after = summary["heldout_pass@1_before"], summary["heldout_pass@1_after"]
    return {
        "arm": name, "seed": args.seed, "steps": summary["step"],
        "train_minutes": steps[-1].get("time/train_minutes") if steps else 0.0,
        "wall_minutes": (time.time() - started) / 60.0,
        "samples": int(sum(m.get("samples/total", 0) for m in steps)),
        "heldout_before": before, "heldout_after": after,
        "gain_points": None if before is None or after is None else 100.0 * (after - before),
        "humaneval_before": base_humaneval, "humaneval_after": after_humaneval,
        "workdir": workdir, "resumed_from_step": resumed_from,
    }


def markdown(results: list[dict]) -> str:
    def pct(x):
        return "–" if x is None else f"{100 * x:.1f}%"

    lines = ["| arm | steps | train min | held-out before | held-out after | gain (points) | "
             "HumanEval before | HumanEval after |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        he_b = (r["humaneval_before"] or {}).get("pass@1")
        he_a = (r["humaneval_after"] or {}).get("pass@1")
        gain = "–" if r["gain_points"] is None else f"{r['gain_points']:+.1f}"
        lines.append(f"| {r['arm']} (seed {r['seed']}) | {r['steps']} | {r['train_minutes']:.1f} | "
                     f"{pct(r['heldout_before'])} | {pct(r['heldout_after'])} | {gain} | {pct(he_b)} | "
                     f"{pct(he_a)} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default="adaptive,coarse,fine,supervised")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "learning.py"))
    parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "learning"))
    parser.add_argument("--no-humaneval", dest="humaneval", action="store_false")
    parser.add_argument("--fresh", action="store_true", help="delete an interrupted arm's run directory and start it over")
    parser.add_argument("--set", action="append", default=[], help="config override key=value")
    args = parser.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        parser.error(f"unknown arm(s) {unknown}; choose from {sorted(ARMS)}")
    sys.path.insert(0, ROOT)
    from rltf_jax.run import setup as run_setup

    run_setup.configure_host()
    os.makedirs(args.workdir, exist_ok=True)
    results_path = os.path.join(args.workdir, "results.jsonl")
    done = []
    if os.path.exists(results_path):
        with open(results_path, encoding="utf-8") as handle:
            done = [json.loads(line) for line in handle if line.strip()]
    base_humaneval = next((r["humaneval_before"] for r in done if r.get("humaneval_before")), None)
    for name in arms:
        if any(r["arm"] == name and r["seed"] == args.seed for r in done):
            continue
        result = run_arm(name, args, base_humaneval)
        base_humaneval = result["humaneval_before"] or base_humaneval
        done.append(result)
        with open(results_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(result) + "\n")
        print(json.dumps(result), flush=True)
    table = markdown(done)
    with open(os.path.join(args.workdir, "learning.md"), "w", encoding="utf-8") as handle:
        handle.write(table + "\n")
    print(table)
    out = {"arms": {f"{r['arm']}/seed{r['seed']}": {k: r[k] for k in (
        "steps", "train_minutes", "heldout_before", "heldout_after", "gain_points")} for r in done},
        "humaneval_before": base_humaneval and base_humaneval["pass@1"],
        "humaneval_after": {f"{r['arm']}/seed{r['seed']}": (r["humaneval_after"] or {}).get("pass@1")
                            for r in done}}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
