"""Load the policy a training run saved: its Orbax checkpoint's ``TrainState.policy`` on a fresh model.

    loaded = load_policy("runs/x")                   # the run's workdir or its checkpoints/ directory
    loaded = load_policy("runs/x/checkpoints", step=4)

The checkpoint's meta item names the model and its dtypes (the run's config) and records the model
identity; the model is loaded by that name, checked against the identity, and the saved policy
parameters replace its own. Only the policy is read: the value model, the frozen reference and the
optimizer state stay on disk (Orbax placeholders), so loading costs one copy of the parameters.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

from rltf_jax.models import LoadedModel, load_model
from rltf_jax.ppo import PPOConfig, init_train_state
from rltf_jax.run.checkpoint import (
    STATE_ITEM,
    Checkpointer,
    CheckpointMismatchError,
    abstract_like,
    check_identity,
    model_identity,
)


def checkpoint_directory(path: str) -> str:
    """The Orbax directory of ``path``: a run's workdir (holding ``checkpoints/``) or that directory."""
    path = os.path.abspath(path)
    nested = os.path.join(path, "checkpoints")
    if os.path.isdir(nested):
        return nested
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no checkpoint directory at {path}")
    return path


def _restore_target(loaded: LoadedModel, config: dict[str, Any]):
    """A TrainState-shaped restore target: the model's abstract params for ``policy``, placeholders elsewhere."""

    ppo_config = PPOConfig(**config["ppo"])
    shapes = jax.eval_shape(lambda: init_train_state(loaded, ppo_config, seed=config.get("seed", 0))[0])
    skipped = jax.tree.map(lambda _: ocp.PLACEHOLDER, shapes)
    return skipped._replace(policy=abstract_like(nnx.state(loaded.model, nnx.Param)))


def load_policy(path: str, *, step: int | None = None, mesh=None) -> LoadedModel:
    """The trained policy of a run's checkpoint as a `LoadedModel` (ready for `Sampler`).

    Args:
      path: the run's workdir or its ``checkpoints`` directory.
      step: which checkpoint (default: the latest).
      mesh: load and restore the parameters straight into their shardings on this mesh.

    Returns:
      ``LoadedModel`` whose ``model`` holds the checkpoint's policy parameters; ``name`` is the
      model name the run trained.

    Raises:
      FileNotFoundError: no checkpoint there (or not that step).
      CheckpointMismatchError: the saved model identity differs from the model of that name.
    """
    directory = checkpoint_directory(path)
    checkpointer = Checkpointer(directory)
    try:
        step = checkpointer.latest_step() if step is None else step
        meta = checkpointer.read_meta(step)  # FileNotFoundError for a missing step
    finally:
        checkpointer.close()
    step_dir = os.path.join(directory, str(step))
    config = meta["config"]
    name = config["model"]["name"]
    loaded = load_model(name, dtype=config["model"]["dtype"], param_dtype=config["model"]["param_dtype"],
                        mesh=mesh)
    check_identity(meta.get("model_identity"), model_identity(name, loaded.config), where=step_dir)
    target = _restore_target(loaded, config)
    # The Checkpointer restores whole states (StandardRestore has no placeholders); the item it
    # saved is a PyTree checkpoint, read here with the non-policy leaves skipped.
    try:
        with ocp.PyTreeCheckpointer() as reader:
            state = reader.restore(os.path.join(step_dir, STATE_ITEM), args=ocp.args.PyTreeRestore(
                item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target)))
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointMismatchError(
            f"checkpoint {step_dir} does not hold a {name} policy of this layout: {error}") from error
    nnx.update(loaded.model, state.policy)
    return loaded
