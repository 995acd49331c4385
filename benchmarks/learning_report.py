"""The learning benchmark's numbers: pass@1 gains with paired bootstrap CIs, pooled over seeds.

Every evaluation is greedy (one reply per problem), so a problem scores 0 or 1 in one run. For an
arm with seeds s = 1..S, problem p's score is the mean over the seeds, a_p = mean_s(after_{s,p});
the base model's greedy score b_p is the same in every seed. The arm's gain is mean_p(a_p - b_p)
and its 95% CI is a percentile bootstrap over problems of those per-problem differences (paired:
each problem is compared with itself, so the spread between problems' difficulties cancels). Two
arms compare the same way, mean_p(a_p - a'_p). Results rows are what benchmarks/learning.py writes
to results.jsonl; `base` is its base.json.
"""

from __future__ import annotations

import collections
from typing import Iterable, Sequence

from rltf_jax.evaluation.pass_at_k import summarize

EVAL_SETS = ("unseen", "heldout", "humaneval")
# Arm comparisons reported on every evaluation set: (arm, minus arm, the question it answers)
COMPARISONS = (("rltf", "supervised", "does RLTF transfer better than imitation?"),
               ("sft_rltf", "supervised", "does RLTF after imitation add to it?"),
               ("sft_rltf", "rltf", "does imitation first help RLTF?"),
               ("fine", "coarse", "the fine-grained penalties"),
               ("rltf", "fine", "the adaptive reward"),
               ("greedy", "rltf", "RLTF's own objective vs PPO with GRPO advantages"))


def seed_mean_scores(rows: Iterable[dict], eval_set: str) -> dict[str, float]:
    """{problem id: mean over the rows (seeds) of its 0/1 score} on ``eval_set``; only problems
    every row scored (a row evaluated on fewer problems restricts the set)."""
    per_row = [row["evals"][eval_set]["per_problem"] for row in rows if eval_set in row.get("evals", {})]
    if not per_row:
        return {}
    shared = set(per_row[0]).intersection(*per_row[1:])
    return {pid: sum(scores[pid] for scores in per_row) / len(per_row) for pid in sorted(shared)}


def paired_difference(scores: dict[str, float], minus: dict[str, float]) -> dict | None:
    """mean_p(scores_p - minus_p) over the shared problems with its 95% bootstrap CI, in points."""
    shared = [pid for pid in scores if pid in minus]
    if not shared:
        return None
    stats = summarize([scores[pid] - minus[pid] for pid in shared])
    return {"points": 100 * stats["mean"], "ci": [100 * stats["ci_low"], 100 * stats["ci_high"]],
            "problems": len(shared)}


def arm_summary(rows: Sequence[dict], base: dict) -> dict:
    """One arm's pooled numbers: seeds, steps, and per evaluation set the base and after pass@1
    (%), the gain over the base with its paired CI, and each seed's own gain."""
    out = {"seeds": [row["seed"] for row in rows], "steps": [row["steps"] for row in rows],
           "train_minutes": [round(row["train_minutes"], 1) for row in rows]}
    for eval_set in EVAL_SETS:
        base_scores = base.get(eval_set, {}).get("per_problem")
        after = seed_mean_scores(rows, eval_set)
        if not base_scores or not after:
            continue
        gain = paired_difference(after, base_scores)
        out[eval_set] = {
            "base": 100 * sum(base_scores[p] for p in after) / len(after),
            "after": 100 * sum(after.values()) / len(after), "gain": gain,
            "seed_gains": [paired_difference(seed_mean_scores([row], eval_set), base_scores)["points"]
                           for row in rows if eval_set in row.get("evals", {})]}
    return out


def by_arm(rows: Iterable[dict]) -> dict[str, list[dict]]:
    """Results rows grouped by arm, seeds in order; a later row for the same (arm, seed) wins."""
    latest = {(row["arm"], row["seed"]): row for row in rows}
    grouped = collections.defaultdict(list)
    for (arm, _), row in sorted(latest.items(), key=lambda item: item[0]):
        grouped[arm].append(row)
    return dict(grouped)


