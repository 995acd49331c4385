"""benchmarks/device_check.py --small on the CPU: every check passes and the JSON line carries the
timings the accelerator run reports (decode per batch, update, each beside torch)."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_device_check_small_runs_every_check_and_reports_both_sides(tmp_path):
    tokenizer = tmp_path / "tokenizer"
    script = os.path.join(REPO, "benchmarks", "device_check.py")
    subprocess.run([sys.executable, script, "--save-tokenizer", str(tokenizer)], check=True, cwd=REPO)
    assert (tokenizer / "tokenizer.json").is_file()
    done = subprocess.run([sys.executable, script, "--small", "--tokenizer", str(tokenizer)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["backend"] == "cpu" and out["small"]
    assert out["checks_ok"], out["checks"]
    assert set(out["checks"]) == {"parity", "sampler", "ppo_vs_cpu", "train_step"}
    for shape in ("tiny-llama", "tiny-qwen2"):
        timing = out["timings"][shape]
        for side in ("jax", "torch"):
            assert set(timing[side]["decode_tokens_per_s"]) == {"1", "4"}
            assert all(0 < f < 1.5 for f in timing[side]["decode_fraction_of_bandwidth"].values())
            assert 0 < timing[side]["update_fraction_of_bf16_peak"] < 1.5
        assert timing["update_ratio_jax_vs_torch_tokens"] > 0
