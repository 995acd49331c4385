"""run_setup.release_compiled_code: compiled XLA:CPU programs hold memory maps until released."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rltf_jax.run import setup as run_setup

pytestmark = pytest.mark.skipif(run_setup.memory_maps() is None, reason="needs Linux's /proc")


def _many_kernels(x, w):
    for k in range(20):
        x = jnp.tanh(x @ w + k) * (k + 1.5) + jnp.sin(x).sum(axis=0, keepdims=True)
    return x


def test_release_frees_the_maps_of_compiled_programs_and_programs_still_run():
    step = jax.jit(_many_kernels)
    w = jnp.full((32, 32), 0.01)
    before = run_setup.memory_maps()[0]
    expected = {rows: np.asarray(step(jnp.ones((rows, 32)), w)) for rows in range(4, 10)}  # 6 programs
    grown = run_setup.memory_maps()[0] - before
    assert grown > 200, f"six compiled programs added only {grown} memory maps"

    kept = run_setup.release_compiled_code(fraction=1.0)  # far from the limit: nothing happens
    assert kept["process/memory_maps"] >= before + grown - 10
    flushes = kept["compile/flushes"]

    released = run_setup.release_compiled_code(fraction=0.0)
    assert released["compile/flushes"] == flushes + 1
    assert released["process/memory_maps"] < before + grown / 4
    for rows, value in expected.items():  # recompiled on demand, same results
        np.testing.assert_allclose(np.asarray(step(jnp.ones((rows, 32)), w)), value, rtol=1e-6)
