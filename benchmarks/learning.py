"""The learning benchmark: does training on unit-test feedback make a model write better code on
problems it has never seen?

Each arm trains SmolLM2-135M-Instruct from the base policy on `starter:train` for the same
training-time budget (configs/learning.py: 60 minutes of this CPU, evaluation excluded), then
measures greedy pass@1 on `starter:unseen` (families never trained on: the primary figure),
`starter:heldout` (new instances of the training families) and HumanEval. The base model is
measured once on the same sets (greedy decoding is deterministic). Arms:

    rltf        full RLTF: coarse + fine-grained + adaptive rewards, PPO with GRPO advantages
    coarse      the outcome reward only (-1 / -0.6 / -0.3 / +1)
    fine        coarse + fine-grained per-line penalties (no adaptive reward)
    greedy      RLTF's own objective (configs/rltf_paper.py): greedy-decode baseline, plain
                policy gradient, a supervised step after every RL step
    supervised  imitation: fine-tuning on the reference solutions
    sft_rltf    supervised for --sft-share of the budget, then full RLTF from that policy (the
                reference policy of the KL term is the fine-tuned one) for the rest

    python benchmarks/learning.py [--arms rltf,supervised,...] [--seed 0] [--minutes 60]
        [--workdir runs/learning_unseen] [--no-humaneval] [--base-only] [--fresh]
        [--sft-share 0.25] [--set key=value ...]
    python benchmarks/learning.py --collect docs/results/learning_unseen [--workdir ...]

An arm's run directory keeps its metrics, checkpoints and `evals.json`; an arm that was stopped
(Ctrl-C ends it at a step with a checkpoint) resumes with the training time it had already spent
(`--fresh` starts it over). Results accumulate in `<workdir>/results.jsonl` (an arm and seed already
there is not re-run), the base model's in `<workdir>/base.json`; the report (learning_report.py:
gains with paired bootstrap CIs over problems, pooled over seeds) goes to `<workdir>/learning.md`
and, as one JSON object, to the last line printed. `--collect DIR` copies the raw results (the
files above and each run's config, metrics, summary and evaluations; no checkpoints) to DIR.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
REWARDS_FULL = {"rewards.fine_grained": True, "rewards.adaptive": True}
ARMS = {
    "rltf": REWARDS_FULL,
    "coarse": {"rewards.fine_grained": False, "rewards.adaptive": False},
    "fine": {"rewards.fine_grained": True, "rewards.adaptive": False},
    "greedy": {"objective": "rltf_paper"},
    "supervised": {"method": "supervised"},
    "sft_rltf": {"phases": ("supervised", "rltf")},
}
HUMANEVAL_MAX_NEW_TOKENS = 384
RAW_RESULT_FILES = ("base.json", "results.jsonl", "learning.md", "config.json", "metrics.jsonl",
                    "summary.json", "evals.json")


def _set(config, key: str, value) -> None:
    node = config
    *parents, leaf = key.split(".")
    for parent in parents:
        node = node[parent]
    if isinstance(value, str) and not isinstance(node[leaf], str):
        current = node[leaf]
        value = value == "True" if isinstance(current, bool) else type(current)(value)
    node[leaf] = value


def arm_config(name: str, args, *, minutes: float, model: str | None = None):
    """The config of one training run of arm ``name`` (a phase's arm for sft_rltf)."""
    from rltf_jax.run.config_files import load_config_file

    config = load_config_file(args.config)
    config.seed = args.seed
    config.max_train_minutes = minutes
    config.log.progress = False
    config.eval.before_and_after = False  # the benchmark evaluates, on more sets than the trainer
    for key, value in ARMS[name].items():
        if key == "objective":  # a config file's function that sets the objective
            path = os.path.join(ROOT, "configs", f"{value}.py")
            spec = importlib.util.spec_from_file_location(f"rltf_config_{value}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            module.paper_objective(config)
        else:
            _set(config, key, value)
    for item in args.set:
        key, _, value = item.partition("=")
        _set(config, key, value)
    if model is not None:
        config.model.name = model
    return config


def eval_sets(config, humaneval: bool) -> dict[str, list]:
    """{set name: problems}: starter unseen and heldout (the first eval.max_problems if set), HumanEval."""
    from rltf_jax.data import load_problems

    limit = config.eval.max_problems or None
    sets = {"unseen": load_problems("starter:unseen")[:limit],
            "heldout": load_problems(config.data.heldout)[:limit]}
    if humaneval:
        sets["humaneval"] = load_problems("humaneval")
    return sets


def evaluate(trainer, sets: dict[str, list]) -> dict:
    """Greedy pass@1 of the trainer's current policy on every set, with each problem's 0/1 and its
    reply's verdict ("pass", "wrong_answer", "syntax_error", ...: what it fails on) and the program
    graded (None where the reply held no code), so what a policy wrote can be read afterwards."""
    from rltf_jax.evaluation.single_turn import evaluate_problems

    out = {}
    for name, problems in sets.items():
        started = time.time()
        samples: list = []
        scores = evaluate_problems(
            trainer.sampler, trainer.client, problems, tokenizer=trainer.tokenizer, temperature=0.0,
            max_new_tokens=HUMANEVAL_MAX_NEW_TOKENS if name == "humaneval" else trainer.config.eval.max_new_tokens,
            style="chat" if name == "humaneval" else trainer.config.data.prompt_style,
            batch_size=trainer.config.eval.batch_size, limits=trainer.limits, progress=False,
            stop_after_code_block=trainer.config.rollout.stop_after_code_block, samples=samples)
        out[name] = {"pass@1": float(scores["pass@1"]), "problems": int(scores["num_problems"]),
                     "sandbox_errors": int(scores["sandbox_errors"]), "minutes": (time.time() - started) / 60,
                     "verdicts": scores["verdicts"],
                     "per_problem": {p["id"]: p["correct"] / p["n"] for p in scores["problems"]},
                     "verdict_per_problem": {p["id"]: p["verdicts"][0] for p in scores["problems"]},
                     "program_per_problem": {problem.id: program for problem, program in samples}}
    return out


def _read_json(path: str):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _write_json(path: str, value) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1)
    os.replace(path + ".tmp", path)


def train(config, workdir: str, sets: dict | None = None) -> dict:
    """Trains one run to its budget (a finished run is not trained again); evaluates it on ``sets``
    into ``<workdir>/evals.json`` unless there already. Returns the run's numbers; ``interrupted``
    is true when Ctrl-C stopped it (then nothing is evaluated)."""
    from rltf_jax.run.metrics import read_metrics
    from rltf_jax.run.trainer import Trainer

    summary = _read_json(os.path.join(workdir, "summary.json"))
    finished = summary is not None and not summary["interrupted"]
    evals = _read_json(os.path.join(workdir, "evals.json"))
    resumed_from = 0
    if not finished or (sets is not None and evals is None):
        with Trainer(config, workdir, resume=True) as trainer:
            resumed_from = trainer.start_step
            if not finished:
                summary = trainer.run()
            if sets is not None and not summary["interrupted"]:
                evals = evaluate(trainer, sets)
                _write_json(os.path.join(workdir, "evals.json"), evals)
    steps = [m for m in read_metrics(os.path.join(workdir, "metrics.jsonl")) if "step" in m]
    return {"steps": summary["step"], "interrupted": summary["interrupted"], "evals": evals,
            "train_minutes": steps[-1].get("time/train_minutes", 0.0) if steps else 0.0,
            "samples": int(sum(m.get("samples/total", 0) for m in steps)), "resumed_from_step": resumed_from}


def run_arm(name: str, args) -> dict | None:
    """Trains and evaluates one arm; its results row, or None when it was interrupted."""
    started = time.time()
    arm_dir = os.path.join(args.workdir, f"{name}_seed{args.seed}")
    if args.fresh and os.path.isdir(arm_dir):
        shutil.rmtree(arm_dir)  # old checkpoints and metrics would mix with the new run's
    if "phases" in ARMS[name]:
        first, second = ARMS[name]["phases"]
        sft_minutes = args.minutes * args.sft_share
        phase = train(arm_config(first, args, minutes=sft_minutes), os.path.join(arm_dir, first))
        if phase["interrupted"]:
            return None
        export_dir = os.path.join(arm_dir, f"{first}_export")
        if not os.path.isdir(export_dir):
            from rltf_jax.cli.export import main as export_main

            export_main(["--checkpoint", os.path.join(arm_dir, first), "--out", export_dir])
        config = arm_config(second, args, minutes=args.minutes - phase["train_minutes"], model=export_dir)
        run = train(config, os.path.join(arm_dir, second), eval_sets(config, args.humaneval))
        run.update(steps=phase["steps"] + run["steps"], train_minutes=phase["train_minutes"] + run["train_minutes"],
                   samples=phase["samples"] + run["samples"], phase_steps=[phase["steps"], run["steps"]])
    else:
        config = arm_config(name, args, minutes=args.minutes)
        run = train(config, arm_dir, eval_sets(config, args.humaneval))
    if run["interrupted"]:
        return None
    return {"arm": name, "seed": args.seed, "wall_minutes": (time.time() - started) / 60.0,
            "workdir": arm_dir, **{k: v for k, v in run.items() if k != "interrupted"}}


def base_evals(args) -> dict:
    """The base model's evaluations (``<workdir>/base.json``), measured once."""
    path = os.path.join(args.workdir, "base.json")
    base = _read_json(path)
    if base is None:
        from rltf_jax.run.trainer import Trainer

        config = arm_config("rltf", args, minutes=0.0)
        with Trainer(config, os.path.join(args.workdir, "base_model"), resume=False) as trainer:
            base = {"model": config.model.name, **evaluate(trainer, eval_sets(config, args.humaneval))}
        _write_json(path, base)
    return base


def collect(workdir: str, out: str) -> list[str]:
    """Copies ``RAW_RESULT_FILES`` from ``workdir`` and its run directories (not checkpoints,
    TensorBoard logs or exported models) to the same relative paths under ``out``."""
    copied = []
    for folder, subfolders, files in os.walk(workdir):
        subfolders[:] = sorted(d for d in subfolders if d not in ("checkpoints", "tensorboard")
                               and not d.endswith("_export"))
        for name in sorted(set(files) & set(RAW_RESULT_FILES)):
            relative = os.path.relpath(os.path.join(folder, name), workdir)
            os.makedirs(os.path.dirname(os.path.join(out, relative)), exist_ok=True)
            shutil.copyfile(os.path.join(folder, name), os.path.join(out, relative))
            copied.append(relative)
    return copied


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default="rltf,supervised,sft_rltf")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "learning.py"))
    parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "learning_unseen"))
    parser.add_argument("--no-humaneval", dest="humaneval", action="store_false")
    parser.add_argument("--base-only", action="store_true", help="measure the base model and stop")
    parser.add_argument("--fresh", action="store_true", help="delete an interrupted arm's run directory and start it over")
    parser.add_argument("--sft-share", type=float, default=0.25, help="sft_rltf: the supervised share of the budget")
    parser.add_argument("--set", action="append", default=[], help="config override key=value")
    parser.add_argument("--collect", metavar="DIR", help="copy the raw results to DIR and stop")
    args = parser.parse_args(argv)
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(args.arms) - set(ARMS))
    if unknown:
        parser.error(f"unknown arm(s) {unknown}; choose from {sorted(ARMS)}")
    if not 0.0 < args.sft_share < 1.0:
        parser.error(f"--sft-share must be between 0 and 1, got {args.sft_share}")
    return args


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    if args.collect:
        print(f"copied {len(collect(args.workdir, args.collect))} files to {args.collect}")
        return None
    from learning_report import markdown, report
    from rltf_jax.run import setup as run_setup

    run_setup.configure_host()
    os.makedirs(args.workdir, exist_ok=True)
    base = base_evals(args)
    if args.base_only:
        print(json.dumps({k: v["pass@1"] for k, v in base.items() if isinstance(v, dict)}))
        return None
    results_path = os.path.join(args.workdir, "results.jsonl")
    with open(results_path, "a+", encoding="utf-8") as handle:
        handle.seek(0)
        done = [json.loads(line) for line in handle if line.strip()]
    for name in args.arms:
        if any(r["arm"] == name and r["seed"] == args.seed for r in done):
            continue
        row = run_arm(name, args)
        if row is None:
            print(f"{name} (seed {args.seed}) was interrupted; run the same command to resume it", file=sys.stderr)
            break
        done.append(row)
        with open(results_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
    from rltf_jax.data import load_problems

    labels = {p.id: f"{p.mode}/{p.difficulty}" for p in load_problems("starter:unseen")}
    numbers = report(done, base, labels)
    with open(os.path.join(args.workdir, "learning.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown(numbers) + "\n")
    print(markdown(numbers))
    print(json.dumps(numbers))
    return numbers


if __name__ == "__main__":
    main()
