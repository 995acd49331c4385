"""Sharding on a faked 8-device CPU mesh (data=2, fsdp=2, tensor=2).

XLA_FLAGS=--xla_force_host_platform_device_count=8 only works if set before jax is imported, so the
checks run in a subprocess (tests/ keeps a single device everywhere else) and report JSON back, with
the logits and rollouts in an .npz that this process checks against transformers' float64 forward of
the same weights (fp_bounds.py, docs/testing.md): one device and the mesh are two float32 programs
whose rounding depends on the CPU, so each is bounded against float64, not against the other.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fp_bounds import U_F32, decoder_path_terms, logit_error_bound, probabilistic_gamma

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CHILD = textwrap.dedent(r'''
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from rltf_jax.parallel import mesh as sharding
    from rltf_jax.models import sharding as model_sharding
    from rltf_jax.models import load_model
    from rltf_jax.sampling import Sampler, SamplingParams

    path, arrays_path = sys.argv[1], sys.argv[2]
    arrays = {}
    assert jax.device_count() == 8
    mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
    single = load_model(path)
    sharded = load_model(path, mesh=mesh)
    report = {"mesh": dict(mesh.shape), "default_mesh": dict(sharding.make_mesh().shape), "params": {}}
    for p, v in nnx.to_flat_state(nnx.state(sharded.model)):
        arr = v[...]
        report["params"][".".join(map(str, p))] = {
            "shape": list(arr.shape), "spec": [list(s) if isinstance(s, tuple) else s for s in arr.sharding.spec],
            "shard_shapes": sorted({tuple(s.data.shape) for s in arr.addressable_shards}),
            "device_bytes": max(s.data.nbytes for s in arr.addressable_shards), "bytes": arr.nbytes}

    rng = np.random.default_rng(0)
    tokens = rng.integers(3, 49152, (8, 12)).astype(np.int32)
    mask = np.ones((8, 12), bool); mask[:4, :5] = False  # left padding on half the rows
    positions = np.maximum(np.cumsum(mask, 1) - 1, 0).astype(np.int32)
    gd, st = nnx.split(sharded.model)
    st_sh = sharding.state_shardings(st, mesh)
    batch = sharding.batch_sharding(mesh)
    fwd = jax.jit(lambda st, t, p, m: nnx.merge(gd, st)(t, p, m)[0], in_shardings=(st_sh, batch, batch, batch))
    logits_sharded = np.asarray(fwd(st, tokens, positions, mask))
    logits_single = np.asarray(single.model(jnp.asarray(tokens), jnp.asarray(positions), jnp.asarray(mask))[0])
    report["max_logit_diff"] = float(np.abs(logits_sharded - logits_single)[mask].max())
    arrays.update(tokens=tokens, mask=mask, positions=positions, logits_sharded=logits_sharded,
                  logits_single=logits_single)

    def keep(name, rollout, prompt_rows=None):
        """A rollout's sequences (prompt ids, response ids) and the sampler's log-probabilities."""
        for r in range(len(rollout.response_tokens)):
            prompt = (rollout.prompt_tokens[r][rollout.prompt_mask[r]] if prompt_rows is None
                      else np.asarray(prompt_rows[r], np.int32))
            arrays[f"{name}/{r}/prompt"] = prompt
            arrays[f"{name}/{r}/response"] = rollout.response_tokens[r][rollout.response_mask[r]]
            arrays[f"{name}/{r}/logprobs"] = rollout.response_logprobs[r][rollout.response_mask[r]]

    prompts = ["def f(x):", "a longer prompt about unit tests", "x", "import os"] * 2
    params = SamplingParams(10, greedy=True)
    a = Sampler(single).generate(prompts, params, jax.random.key(0))
    b = Sampler(sharded, mesh=mesh).generate(prompts, params, jax.random.key(0))
    report["greedy_equal"] = bool(np.array_equal(a.response_tokens, b.response_tokens))
    report["logprob_diff"] = float(np.abs(a.response_logprobs - b.response_logprobs).max())
    keep("single", a), keep("sharded", b)
    # the segmented decode cache (a prompt buffer + decode segments) under the mesh too
    c = Sampler(sharded, mesh=mesh, segment_tokens=8, max_segments=2, segment_min_slots=0).generate(
        prompts, SamplingParams(16, greedy=True), jax.random.key(0))
    d = Sampler(single, max_segments=0).generate(prompts, SamplingParams(16, greedy=True), jax.random.key(0))
    report["segmented_greedy_equal"] = bool(np.array_equal(c.response_tokens, d.response_tokens))
    keep("segmented_sharded", c), keep("segmented_single", d)
    # a turn continued over a kept conversation cache (conversation_cache), sharded as the rows are
    params = SamplingParams(8, greedy=True)
    on_mesh = Sampler(sharded, mesh=mesh)
    turn1 = on_mesh.generate(prompts, params, jax.random.key(0), keep_cache=True)
    ids = [turn1.prompt_tokens[r][turn1.prompt_mask[r]].tolist() + turn1.response_tokens[r][turn1.response_mask[r]].tolist()
           + [11, 12, 13] for r in range(8)]
    e = on_mesh.generate([""] * 6, params, jax.random.key(1), prompt_ids=ids[2:], cache=turn1.cache,
                         cache_rows=list(range(2, 8)))
    f = Sampler(single).generate([""] * 6, params, jax.random.key(1), prompt_ids=ids[2:])
    report["continued_greedy_equal"] = bool(np.array_equal(e.response_tokens, f.response_tokens))
    report["continued_logprob_diff"] = float(np.abs(e.response_logprobs - f.response_logprobs).max())
    keep("continued_sharded", e, ids[2:]), keep("continued_single", f, ids[2:])
    np.savez(arrays_path, **arrays)

    gd2, abstract = model_sharding.abstract_sharded_state(sharded.config, mesh)
    report["abstract_matches"] = all(
        x.sharding == y[...].sharding and x.shape == y[...].shape
        for (_, x), (_, y) in zip(nnx.to_flat_state(abstract), nnx.to_flat_state(st)))
    cache = sharded.model.init_cache(8, 32)
    report["cache_k_spec"] = [list(s) if isinstance(s, tuple) else s
                              for s in model_sharding.cache_shardings(cache, mesh).k.spec]
    print("REPORT" + json.dumps(report))
''')


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_llama")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                   bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    transformers.LlamaForCausalLM(cfg).save_pretrained(str(folder))
    from rltf_jax.models.registry import smollm2_gguf_path
    from rltf_jax.models.tokenizer import load_tokenizer

    load_tokenizer(smollm2_gguf_path()).save_pretrained(str(folder))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    arrays = folder / "arrays.npz"
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(arrays)], capture_output=True, text=True,
                         timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("REPORT")][0]
    report = json.loads(line[len("REPORT"):])
    report["arrays"] = dict(np.load(arrays))
    report["folder"] = str(folder)
    return report


@pytest.fixture(scope="module")
def float64_reference(report):
    """forward(tokens, positions, mask) -> (logits, bound): transformers' float64 logits of the test's
    tiny Llama and the per-logit float32 error bound around them (fp_bounds.logit_error_bound)."""
    model = transformers.LlamaForCausalLM.from_pretrained(report["folder"], dtype=torch.float64).eval()
    cfg = model.config
    head = model.lm_head.weight.detach().numpy()

    def forward(tokens, positions, mask):
        with torch.no_grad():
            out = model(input_ids=torch.tensor(tokens, dtype=torch.long),
                        attention_mask=torch.tensor(mask, dtype=torch.long),
                        position_ids=torch.tensor(positions, dtype=torch.long), output_hidden_states=True)
        n_terms = decoder_path_terms(layers=cfg.num_hidden_layers, hidden=cfg.hidden_size,
                                     heads=cfg.num_attention_heads,
                                     head_dim=cfg.hidden_size // cfg.num_attention_heads,
                                     kv_heads=cfg.num_key_value_heads, intermediate=cfg.intermediate_size,
                                     seq=np.shape(tokens)[1])
        return out.logits.numpy(), logit_error_bound(out.hidden_states[-1].numpy(), head, n_terms)

    return forward


# (global shape, shard shape) per the layout: embed over fsdp, heads / mlp / vocab over tensor.
EXPECTED = {
    "embed": ([49152, 64], (24576, 32)),
    "lm_head": ([64, 49152], (32, 24576)),
    "final_norm": ([64], (64,)),
    "layers.attn_norm": ([2, 64], (2, 64)),
    "layers.mlp_norm": ([2, 64], (2, 64)),
    "layers.wq": ([2, 64, 64], (2, 32, 32)),
    "layers.wk": ([2, 64, 32], (2, 32, 16)),
    "layers.wv": ([2, 64, 32], (2, 32, 16)),
    "layers.wo": ([2, 64, 64], (2, 32, 32)),
    "layers.w_gate": ([2, 64, 128], (2, 32, 64)),
    "layers.w_up": ([2, 64, 128], (2, 32, 64)),
    "layers.w_down": ([2, 128, 64], (2, 64, 32)),
}


def test_mesh_axes(report):
    assert report["mesh"] == {"data": 2, "fsdp": 2, "tensor": 2}
    assert report["default_mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}


def test_every_parameter_is_split_as_the_layout_says(report):
    params = report["params"]
    assert set(params) == set(EXPECTED)
    for name, (shape, shard) in EXPECTED.items():
        assert params[name]["shape"] == shape, name
        assert [tuple(s) for s in params[name]["shard_shapes"]] == [shard], name
    assert params["layers.wq"]["spec"] == [None, "fsdp", "tensor"]
    assert params["layers.w_down"]["spec"] == [None, "tensor", "fsdp"]


def test_fsdp_really_splits_memory(report):
    weights = [p for n, p in report["params"].items() if "norm" not in n]
    assert all(p["device_bytes"] * 4 == p["bytes"] for p in weights)  # fsdp=2 x tensor=2


def test_sharded_and_single_device_logits_are_float32_roundings_of_the_float64_logits(report, float64_reference):
    """Tensor parallelism reorders the o/down/vocab sums, so the mesh and one device agree only up to
    float32 rounding, and how much depends on the CPU's kernels. Each is bounded against float64
    (fp_bounds.logit_error_bound: 4 sqrt(n) u S, n ~ 1100 accumulated terms here); their difference is
    then at most the sum of the two bounds. It replaces a bound of 1e-5 on the difference itself,
    fitted on one machine (1.04e-5 already with 10x larger weights)."""
    arrays = report["arrays"]
    mask = arrays["mask"]
    reference, bound = float64_reference(arrays["tokens"], arrays["positions"], mask)
    for name in ("logits_single", "logits_sharded"):
        excess = (np.abs(arrays[name] - reference) / bound)[mask]
        assert excess.max() <= 1, (name, excess.max())
    assert report["max_logit_diff"] <= 2 * bound[mask].max()


def _rows(arrays, name):
    rows = sorted({int(key.split("/")[1]) for key in arrays if key.startswith(name + "/")})
    return [(arrays[f"{name}/{r}/prompt"], arrays[f"{name}/{r}/response"], arrays[f"{name}/{r}/logprobs"])
            for r in rows]


@pytest.mark.parametrize("sharded,single", [("sharded", "single"), ("segmented_sharded", "segmented_single"),
                                            ("continued_sharded", "continued_single")])
def test_sharded_sampler_matches_single_device(report, float64_reference, sharded, single):
    """Greedy decoding on the mesh and on one device (plain, segmented cache, a continued turn).

    Token equality between two float32 programs is a consequence of the arithmetic only where no
    greedy step is a rounding call: at every step the float64 top logit minus its bound exceeds every
    other logit plus its bound, so any float32 forward within the bounds picks the float64 argmax.
    That margin is checked on the float64 reference (machine-independent), then both samplers must
    have decoded exactly the float64 greedy tokens. Each sampled log p is log_softmax at the token:
    |error| <= B_t + max_v B_v (log-sum-exp is 1-Lipschitz in the max norm) + the rounding of the
    log-sum-exp itself, a float32 sum of V positive terms (probabilistic_gamma(V, 4), relative, so
    absolute after the log) and a few ulps of exp, log and the subtractions (8 u (1 + |lse|)). With
    V = 49152 that is ~6e-5; it replaces a bound of 1e-4 on the difference of the two samplers."""
    arrays = report["arrays"]
    equal_key = {"sharded": "greedy_equal", "segmented_sharded": "segmented_greedy_equal",
                 "continued_sharded": "continued_greedy_equal"}[sharded]
    steps = 0
    for (prompt, response, logprobs), (prompt_1, response_1, logprobs_1) in zip(_rows(arrays, sharded),
                                                                                _rows(arrays, single)):
        np.testing.assert_array_equal(prompt, prompt_1)
        assert len(response) > 0 and len(response_1) > 0
        sequence = np.concatenate([prompt, response if len(response) >= len(response_1) else response_1])[None]
        reference, bound = float64_reference(sequence, np.arange(sequence.shape[1])[None],
                                             np.ones_like(sequence, bool))
        start = len(prompt) - 1  # the logits that predict the first response token
        for tokens, lps in ((response, logprobs), (response_1, logprobs_1)):
            z, b = reference[0, start:start + len(tokens)], bound[0, start:start + len(tokens)]
            top = z.argmax(-1)
            rows = np.arange(len(tokens))
            rivals = np.where(np.arange(z.shape[1]) == top[:, None], -np.inf, z + b).max(-1)
            assert np.all(z[rows, top] - b[rows, top] > rivals), "a greedy step is a rounding call: change the case"
            np.testing.assert_array_equal(tokens, top)  # the float64 greedy path, on both samplers
            shifted = z - z.max(-1, keepdims=True)
            lse = z.max(-1) + np.log(np.exp(shifted).sum(-1))
            lp_bound = (b[rows, top] + b.max(-1) + probabilistic_gamma(z.shape[1], 4.0)
                        + 8 * U_F32 * (1 + np.abs(lse)))
            excess = np.abs(lps - (z[rows, top] - lse)) / lp_bound
            assert excess.max() <= 1, (sharded, excess.max())
            steps += len(tokens)
    assert report[equal_key] and steps > 0


def test_abstract_state_and_cache_shardings(report):
    assert report["abstract_matches"]
    assert report["cache_k_spec"] == [None, ["data", "fsdp"], "tensor", None, None]
