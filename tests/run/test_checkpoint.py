"""Checkpointer: keeps the newest and the best, restores exactly, refuses another model's checkpoint."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rltf_jax.run.checkpoint import (CheckpointMismatchError, CheckpointOptions, Checkpointer,
                                 abstract_like)

IDENTITY = {"name": "tiny-llama", "hidden_size": 64}


def _state(offset: float):
    return {
        "params": {"w": jnp.full((4, 3), offset), "b": jnp.arange(3.0) + offset},
        "step": jnp.asarray(int(offset), jnp.int32),
        "rng": jax.random.key_data(jax.random.key(int(offset))),
    }


def test_keeps_newest_and_best_and_restores_exact_values(tmp_path):
    checkpointer = Checkpointer(str(tmp_path), CheckpointOptions(max_to_keep=2, best_metric="pass@1"))
    for step, score in [(1, 0.5), (2, 0.9), (3, 0.1), (4, 0.2)]:
        checkpointer.save(step, _state(step), {"model_identity": IDENTITY, "data_position": step},
                          metrics={"pass@1": score})
    checkpointer.wait()
    assert checkpointer.all_steps() == [2, 3, 4]
    assert checkpointer.latest_step() == 4
    assert checkpointer.best_step() == 2

    restored, meta = checkpointer.restore(abstract_like(_state(0)), expected_identity=IDENTITY)
    assert meta["data_position"] == 4
    np.testing.assert_array_equal(restored["params"]["w"], np.full((4, 3), 4.0))
    np.testing.assert_array_equal(restored["rng"], jax.random.key_data(jax.random.key(4)))

    restored_best, meta_best = checkpointer.restore(_state(0), step=2)
    assert meta_best["metrics"] == {"pass@1": 0.9}
    np.testing.assert_array_equal(restored_best["params"]["b"], np.arange(3.0) + 2)
    checkpointer.close()


def test_checkpoint_of_another_model_names_the_difference(tmp_path):
    checkpointer = Checkpointer(str(tmp_path), CheckpointOptions(async_save=False))
    checkpointer.save(1, _state(1), {"model_identity": IDENTITY})
    with pytest.raises(CheckpointMismatchError, match=r"name: checkpoint has 'tiny-llama', this run has 'smollm2'"):
        checkpointer.restore(_state(0), expected_identity={**IDENTITY, "name": "smollm2"})
    checkpointer.close()


def test_state_with_other_shapes_is_refused(tmp_path):
    checkpointer = Checkpointer(str(tmp_path), CheckpointOptions(async_save=False))
    checkpointer.save(1, _state(1), {"model_identity": IDENTITY})
    other = _state(0)
    other["params"]["w"] = jnp.zeros((5, 3))
    with pytest.raises(CheckpointMismatchError, match="does not match"):
        checkpointer.restore(other)
    checkpointer.close()


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    checkpointer = Checkpointer(str(tmp_path / "empty"))
    assert checkpointer.latest_step() is None
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpointer.restore(_state(0))
    checkpointer.close()
