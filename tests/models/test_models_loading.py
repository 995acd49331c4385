"""Weight loading: every GGUF type we claim (vs transformers' GGUF loader), errors that name the tensor."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rltf_jax.models import load_model  # noqa: E402
from rltf_jax.models.params import load_weights  # noqa: E402
from rltf_jax.models.registry import SMOLLM2_NAME, smollm2_gguf_path  # noqa: E402
from rltf_jax.models.weight_sources import GGUFSource, unpermute_gguf_qk  # noqa: E402
from fp_bounds import decoder_path_terms, logit_error_bound  # noqa: E402
from tiny_gguf import D, KV, L, V, write_tiny_gguf  # noqa: E402

def test_gguf_quant_types_load_like_transformers(tmp_path):
    path = str(tmp_path / "tiny.gguf")
    write_tiny_gguf(path)
    source = GGUFSource(path)
    types = {t.tensor_type.name for t in source.reader.tensors}
    assert {"F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K"} <= types
    config = source.config()
    assert (config.num_layers, config.hidden_size, config.num_kv_heads, config.vocab_size) == (L, D, KV, V)
    assert not config.tie_word_embeddings
    model = load_weights(config, source)
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file="tiny.gguf",
                                                           dtype=torch.float32).eval()
    tokens = np.random.default_rng(1).integers(0, V, (2, 11))
    positions = np.broadcast_to(np.arange(11), (2, 11))
    ours = np.asarray(model(jnp.asarray(tokens), jnp.asarray(positions), jnp.ones((2, 11), bool))[0])
    # The reference: transformers on the same dequantized weights in float64. Ours (float32) must sit
    # within float32 rounding of it (fp_bounds.logit_error_bound, docs/testing.md); a bound on ours vs
    # transformers' float32 would be on the sum of two CPU-dependent rounding errors.
    hf = hf.double()
    with torch.no_grad():
        out = hf(input_ids=torch.tensor(tokens), output_hidden_states=True)
    reference, hidden = out.logits.numpy(), out.hidden_states[-1].numpy()
    n_terms = decoder_path_terms(layers=L, hidden=D, heads=config.num_heads, head_dim=config.head_dim,
                                 kv_heads=KV, intermediate=config.intermediate_size, seq=tokens.shape[1])
    bound = logit_error_bound(hidden, hf.lm_head.weight.detach().numpy(), n_terms)
    excess = np.abs(ours - reference) / bound
    assert excess.max() <= 1, (excess.max(), np.abs(ours - reference).max())
    # the Q/K un-permutation is what makes this match: the raw rows differ from HF's layout
    np.testing.assert_array_equal(
        np.asarray(model.layers.wq[...][0]).T,
        hf.model.layers[0].self_attn.q_proj.weight.detach().numpy())


def test_unpermute_inverts_llama_cpp_permute():
    heads, hd, d_in = 3, 8, 5
    w = np.random.default_rng(0).standard_normal((heads * hd, d_in))
    permuted = w.reshape(heads, 2, hd // 2, d_in).swapaxes(1, 2).reshape(w.shape)  # convert_hf_to_gguf
    np.testing.assert_array_equal(unpermute_gguf_qk(permuted, heads), w)


def _save_tiny(folder):
    cfg = transformers.LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2)
    transformers.LlamaForCausalLM(cfg).save_pretrained(str(folder))
    return folder


def _edit_config(folder, **changes):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    cfg.update(changes)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f)


def test_unknown_architecture_is_named(tmp_path):
    _edit_config(_save_tiny(tmp_path), architectures=["GPTNeoXForCausalLM"])
    with pytest.raises(ValueError, match="GPTNeoXForCausalLM"):
        load_model(str(tmp_path))


def test_shape_mismatch_names_the_tensor(tmp_path):
    _edit_config(_save_tiny(tmp_path), intermediate_size=96)
    with pytest.raises(ValueError, match=r"model\.layers\.0\.mlp\.(gate|up|down)_proj\.weight"):
        load_model(str(tmp_path))


def test_missing_tensor_is_named(tmp_path):
    from safetensors.numpy import load_file, save_file

    _save_tiny(tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    del tensors["model.layers.1.self_attn.v_proj.weight"]
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(KeyError, match=r"model\.layers\.1\.self_attn\.v_proj\.weight"):
        load_model(str(tmp_path))


def test_unknown_names_and_paths():
    with pytest.raises(FileNotFoundError, match="tiny-llama"):
        load_model("no-such-model")
    assert smollm2_gguf_path().endswith(".gguf") and SMOLLM2_NAME == "smollm2-135m-instruct"


def test_bf16_params_and_compute(tmp_path):
    loaded = load_model(str(_save_tiny(tmp_path)), dtype="bfloat16", param_dtype="bfloat16")
    assert loaded.model.layers.wq[...].dtype == jnp.bfloat16
    logits, hidden, _ = loaded.model(jnp.ones((1, 4), jnp.int32), jnp.arange(4)[None], jnp.ones((1, 4), bool))
    assert logits.dtype == jnp.float32 and hidden.dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="float64"):
        load_model("tiny-llama", dtype="float64")
