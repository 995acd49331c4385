"""CausalLM: the KV-cache path equals the training path; shapes, dtypes, logical axes, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from f64_reference import Float64Reference
from rltf_jax.models import CausalLM, load_model, tiny_config
from rltf_jax.models.llama import LAYER_PARAM_AXES


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen2"])
def test_prefill_then_decode_equals_full_forward(name, tmp_path):
    loaded = load_model(name)
    model = loaded.model
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, 49152, (2, 10)).astype(np.int32)
    mask = np.ones((2, 10), bool)
    mask[0, :4] = False  # row 0 left-padded
    positions = np.maximum(np.cumsum(mask, 1) - 1, 0).astype(np.int32)
    full, _, _ = model(jnp.asarray(tokens), jnp.asarray(positions), jnp.asarray(mask))
    cache = model.init_cache(2, 16)
    logits, _, cache = model(jnp.asarray(tokens[:, :7]), jnp.asarray(positions[:, :7]), jnp.asarray(mask[:, :7]), cache)
    steps = [logits]
    for i in range(7, 10):
        step, _, cache = model(jnp.asarray(tokens[:, i:i + 1]), jnp.asarray(positions[:, i:i + 1]),
                               jnp.asarray(mask[:, i:i + 1]), cache)
        steps.append(step)
    incremental = np.concatenate([np.asarray(s) for s in steps], axis=1)
    assert int(cache.index) == 10
    # The cached path and the full forward are different float32 programs: each is bounded against
    # transformers' float64 forward of the same weights (f64_reference.py; was: atol 1e-5 between them).
    reference = Float64Reference(loaded, str(tmp_path))
    for row in range(2):
        want, bound = reference.logits(tokens[row][mask[row]])
        for got in (incremental[row][mask[row]], np.asarray(full)[row][mask[row]]):
            excess = np.abs(got - want) / bound
            assert excess.max() <= 1, (row, excess.max())


def test_every_parameter_has_logical_axes():
    model = CausalLM(tiny_config("qwen2"), rngs=nnx.Rngs(0))
    for path, var in nnx.to_flat_state(nnx.state(model)):
        axes = var.get_metadata()["out_sharding"]
        assert len(axes) == var[...].ndim, path
    assert set(model.layers.stacked()) == set(LAYER_PARAM_AXES)  # qwen2 has q/k/v biases


def test_bad_shapes_are_rejected():
    model = load_model("tiny-llama").model
    with pytest.raises(ValueError, match="batch, seq"):
        model(jnp.ones((2, 3), jnp.int32), jnp.ones((2, 4), jnp.int32), jnp.ones((2, 3), bool))
    with pytest.raises(ValueError, match="num_kv_heads"):
        tiny_config(num_kv_heads=3)


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-6), (jnp.bfloat16, 2e-2)])
def test_swiglu_value_and_gradient_equal_autodiff_of_the_float32_formula(dtype, tol):
    from rltf_jax.models.llama import swiglu

    rng = np.random.default_rng(0)
    gate, up, cotangent = (jnp.asarray(rng.normal(size=(3, 7, 24)) * 2, dtype) for _ in range(3))

    def plain(g, u):
        return (jax.nn.silu(g.astype(jnp.float32)) * u.astype(jnp.float32)).astype(g.dtype)

    np.testing.assert_array_equal(np.asarray(swiglu(gate, up), np.float32), np.asarray(plain(gate, up), np.float32))
    loss = lambda fn: lambda g, u: jnp.sum(fn(g, u).astype(jnp.float32) * cotangent.astype(jnp.float32))
    ours = jax.grad(loss(swiglu), argnums=(0, 1))(gate, up)
    want = jax.grad(loss(plain), argnums=(0, 1))(gate.astype(jnp.float32), up.astype(jnp.float32))
    for got, ref in zip(ours, want):
        assert got.dtype == dtype
        np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(ref), rtol=tol, atol=tol)
