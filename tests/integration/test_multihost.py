"""Multi-host training on this machine: 2 CPU processes on localhost (jax.distributed + gloo), each
sampling, executing and scoring its share of every step, one sharded PPO update over both, Orbax
checkpoints written and restored by both. Stopped after 2 steps and resumed to 3, the run must match
an uninterrupted 1-process run on a 2-device mesh step for step. RLEF's multi-turn episodes, split
over the processes the same way, must match too."""

import json
import os
import socket
import subprocess
import sys

import pytest

from rltf_jax.run.metrics import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.slow
COMPARED = ("reward/outcome", "samples/pass_rate", "samples/total", "samples/response_tokens",
            "policy/logprob", "kl/k3", "loss/policy", "optim/grad_norm")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _command(workdir, steps, *extra):
    return [sys.executable, "-m", "rltf_jax.cli.train", "--config", os.path.join(ROOT, "configs/tiny.py"),
            f"--config.total_steps={steps}", "--config.checkpoint.every=1", "--config.ppo.share_prompts=False",
            "--workdir", str(workdir), *extra]


def _single(workdir, steps, *extra):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run(_command(workdir, steps, *extra), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _two_processes(workdir, steps, *extra):
    port = _free_port()
    procs = []
    for index in range(2):
        env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
               "RLTF_COORDINATOR": f"127.0.0.1:{port}", "RLTF_NUM_PROCESSES": "2",
               "RLTF_PROCESS_ID": str(index)}
        procs.append(subprocess.Popen(_command(workdir, steps, *extra), cwd=ROOT, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outputs = []
    try:
        for index, proc in enumerate(procs):
            out, err = proc.communicate(timeout=900)
            assert proc.returncode == 0, err[-4000:]
            assert f"process {index} of 2, 1 local / 2 global devices" in err  # really one job
            outputs.append(out)
    finally:
        for proc in procs:
            proc.kill()
    return json.loads(outputs[0].strip().splitlines()[-1])


def test_two_processes_match_one_process_and_resume_across_processes(tmp_path):
    multi_dir, single_dir = tmp_path / "multi", tmp_path / "single"
    multi = _two_processes(multi_dir, 2)
    assert multi["step"] == 2
    assert (multi_dir / "checkpoints").is_dir() and (multi_dir / "metrics.jsonl").is_file()
    # resumed to 3 steps, the 2-process run restores the checkpoint both processes wrote and must
    # then match an uninterrupted 1-process run (test_train.py checks 1-process resumes themselves)
    assert _two_processes(multi_dir, 3)["step"] == 3
    single = _single(single_dir, 3)
    assert single["step"] == 3
    assert multi["heldout_pass@1_before"] == single["heldout_pass@1_before"]
    multi_steps = {m["step"]: m for m in read_metrics(str(multi_dir / "metrics.jsonl")) if "step" in m}
    single_steps = {m["step"]: m for m in read_metrics(str(single_dir / "metrics.jsonl")) if "step" in m}
    assert sorted(multi_steps) == sorted(single_steps) == [1, 2, 3]
    for step in (1, 2, 3):
        for key in COMPARED:
            assert multi_steps[step][key] == pytest.approx(single_steps[step][key], rel=1e-4, abs=1e-6), \
                (step, key, multi_steps[step][key], single_steps[step][key])
    # the metrics are logged once (process 0), not once per process
    lines = [m for m in read_metrics(str(multi_dir / "metrics.jsonl")) if m.get("step") == 1]
    assert len(lines) == 1


def test_rlef_episodes_over_two_processes_match_one_process(tmp_path):
    # Each process runs the episodes of its share of the problems; every episode samples with its
    # own step-wide row id, so the 2-process step is the 1-process step: same replies (log π),
    # same turn-level values, the same update over two length groups; then the same supervised
    # step on reference solutions (supervised.every), each process feeding half its rows.
    rlef = ("--config.method=rlef", "--config.ppo.advantage=turn", "--config.ppo.length_groups=2",
            "--config.eval.before_and_after=False", "--config.supervised.every=1",
            "--config.supervised.batch_size=4")
    assert _two_processes(tmp_path / "multi", 1, *rlef)["step"] == 1
    assert _single(tmp_path / "single", 1, *rlef)["step"] == 1
    (multi,) = read_metrics(str(tmp_path / "multi" / "metrics.jsonl"))  # one line: process 0 logs
    (single,) = read_metrics(str(tmp_path / "single" / "metrics.jsonl"))
    # the tiny random model never writes code: 4 episodes of 3 replies, -1 - 3 x 0.2 each
    assert multi["episodes/total"] == single["episodes/total"] == 4.0
    assert multi["reward/env_per_seq"] == pytest.approx(-1.6)
    for key in ("episodes/turns", "episodes/reply_tokens", "episodes/truncated", "policy/logprob",
                "kl/k3", "loss/policy", "loss/value", "optim/grad_norm", "supervised/nll",
                "supervised/tokens", "supervised/grad_norm"):
        assert multi[key] == pytest.approx(single[key], rel=1e-4, abs=1e-6), (key, multi[key], single[key])
