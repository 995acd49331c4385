"""Orbax checkpoints of the whole training state.

A checkpoint is one Orbax step directory with two items:

* ``state``: the array pytree (policy and value parameters, optimizer state, step, RNG key data,
  anything else the trainer puts in its ``TrainState``), saved asynchronously;
* ``meta``: JSON: the model's identity (name and architecture), the config, the data iterator's
  position and whatever else the trainer needs to continue exactly.

Restoring takes an *abstract* state whose leaves carry the target shardings
(``jax.ShapeDtypeStruct(shape, dtype, sharding=...)``), so arrays go straight onto the mesh.
Before any array is read, the saved model identity is compared with the current one: a checkpoint
from another model or architecture fails with a message that names both.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as preservation

STATE_ITEM = "state"
META_ITEM = "meta"


class CheckpointMismatchError(ValueError):
    """The checkpoint was written for another model, architecture or state layout."""


@dataclasses.dataclass(frozen=True)
class CheckpointOptions:
    """How many checkpoints to keep and how.

    Attributes:
      max_to_keep: the newest ``max_to_keep`` checkpoints are kept.
      best_metric: a metric name passed to :meth:`Checkpointer.save`; the best checkpoint by it is
        kept as well (in addition to the newest ones). ``None``: newest only.
      best_mode: ``"max"`` or ``"min"``.
      async_save: write in a background thread (training continues meanwhile).
    """

    max_to_keep: int = 3
    best_metric: str | None = None
    best_mode: str = "max"
    async_save: bool = True


def abstract_like(state: Any) -> Any:
    """The abstract pytree of ``state``: shapes, dtypes and shardings, no data."""

    def leaf(x):
        if isinstance(x, jax.Array):
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
        return x

    return jax.tree.map(leaf, state)


class Checkpointer:
    """Saves and restores training states in ``directory`` (created if missing)."""

    def __init__(self, directory: str, options: CheckpointOptions = CheckpointOptions()):
        if options.best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min', got {options.best_mode!r}")
        self.directory = os.path.abspath(directory)
        self.options = options
        policies: list[preservation.PreservationPolicy] = [preservation.LatestN(n=options.max_to_keep)]
        if options.best_metric is not None:
            metric = options.best_metric
            policies.append(preservation.BestN(
                get_metric_fn=lambda metrics: metrics[metric],
                reverse=options.best_mode == "min",
                n=1,
                keep_checkpoints_without_metrics=False,
            ))
        manager_options = ocp.CheckpointManagerOptions(
            preservation_policy=preservation.AnyPreservationPolicy(policies),
            enable_async_checkpointing=options.async_save,
            create=True,
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=manager_options, item_names=(STATE_ITEM, META_ITEM))

    # ----------------------------------------------------------------------------------- queries
    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def best_step(self, metric: str | None = None, mode: str | None = None) -> int | None:
        """The kept step with the best value of ``metric`` (default: the configured best metric)."""
        metric = metric or self.options.best_metric
        mode = mode or self.options.best_mode
        if metric is None:
            return None
        scored = []
        for step in self.all_steps():
            metrics = self.read_meta(step).get("metrics") or {}
            if metric in metrics:
                scored.append((metrics[metric], step))
        if not scored:
            return None
        return (max if mode == "max" else min)(scored)[1]

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """The JSON item of ``step`` (default: the latest)."""
        step = self._resolve(step)
        restored = self._manager.restore(
            step, args=ocp.args.Composite(**{META_ITEM: ocp.args.JsonRestore()}))
        return dict(restored[META_ITEM])

    # ------------------------------------------------------------------------------ save/restore
    def save(self, step: int, state: Any, meta: Mapping[str, Any], *,
             metrics: Mapping[str, float] | None = None, force: bool = False) -> bool:
        """Saves ``state`` (arrays) and ``meta`` (JSON-serialisable) as ``step``.

        ``metrics`` are stored in the meta item and used for best-checkpoint selection.
        Returns whether a save was started (asynchronous: call :meth:`wait` before reading it).
        """
        meta = dict(meta)
        if metrics is not None:
            meta["metrics"] = {k: float(v) for k, v in metrics.items()}
        return self._manager.save(
            step,
            args=ocp.args.Composite(**{
                STATE_ITEM: ocp.args.StandardSave(state),
                META_ITEM: ocp.args.JsonSave(meta),
            }),
            metrics=meta.get("metrics"),
            force=force,
        )

    def restore(self, abstract_state: Any, *, step: int | None = None,
                expected_identity: Mapping[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Restores ``(state, meta)`` of ``step`` (default: the latest) onto ``abstract_state``'s shardings.

        Args:
          abstract_state: a pytree like the saved state with ``jax.ShapeDtypeStruct`` leaves that
            carry the target shardings (see :func:`abstract_like`), or the live state itself.
          expected_identity: the current run's ``model_identity``; a checkpoint whose saved
            identity differs raises :class:`CheckpointMismatchError` before arrays are read.
        """
        step = self._resolve(step)
        meta = self.read_meta(step)
        if expected_identity is not None:
            check_identity(meta.get("model_identity"), expected_identity, where=self._step_dir(step))
        target = abstract_like(abstract_state)
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(**{STATE_ITEM: ocp.args.StandardRestore(target)}))
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointMismatchError(
                f"checkpoint {self._step_dir(step)} does not match this run's training state "
                f"(layout or shapes differ): {error}") from error
        return restored[STATE_ITEM], meta

    def wait(self) -> None:
        """Blocks until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    # ----------------------------------------------------------------------------------- helpers
    def _resolve(self, step: int | None) -> int:
        if step is None:
            step = self.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        if step not in self.all_steps():
            raise FileNotFoundError(
                f"no checkpoint for step {step} in {self.directory} (have {self.all_steps()})")
        return step

    def _step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(step))


def model_identity(name: str, model_config) -> dict[str, Any]:
    """What a checkpoint must match: the model's name and architecture (not its dtypes or remat)."""
    fields = dataclasses.asdict(model_config)
    for numeric in ("dtype", "param_dtype", "remat"):
        fields.pop(numeric, None)
    return {"name": name, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()}}


def check_identity(saved: Mapping[str, Any] | None, expected: Mapping[str, Any], *, where: str) -> None:
    """Raises :class:`CheckpointMismatchError` naming every field where ``saved`` and ``expected`` differ."""
    if saved is None:
        raise CheckpointMismatchError(f"checkpoint {where} records no model identity; cannot verify it")
    differences = []
    for key in sorted(set(saved) | set(expected)):
        if saved.get(key) != expected.get(key):
            differences.append(f"{key}: checkpoint has {saved.get(key)!r}, this run has {expected.get(key)!r}")
    if differences:
        raise CheckpointMismatchError(
            f"checkpoint {where} was written for another model:\n  " + "\n  ".join(differences))
