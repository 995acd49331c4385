"""What a learning run's policy did over time: per-third means of its training metrics.

    python benchmarks/learning_phases.py RUN_DIR [RUN_DIR ...] [--parts 3]

RUN_DIR holds a `metrics.jsonl` (a benchmarks/learning.py arm, or any `rltf_jax.cli.train` workdir).
Prints one Markdown table per run (steps of each part; sample pass rate; the share of samples with a
global / line error class; response tokens; KL k3 per token; step, generate and update seconds) and,
last, one JSON line with the same numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = (("samples/pass_rate", "sample pass rate", "pct"), ("reward/class_global", "global errors", "pct"),
           ("reward/class_line", "line errors", "pct"), ("samples/response_tokens", "response tokens", "num"),
           ("kl/k3", "KL k3 / token", "kl"), ("time/step_s", "step s", "num"),
           ("time/generate_s", "generate s", "num"), ("time/update_s", "update s", "num"))


def phases(records: list[dict], parts: int) -> list[dict]:
    """records: step records in order -> `parts` consecutive, near-equal groups with their means."""
    out = []
    n = len(records)
    for i in range(parts):
        group = records[i * n // parts:(i + 1) * n // parts]
        if not group:
            continue
        row = {"steps": f"{group[0]['step']}–{group[-1]['step']}"}
        for key, _, _ in COLUMNS:
            values = [r[key] for r in group if isinstance(r.get(key), (int, float))]
            row[key] = sum(values) / len(values) if values else None
        out.append(row)
    return out


def markdown(rows: list[dict]) -> str:
    def fmt(value, kind):
        if value is None:
            return "–"
        return {"pct": f"{100 * value:.1f}%", "kl": f"{value:.3f}", "num": f"{value:.1f}"}[kind]

    lines = ["| steps | " + " | ".join(label for _, label, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row['steps']} | " + " | ".join(fmt(row[k], kind) for k, _, kind in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--parts", type=int, default=3)
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from rltf_jax.run.metrics import read_metrics

    out = {}
    for run in args.runs:
        path = os.path.join(run, "metrics.jsonl")
        if not os.path.exists(path):
            parser.error(f"{run}: no metrics.jsonl")
        rows = phases(read_metrics(path), args.parts)
        out[os.path.basename(os.path.normpath(run))] = rows
        print(f"\n{run}\n\n{markdown(rows)}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
