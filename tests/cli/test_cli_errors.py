"""A user's mistake at the command line is one line, `error: ...`, and exit status 2; --debug shows
the traceback. Run as a new user would: `python -m rltf_jax.X` in a subprocess."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd or ROOT, env=env)


def _assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize("args, fragments", [
    (["--config", "configs/no_such_config.py"], ["No such file", "no_such_config.py"]),
    (["--config", "configs/tiny.py", "--config.ppo.lrr=1"], ["unknown config key", "lrr", '"lr"']),
    (["--config", "configs/tiny.py", "--config.data.train=nosuch:x"], ["unknown dataset 'nosuch'"]),
    (["--config", "configs/tiny.py", "--config.data.train=mbpp:/no/such/file.jsonl"],
     ["no such dataset file", "/no/such/file.jsonl"]),
    (["--config", "configs/tiny.py", "--config.method=rlef"],
     ["share_prompts packs single-turn rows", "--config.ppo.share_prompts=False"]),
    (["--config", "configs/tiny.py", "--config.ppo.advantage=gae"],
     ["advantage='gae' needs a value per row", "share_prompts=False"]),
])
def test_train_reports_a_users_mistake_in_one_line(tmp_path, args, fragments):
    _assert_one_line_error(_run("rltf_jax.train", *args, "--workdir", tmp_path / "run"), *fragments)


def test_evaluate_reports_an_empty_checkpoint_folder_and_an_unknown_model(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    _assert_one_line_error(_run("rltf_jax.evaluate", "--checkpoint", tmp_path, "--dataset", "starter:heldout"),
                           "no checkpoint in", str(tmp_path))
    _assert_one_line_error(_run("rltf_jax.evaluate", "--model", "no-such-model", "--dataset", "starter:heldout"),
                           "unknown model 'no-such-model'")
    _assert_one_line_error(_run("rltf_jax.evaluate", "--solutions", "--dataset", "nosuch"),
                           "unknown dataset 'nosuch'")


def test_debug_keeps_the_traceback(tmp_path):
    result = _run("rltf_jax.evaluate", "--model", "no-such-model", "--dataset", "starter:heldout", "--debug")
    assert result.returncode == 1 and "Traceback" in result.stderr and "no-such-model" in result.stderr
    result = _run("rltf_jax.train", "--config", "configs/tiny.py", "--config.ppo.lrr=1", "--workdir",
                  tmp_path / "run", "--debug")
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_generate_reports_a_missing_model_file():
    _assert_one_line_error(_run("rltf_jax.generate", "--model", "/no/such/model.gguf", "--prompt", "hi"),
                           "/no/such/model.gguf")
