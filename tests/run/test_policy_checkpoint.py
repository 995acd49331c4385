"""`load_policy`: a checkpoint written the way the trainer writes it comes back as the trained policy.

The checkpoints here are real Orbax checkpoints of a whole `TrainState` (tiny-llama, the tiny
config's PPO settings, value head included) with the trainer's meta item; the policy parameters are
shifted per step so that the restored values tell which step (and which item) was read.
"""

import json
import os

import jax
import numpy as np
import pytest
from flax import nnx

from rltf_jax.run.checkpoint import CheckpointMismatchError, Checkpointer
from rltf_jax.models import load_model
from rltf_jax.run.policy_checkpoint import load_policy
from rltf_jax.run.config_files import load_config_file
from rltf_jax.ppo import PPOConfig, init_train_state
from rltf_jax.run.checkpoint import model_identity

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tiny_config():
    return load_config_file(os.path.join(ROOT, "configs/tiny.py"))


def _params(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def _write_run(workdir, *, identity_name=None, steps=(1, 2)):
    """Saves a TrainState per step whose policy is the fresh tiny-llama's params + 0.01 * step."""
    config = _tiny_config()
    loaded = load_model(config.model.name)
    state, _ = init_train_state(loaded, PPOConfig(**config.ppo.to_dict()), seed=config.seed)
    identity_model = load_model(identity_name) if identity_name else loaded
    identity = model_identity(identity_name or config.model.name, identity_model.config)
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    expected = {}
    for step in steps:
        policy = jax.tree.map(lambda x, s=step: x + 0.01 * s, state.policy)
        meta = {"step": step, "model_identity": identity, "history": {},
                "config": json.loads(config.to_json())}
        checkpointer.save(step, state._replace(policy=policy), meta, force=True)
        expected[step] = [np.asarray(x) for x in jax.tree.leaves(policy)]
    checkpointer.close()
    return expected, _params(loaded.model)


def test_latest_and_chosen_step_restore_that_steps_policy(tmp_path):
    expected, fresh = _write_run(tmp_path)
    latest = load_policy(str(tmp_path))  # the workdir
    assert latest.name == "tiny-llama"
    for got, want, before in zip(_params(latest.model), expected[2], fresh):
        np.testing.assert_array_equal(got, want)
        assert not np.array_equal(got, before)
    first = load_policy(str(tmp_path / "checkpoints"), step=1)  # the checkpoints directory
    for got, want in zip(_params(first.model), expected[1]):
        np.testing.assert_array_equal(got, want)


def test_restored_policy_generates_with_its_own_weights(tmp_path):
    """The Sampler runs on the restored model, and its logits are the shifted params' logits."""
    from rltf_jax.sampling import Sampler, SamplingParams

    _write_run(tmp_path, steps=(3,))
    loaded = load_policy(str(tmp_path))
    fresh = load_model("tiny-llama")
    tokens = np.array([[1, 2, 3, 4]], np.int32)
    positions = np.arange(4, dtype=np.int32)[None]
    mask = np.ones((1, 4), bool)
    restored_logits = np.asarray(loaded.model(tokens, positions, mask)[0])
    assert not np.allclose(restored_logits, np.asarray(fresh.model(tokens, positions, mask)[0]))
    rollout = Sampler(loaded).generate(["def f():"], SamplingParams(max_new_tokens=4, greedy=True),
                                       jax.random.PRNGKey(0))
    assert rollout.response_mask.sum() >= 1


def test_checkpoint_of_another_model_is_refused(tmp_path):
    _write_run(tmp_path, identity_name="tiny-qwen2", steps=(1,))
    with pytest.raises(CheckpointMismatchError, match="written for another model"):
        load_policy(str(tmp_path))


def test_missing_checkpoint_or_step(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_policy(str(tmp_path / "nowhere"))
    _write_run(tmp_path, steps=(1,))
    with pytest.raises(FileNotFoundError, match="no checkpoint for step 7"):
        load_policy(str(tmp_path), step=7)


@pytest.mark.slow
def test_evaluate_cli_takes_a_checkpoint(tmp_path):
    from rltf_jax.cli.evaluate import main

    _write_run(tmp_path, steps=(1,))
    output = tmp_path / "eval.json"
    result = main(["--checkpoint", str(tmp_path), "--dataset", "starter:heldout", "--limit", "2",
                   "--max-new-tokens", "8", "--no-progress", "--output", str(output)])
    assert result["num_problems"] == 2 and 0.0 <= result["pass@1"] <= 1.0
    assert result["model"] == str(tmp_path)
    assert json.loads(output.read_text())["pass@1"] == result["pass@1"]
