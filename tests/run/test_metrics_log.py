"""metrics.jsonl: what MetricsLogger writes and read_metrics gives back, across an interrupted run."""

import os
import subprocess
import sys

import pytest

from rltf_jax.run.metrics import MetricsLogger, read_metrics


def _log(workdir, start_step, steps, *, value, resumed=False):
    logger = MetricsLogger(str(workdir), total_steps=10, start_step=start_step, progress=False)
    if resumed:
        logger.log_event("resumed", {"step": start_step, "train_minutes": 1.5})
    for step in steps:
        logger.log(step, {"reward/outcome": value + step, "loss/policy": float("nan")})
    logger.log_event("interrupted", {"step": steps[-1]})
    logger.close()


def test_resumed_run_replaces_the_steps_the_interrupted_one_logged_after_its_checkpoint(tmp_path):
    _log(tmp_path, 0, [1, 2, 3], value=0.0)  # checkpoint at 2, killed after logging 3
    _log(tmp_path, 2, [3, 4], value=100.0, resumed=True)
    records = read_metrics(str(tmp_path / "metrics.jsonl"))
    assert [r["step"] for r in records] == [1, 2, 3, 4]  # events (with a "step" key) are not steps
    assert [r["reward/outcome"] for r in records] == [1.0, 2.0, 103.0, 104.0]
    assert records[0]["loss/policy"] == "nan"  # non-finite numbers survive as strings, not as invalid JSON


def test_a_corrupt_line_is_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "loss\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a JSON line"):
        read_metrics(str(path))


def test_the_tensorboard_writer_loads_without_torch_and_torch_still_imports(tmp_path):
    # tensorboardX imports torch when installed (~2 s in every trainer process); our writer does not
    probe = ("import sys\nfrom rltf_jax.run.metrics import MetricsLogger\n"
             f"logger = MetricsLogger({str(tmp_path)!r}, total_steps=1, progress=False)\n"
             "logger.log(1, {'loss': 0.5})\nlogger.close()\nprint('torch' in sys.modules)\n"
             "import torch\nprint(float(torch.ones(3).sum()))")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "3.0"]
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "tensorboard"))
