"""kernels/platform.py: which implementation each backend runs, and every training attention that
runs on the CPU (forced) against a float64 reference, in value and gradient.

Bounds follow from the arithmetic of one attention row (scores over S keys of width d):
- float32: each score is a dot of length d, off by at most γ_d · Σ|q_i k_i| (γ_n = n·u/(1 − n·u),
  u = 2^-24); softmax turns an absolute score error ε into at most 2ε of total probability mass
  moved, so the output moves by ≤ 2ε·max|v|; the mix is a dot of length S (γ_S·max|v|).
- bfloat16 inputs (the reference runs on the same bf16-rounded inputs): the implementations round
  the probabilities to bfloat16 before the mix and the output once more (2·u_bf16·max|v|,
  u_bf16 = 2^-8) on top of the float32 terms.
- gradients (norm-wise, relative to the largest reference gradient): four dots and the softmax
  backward in a chain; for float32 4·(S + d)·u, a γ bound for each of the four dots (length
  ≤ S + d); for bfloat16 every dot reads bf16-rounded operands (q, k, v, the probabilities, the
  cotangent, the score gradient: up to 6 roundings along one path), 6·u_bf16.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rltf_jax.kernels import platform
from rltf_jax.models.attention import causal_attention

B, T, H, K, HD = 2, 12, 6, 2, 16
U32, U16 = 2.0 ** -24, 2.0 ** -8


def gamma(n: int, u: float = U32) -> float:
    return n * u / (1 - n * u)


@pytest.mark.parametrize("dtype,platform_name,want", [
    (jnp.float32, "cpu", "einsum"), (jnp.bfloat16, "cpu", "head_major"),
    (jnp.bfloat16, "cuda", "cudnn"), (jnp.float16, "cuda", "cudnn"), (jnp.float32, "cuda", "xla"),
    (jnp.bfloat16, "rocm", "xla"), (jnp.bfloat16, "tpu", "xla"), (jnp.float32, "tpu", "xla"),
])
def test_training_attention_is_chosen_by_platform_and_dtype(monkeypatch, dtype, platform_name, want):
    monkeypatch.delenv(platform.ATTENTION_ENV, raising=False)
    assert platform.training_attention(dtype, platform_name) == want


def test_the_environment_forces_an_implementation_and_rejects_unknown_ones(monkeypatch):
    monkeypatch.setenv(platform.ATTENTION_ENV, "xla")
    assert platform.training_attention(jnp.bfloat16, "cpu") == "xla"
    monkeypatch.setenv(platform.ATTENTION_ENV, "flash")
    with pytest.raises(ValueError, match="RLTF_JAX_ATTENTION='flash' is not one of"):
        platform.training_attention(jnp.float32, "cpu")


def test_this_backend_and_the_cpu_only_matmul_backward():
    name = platform.backend()
    assert name == jax.default_backend() or (jax.default_backend() == "gpu" and name in ("cuda", "rocm"))
    assert platform.cpu_tuned_matmuls() == (name == "cpu")
    assert platform.cpu_tuned_matmuls("cpu")
    assert not platform.cpu_tuned_matmuls("cuda") and not platform.cpu_tuned_matmuls("tpu")


def _inputs(dtype, pad=3):
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.normal(size=shape), dtype)
               for shape in [(B, T, H, HD), (B, T, K, HD), (B, T, K, HD)])
    real = np.ones((B, T), bool)
    real[1, :pad] = False
    self_mask = np.tril(np.ones((T, T), bool))[None] & real[:, None, :]
    cotangent = rng.normal(size=(B, T, H, HD)) * real[:, :, None, None]  # real positions only
    return q, k, v, self_mask, real, cotangent


def _reference(q, k, v, mask, d_out):
    """float64 numpy attention and its gradient. q [B,T,H,d]; k, v [B,S,K,d]; mask [B,T,S].
    (A padding query sees no key: a uniform softmax, as the implementations give.)"""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    b, t, h, d = q.shape
    g = h // k.shape[2]
    qg = q.reshape(b, t, -1, g, d) / np.sqrt(d)
    scores = np.where(mask[:, None, None], np.einsum("btkgd,bskd->bkgts", qg, k), -1e300)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    out = np.einsum("bkgts,bskd->btkgd", probs, v).reshape(q.shape)
    do = d_out.reshape(b, t, -1, g, d)
    d_v = np.einsum("bkgts,btkgd->bskd", probs, do)
    d_probs = np.einsum("btkgd,bskd->bkgts", do, v)
    d_scores = probs * (d_probs - (d_probs * probs).sum(-1, keepdims=True))
    d_q = np.einsum("bkgts,bskd->btkgd", d_scores, k).reshape(q.shape) / np.sqrt(d)
    d_k = np.einsum("bkgts,btkgd->bskd", d_scores, qg)
    return out, (d_q, d_k, d_v)


def _output_bound(q, k, v, dtype) -> float:
    q, k, v = (np.abs(np.asarray(a, np.float64)) for a in (q, k, v))
    g = q.shape[2] // k.shape[2]
    qg = q.reshape(*q.shape[:2], -1, g, q.shape[-1]) / np.sqrt(q.shape[-1])
    score_error = gamma(HD) * np.einsum("btkgd,bskd->bkgts", qg, k).max()
    vmax = v.max()
    bound = 2 * score_error * vmax + gamma(T) * vmax
    return bound + (2 * U16 * vmax if dtype == jnp.bfloat16 else 0.0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("impl", ["einsum", "head_major", "xla"])
def test_each_attention_that_runs_here_matches_float64(impl, dtype):
    q, k, v, mask, real, cotangent = _inputs(dtype)
    want, want_grads = _reference(q, k, v, mask, cotangent)
    got = causal_attention(q, k, v, jnp.asarray(mask), impl=impl)
    assert got.dtype == dtype and got.shape == q.shape
    assert np.isfinite(np.asarray(got, np.float32)).all()  # padding queries too
    error = np.abs(np.asarray(got, np.float64) - want)[real].max()
    assert error <= _output_bound(q, k, v, dtype), (impl, error)

    def loss(q, k, v):
        out = causal_attention(q, k, v, jnp.asarray(mask), impl=impl).astype(jnp.float32)
        return jnp.sum(out * jnp.asarray(cotangent, jnp.float32))

    grads = jax.grad(loss, argnums=(0, 1, 2))(q, k, v)
    relative = 6 * U16 if dtype == jnp.bfloat16 else 4 * (T + HD) * U32
    for name, grad, ref in zip("qkv", grads, want_grads):
        assert grad.dtype == dtype
        error = np.abs(np.asarray(grad, np.float64) - ref).max()
        assert error <= relative * np.abs(ref).max(), (impl, name, error / np.abs(ref).max())


def test_a_wrong_mask_fails_the_bound():
    """The bound is tight enough to see a bug: attending to the padding keys moves real outputs."""
    q, k, v, mask, real, _ = _inputs(jnp.float32)
    want, _ = _reference(q, k, v, mask, np.zeros(q.shape))
    causal_only = np.broadcast_to(np.tril(np.ones((T, T), bool)), mask.shape)
    got = causal_attention(q, k, v, jnp.asarray(causal_only), impl="xla")
    error = np.abs(np.asarray(got, np.float64) - want)[real].max()
    assert error > 100 * _output_bound(q, k, v, jnp.float32)


def test_the_model_forward_with_a_forced_implementation(monkeypatch):
    """The tiny model's logits through `jax.nn.dot_product_attention` equal the CPU default's
    within the float32 rounding of the attention (the rest of the forward is the same code)."""
    from rltf_jax.models import load_model

    loaded = load_model("tiny-llama")
    tokens = jnp.asarray(np.random.default_rng(1).integers(3, 500, (2, 10)), jnp.int32)
    positions = jnp.broadcast_to(jnp.arange(10, dtype=jnp.int32), (2, 10))
    mask = jnp.ones((2, 10), bool)
    default, _, _ = loaded.model(tokens, positions, mask)
    monkeypatch.setenv(platform.ATTENTION_ENV, "xla")
    forced, _, _ = loaded.model(tokens, positions, mask)
    scale = float(jnp.abs(default).max())
    assert float(jnp.abs(forced - default).max()) <= 1e-5 * scale
    if platform.backend() != "cuda":
        monkeypatch.setenv(platform.ATTENTION_ENV, "cudnn")  # cuDNN runs on CUDA GPUs only
        with pytest.raises(Exception):
            loaded.model(tokens, positions, mask)
