"""benchmarks/ppo_update.py's jax side on the tiny model, both dtypes and the plain-autodiff A/B,
so the benchmark keeps running as the PPO batch and update evolve."""

import os
import sys

import jax.numpy as jnp
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks"))
import ppo_update  # noqa: E402
from rltf_jax.models import llama  # noqa: E402


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_jax_update_and_train_step_run_finite(dtype):
    result = ppo_update.bench_jax(dtype, batch=8, seq=32, steps=1, model="tiny-llama")
    assert result["finite"] and result["update_s"] > 0 and result["train_step_s"] > 0


def test_plain_vjp_switch_is_undone():
    ours = llama.matmul_f32
    with ppo_update.plain_matmul_vjp():
        assert llama.matmul_f32 is not ours
        x, w = jnp.ones((2, 3), jnp.bfloat16), jnp.ones((3, 4), jnp.bfloat16)
        assert llama.matmul_f32(x, w).dtype == jnp.float32
    assert llama.matmul_f32 is ours
