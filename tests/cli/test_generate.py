"""The generate CLI prints the completion the Sampler produces."""

import subprocess
import sys

import jax
import pytest

from rltf_jax.cli.generate import main, parse_args
from rltf_jax.models import load_model
from rltf_jax.sampling import Sampler, SamplingParams


def test_cli_prints_the_greedy_completion(capsys):
    text = main(["--model", "tiny-llama", "--prompt", "def add(a, b):", "--max-new-tokens", "8", "--greedy"])
    assert capsys.readouterr().out == text + "\n"
    loaded = load_model("tiny-llama")
    expected = Sampler(loaded).generate(["def add(a, b):"], SamplingParams(8, greedy=True), jax.random.key(0))
    assert text == expected.texts[0] and text


def test_cli_arguments():
    args = parse_args(["--prompt", "hi", "--chat", "--stop", "```", "--stop", "\n\n"])
    assert args.model == "smollm2-135m-instruct" and args.chat and args.stop == ["```", "\n\n"]
    with pytest.raises(SystemExit):
        parse_args([])  # --prompt is required


@pytest.mark.slow
def test_module_runs_smollm2_chat():
    out = subprocess.run([sys.executable, "-m", "rltf_jax.cli.generate", "--model", "smollm2-135m-instruct",
                          "--prompt", "Write a Python function that returns the square of x.", "--chat",
                          "--max-new-tokens", "48", "--greedy"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "def " in out.stdout and "return" in out.stdout
