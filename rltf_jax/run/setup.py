"""Process set-up shared by the entry points: multi-host initialisation, compile logging, and the
release of compiled code before it exhausts the process's memory maps."""

from __future__ import annotations

import gc
import logging
import os
import threading

import jax
from absl import logging as absl_logging

_LOG = logging.getLogger("rltf_jax")
_COMPILES = {"count": 0, "seconds": 0.0, "flushes": 0}
_LOCK = threading.Lock()
_LISTENING = False


def configure_host() -> None:
    """Our own logs at INFO on stderr; libraries (Orbax, absl, XLA) at WARNING."""

    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)
    ours = logging.getLogger("rltf_jax")
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        ours.addHandler(handler)
        ours.propagate = False
    ours.setLevel(logging.INFO)


def initialize_distributed(coordinator_address: str = "", num_processes: int = 0,
                           process_id: int = -1) -> None:
    """``jax.distributed.initialize`` for multi-host runs; a no-op for a single process.

    Arguments left empty are read from ``RLTF_COORDINATOR``, ``RLTF_NUM_PROCESSES`` and
    ``RLTF_PROCESS_ID``; when none is set either, JAX's own cluster detection (SLURM, TPU pods,
    ...) decides, and a plain single process stays single.
    """
    address = coordinator_address or os.environ.get("RLTF_COORDINATOR", "")
    count = num_processes or int(os.environ.get("RLTF_NUM_PROCESSES", "0") or 0)
    index = process_id if process_id >= 0 else int(os.environ.get("RLTF_PROCESS_ID", "-1") or -1)
    if not address and count <= 1:
        return
    if count > 1 and (not address or index < 0):
        raise ValueError(
            f"a {count}-process run needs a coordinator address and a process id "
            f"(got address={address!r}, process_id={index}); set RLTF_COORDINATOR / RLTF_PROCESS_ID")
    # CPU devices of different processes talk through gloo (GPUs / TPUs bring their own collectives).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=address, num_processes=count, process_id=index)
    _LOG.info("process %d of %d, %d local / %d global devices", jax.process_index(),
              jax.process_count(), jax.local_device_count(), jax.device_count())


def _on_duration(event: str, duration: float, **_) -> None:
    if event.endswith("backend_compile_duration"):
        with _LOCK:
            _COMPILES["count"] += 1
            _COMPILES["seconds"] += duration
        level = logging.INFO if duration >= 1.0 else logging.DEBUG  # small eager ops compile too
        _LOG.log(level, "XLA compile #%d took %.2fs", _COMPILES["count"], duration)


def watch_compiles() -> None:
    """Counts (and logs) every XLA compilation, so a recompile storm shows in the metrics."""
    global _LISTENING
    if not _LISTENING:
        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        _LISTENING = True


def compile_stats() -> dict[str, float]:
    """``{"compile/count": n, "compile/seconds": s}`` since the process started watching."""
    with _LOCK:
        return {"compile/count": float(_COMPILES["count"]), "compile/seconds": _COMPILES["seconds"]}


# XLA:CPU loads each kernel of a compiled program as its own object, three memory maps apiece (code,
# read-only data, data): a bucket of the sampler holds hundreds of maps, an RLEF update signature more.
# A long run that keeps meeting new shapes can cross Linux's default vm.max_map_count (65,530), and
# the next compile then dies with "LLVM compilation error: Cannot allocate memory" and a segfault.
# Past this fraction of the limit the trainer drops
# every compiled program; the shapes still in use compile again (seconds each).
MAP_FRACTION_TO_RELEASE = 0.5


def memory_maps() -> tuple[int, int] | None:
    """(this process's memory maps, vm.max_map_count), or None where /proc does not say (not Linux)."""
    try:
        with open("/proc/self/maps", "rb") as handle:
            count = sum(1 for _ in handle)
        with open("/proc/sys/vm/max_map_count", encoding="ascii") as handle:
            limit = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    return count, limit


def release_compiled_code(fraction: float = MAP_FRACTION_TO_RELEASE) -> dict[str, float]:
    """Clears JAX's compiled programs (``jax.clear_caches``) when the process's memory maps pass
    `fraction` of vm.max_map_count; call it between steps. Returns ``{"process/memory_maps": n,
    "compile/flushes": flushes so far}`` (no map count where /proc does not give one)."""
    maps = memory_maps()
    if maps is None:
        return {"compile/flushes": float(_COMPILES["flushes"])}
    count, limit = maps
    if count > fraction * limit:
        jax.clear_caches()
        gc.collect()
        after = memory_maps()
        with _LOCK:
            _COMPILES["flushes"] += 1
        _LOG.warning("released compiled programs: %d of vm.max_map_count=%d memory maps in use, %s after "
                     "(XLA:CPU maps each kernel separately; the shapes still in use compile again)",
                     count, limit, after[0] if after else "?")
        count = after[0] if after else count
    return {"process/memory_maps": float(count), "compile/flushes": float(_COMPILES["flushes"])}