def report(rows: Iterable[dict], base: dict, labels: dict[str, str] | None = None) -> dict:
    """Every arm's `arm_summary` and every `COMPARISONS` pair present, on every evaluation set;
    with ``labels`` (unseen problem id -> group) also each arm's `group_gains` on `starter:unseen`."""
    arms = by_arm(rows)
    comparisons = {}
    for arm, minus, question in COMPARISONS:
        if arm in arms and minus in arms:
            comparisons[f"{arm} - {minus}"] = {"question": question, **{
                eval_set: paired_difference(seed_mean_scores(arms[arm], eval_set),
                                            seed_mean_scores(arms[minus], eval_set))
                for eval_set in EVAL_SETS}}
    out = {"arms": {arm: arm_summary(arm_rows, base) for arm, arm_rows in arms.items()},
           "comparisons": comparisons}
    if labels:
        out["groups"] = {arm: group_gains(arm_rows, base, "unseen", labels) for arm, arm_rows in arms.items()}
    return out


def group_gains(rows: Sequence[dict], base: dict, eval_set: str, labels: dict[str, str]) -> dict:
    """One arm's pass@1 (%) before and after and its paired gain per group of problems
    (``labels``: problem id -> group, e.g. "call/easy"), so where it learned shows."""
    base_scores = base.get(eval_set, {}).get("per_problem") or {}
    after = seed_mean_scores(rows, eval_set)
    out = {}
    for group in sorted(set(labels.values())):
        ids = [pid for pid in after if labels.get(pid) == group and pid in base_scores]
        if ids:
            out[group] = {"problems": len(ids), "base": 100 * sum(base_scores[p] for p in ids) / len(ids),
                          "after": 100 * sum(after[p] for p in ids) / len(ids),
                          "gain": paired_difference({p: after[p] for p in ids}, base_scores)}
    return out


def group_markdown(numbers: dict, eval_set: str) -> str:
    """The per-group gains (`group_gains`, under numbers["groups"][arm]) on one set as Markdown."""
    groups = sorted({g for arm in numbers.get("groups", {}).values() for g in arm})
    if not groups:
        return ""
    lines = [f"| arm | " + " | ".join(groups) + " |", "|---" * (1 + len(groups)) + "|"]
    for arm, values in numbers["groups"].items():
        cells = [f"{values[g]['base']:.0f}% → {values[g]['after']:.0f}% (n={values[g]['problems']})"
                 if g in values else "–" for g in groups]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return f"{eval_set} by problem kind and difficulty:\n\n" + "\n".join(lines)


def _gain_cell(gain: dict | None) -> str:
    if gain is None:
        return "–"
    low, high = gain["ci"]
    return f"{gain['points']:+.1f} ({low:+.1f} to {high:+.1f})"


def markdown(numbers: dict) -> str:
    """The report as Markdown: one row per arm, then one per comparison."""
    lines = ["| arm | seeds | steps | " + " | ".join(
        f"{name} base → after | {name} gain (95% CI)" for name in EVAL_SETS) + " |",
        "|---" * (3 + 2 * len(EVAL_SETS)) + "|"]
    for arm, summary in numbers["arms"].items():
        cells = []
        for eval_set in EVAL_SETS:
            values = summary.get(eval_set)
            if values is None:
                cells += ["–", "–"]
                continue
            seeds = ", ".join(f"{g:+.1f}" for g in values["seed_gains"])
            cells += [f"{values['base']:.1f}% → {values['after']:.1f}%",
                      _gain_cell(values["gain"]) + (f"; seeds {seeds}" if len(values["seed_gains"]) > 1 else "")]
        steps = ", ".join(str(s) for s in summary["steps"])
        lines.append(f"| {arm} | {', '.join(map(str, summary['seeds']))} | {steps} | " + " | ".join(cells) + " |")
    if numbers["comparisons"]:
        lines += ["", "| comparison | question | " + " | ".join(f"{name} (points, 95% CI)" for name in EVAL_SETS)
                  + " |", "|---" * (2 + len(EVAL_SETS)) + "|"]
        for name, values in numbers["comparisons"].items():
            lines.append(f"| {name} | {values['question']} | "
                         + " | ".join(_gain_cell(values.get(e)) for e in EVAL_SETS) + " |")
    groups = group_markdown(numbers, "unseen")
    return "\n".join(lines) + ("\n\n" + groups if groups else "")
