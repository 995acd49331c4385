"""benchmarks/learning_report.py: pooled pass@1 gains and arm comparisons, checked by hand."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from learning_report import markdown, paired_difference, report, seed_mean_scores  # noqa: E402


def _row(arm, seed, unseen, steps=10):
    return {"arm": arm, "seed": seed, "steps": steps, "train_minutes": 60.0,
            "evals": {"unseen": {"per_problem": unseen}}}


BASE = {"unseen": {"per_problem": {"a": 0.0, "b": 1.0, "c": 0.0, "d": 0.0}}}
RLTF = [_row("rltf", 0, {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}),
        _row("rltf", 1, {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0})]
SUPERVISED = [_row("supervised", 0, {"a": 0.0, "b": 1.0, "c": 0.0, "d": 0.0})]


def test_seed_means_pool_problem_by_problem():
    assert seed_mean_scores(RLTF, "unseen") == {"a": 1.0, "b": 0.5, "c": 0.5, "d": 0.0}
    # a seed evaluated on fewer problems restricts the pool to the problems every seed scored
    partial = RLTF + [_row("rltf", 2, {"a": 0.0, "b": 1.0})]
    assert seed_mean_scores(partial, "unseen") == pytest.approx({"a": 2 / 3, "b": 2 / 3})
    assert seed_mean_scores(RLTF, "humaneval") == {}


def test_arm_gain_is_the_mean_paired_difference_over_problems():
    numbers = report(RLTF + SUPERVISED, BASE)
    unseen = numbers["arms"]["rltf"]["unseen"]
    # per-problem differences from the base: +1, -0.5, +0.5, 0 -> mean +0.25
    assert unseen["base"] == pytest.approx(25.0) and unseen["after"] == pytest.approx(50.0)
    assert unseen["gain"]["points"] == pytest.approx(25.0) and unseen["gain"]["problems"] == 4
    low, high = unseen["gain"]["ci"]
    assert -50.0 <= low < 25.0 < high <= 100.0  # the bootstrap spans the 4 differences' spread
    assert unseen["seed_gains"] == pytest.approx([25.0, 25.0])
    assert numbers["arms"]["supervised"]["unseen"]["gain"] == {"points": 0.0, "ci": [0.0, 0.0], "problems": 4}
    assert "heldout" not in numbers["arms"]["rltf"]  # not evaluated: not reported


def test_arms_compare_problem_by_problem():
    numbers = report(RLTF + SUPERVISED, BASE)
    versus = numbers["comparisons"]["rltf - supervised"]
    assert versus["question"] == "does RLTF transfer better than imitation?"
    assert versus["unseen"]["points"] == pytest.approx(25.0) and versus["heldout"] is None
    assert set(numbers["comparisons"]) == {"rltf - supervised"}  # only pairs whose arms both ran
    table = markdown(numbers)
    assert "| rltf | 0, 1 | 10, 10 | 25.0% → 50.0% | +25.0 (" in table
    assert "seeds +25.0, +25.0" in table and "| rltf - supervised |" in table


def test_a_later_row_for_the_same_seed_replaces_the_earlier():
    rerun = _row("supervised", 0, {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0})
    numbers = report(SUPERVISED + [rerun], BASE)
    assert numbers["arms"]["supervised"]["seeds"] == [0]
    assert numbers["arms"]["supervised"]["unseen"]["gain"]["points"] == pytest.approx(75.0)


def test_paired_difference_needs_shared_problems():
    assert paired_difference({"a": 1.0}, {"b": 0.0}) is None


def test_collect_copies_results_but_not_checkpoints(tmp_path):
    from learning import collect

    work, out = tmp_path / "work", tmp_path / "out"
    for path in ("base.json", "results.jsonl", "rltf_seed0/metrics.jsonl", "rltf_seed0/evals.json",
                 "rltf_seed0/checkpoints/5/state", "rltf_seed0/tensorboard/events", "rltf_seed0/notes.txt",
                 "sft_rltf_seed0/supervised/config.json", "sft_rltf_seed0/supervised_export/config.json"):
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(path)
    copied = collect(str(work), str(out))
    assert sorted(copied) == ["base.json", "results.jsonl", "rltf_seed0/evals.json", "rltf_seed0/metrics.jsonl",
                              "sft_rltf_seed0/supervised/config.json"]
    assert (out / "rltf_seed0" / "evals.json").read_text() == "rltf_seed0/evals.json"
    assert not (out / "sft_rltf_seed0" / "supervised_export").exists()


def test_gains_by_group_show_where_an_arm_learned():
    labels = {"a": "call/easy", "b": "call/easy", "c": "stdio/hard", "d": "stdio/hard"}
    numbers = report(RLTF + SUPERVISED, BASE, labels)
    easy, hard = numbers["groups"]["rltf"]["call/easy"], numbers["groups"]["rltf"]["stdio/hard"]
    # call/easy: base a=0, b=1 -> after 1, 0.5; stdio/hard: base 0, 0 -> after 0.5, 0
    assert easy["problems"] == 2 and easy["base"] == pytest.approx(50.0) and easy["after"] == pytest.approx(75.0)
    assert hard["gain"]["points"] == pytest.approx(25.0)
    assert "| rltf | 50% → 75% (n=2) | 0% → 25% (n=2) |" in markdown(numbers)
