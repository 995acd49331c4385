"""What a multi-process (multi-host) training run needs beyond one process: who samples what, and how
each process's rows become one global batch.

Each process generates, executes and scores its own contiguous share of the step's problems (on a
process-local sampler mesh), then the PPO update runs once on the global mesh: every process hands
in its rows (`global_batch`, jax.make_array_from_process_local_data) and the batch axis is sharded
over ("data", "fsdp"), so process p's rows live on process p's devices. Group ids and sampling rows
are numbered step-wide, so the processes' shares together are exactly the step a single process
would run (tests/integration/test_multihost.py checks a 2-process run against a 1-process one). With one process
every function here is the identity.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

# Host metrics that are counts over the step (summed over processes); the others are means.
SUMMED_METRICS = ("samples/total", "samples/dropped_sandbox_error", "samples/replayed",
                  "samples/dropped_no_baseline", "baseline/dropped_sandbox_error")


def process_share(items: Sequence, process_index: int | None = None,
                  process_count: int | None = None) -> tuple[list, int]:
    """(this process's contiguous share of `items`, index of its first item in `items`)."""
    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    if len(items) % count:
        raise ValueError(f"{len(items)} problems per step cannot be split evenly over {count} processes; "
                         "make data.problems_per_step a multiple of the process count")
    share = len(items) // count
    return list(items[index * share:(index + 1) * share]), index * share


def agree_max(value: int) -> int:
    """The largest `value` over all processes (every process must call it)."""
    if jax.process_count() == 1:
        return int(value)
    return int(np.max(multihost_utils.process_allgather(np.asarray(value, np.int64))))


def _gathered(values) -> np.ndarray:
    """This process's float array [...] -> every process's, [processes, ...] (all must call it)."""
    return np.asarray(multihost_utils.process_allgather(np.asarray(values, np.float64)))


def combine_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Host metrics of this process's share -> the step's: counts summed, rates averaged (the
    shares are equal in size). Every process must call it with the same keys."""
    if jax.process_count() == 1:
        return metrics
    keys = sorted(metrics)
    gathered = _gathered([metrics[k] for k in keys])  # [processes, keys]
    return {k: float(gathered[:, i].sum() if k in SUMMED_METRICS else gathered[:, i].mean())
            for i, k in enumerate(keys)}


def combine_sums(sums: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """{name: (sum, count)} of this process's share -> of the whole step (both summed over the
    processes; every process must call it with the same names)."""
    if jax.process_count() == 1:
        return sums
    keys = sorted(sums)
    total = _gathered([sums[k] for k in keys]).sum(axis=0)  # [keys, 2]
    return {k: (float(total[i, 0]), float(total[i, 1])) for i, k in enumerate(keys)}


def global_batch(batch, mesh, batch_axes):
    """A NamedTuple (or dict) of this process's [rows, ...] numpy arrays -> the same of global
    jax.Arrays [processes × rows, ...], rows sharded over `batch_axes` of `mesh` (the identity in a
    single process: jit places numpy inputs itself)."""
    if jax.process_count() == 1:
        return batch

    def to_global(x):
        x = np.asarray(x)
        spec = PartitionSpec(batch_axes, *([None] * (x.ndim - 1)))
        return jax.make_array_from_process_local_data(NamedSharding(mesh, spec), x)

    if isinstance(batch, dict):
        return {k: to_global(v) for k, v in batch.items()}
    return type(batch)(*(to_global(x) for x in batch))


def process_local(tree):
    """Multi-process runs: arrays that span other processes' devices -> this process's full copy
    (a replicated array's local shard; a sharded one gathered, a collective every process joins).
    The sampler runs on a process-local mesh: each process generates its own rows."""
    if jax.process_count() == 1:
        return tree

    def local(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return x
        if x.is_fully_replicated:
            return x.addressable_data(0)
        return jnp.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(local, tree)
