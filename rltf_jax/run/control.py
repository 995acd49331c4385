"""Run control for the trainer: the wall-clock training budget and the Ctrl-C handling."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

_LOG = logging.getLogger("rltf_jax.run.trainer")


class TrainBudget:
    """Wall-clock budget for training (``config.max_train_minutes``; 0 = none), evaluation excluded.

    `exhausted()` is true once another step, as long as the last one, would end past the budget, so a
    run never overruns it by a step. Across processes process 0's clock decides (one broadcast), so
    every host stops after the same step.
    """

    def __init__(self, limit_minutes: float, *, spent_seconds: float = 0.0):
        """spent_seconds: training time of the steps before a resume (counts against the budget)."""
        self.limit_minutes = float(limit_minutes or 0.0)
        self.seconds, self.last = float(spent_seconds), 0.0

    def add(self, seconds: float) -> None:
        self.seconds += seconds
        self.last = seconds

    @property
    def minutes(self) -> float:
        return self.seconds / 60.0

    def exhausted(self, running_seconds: float = 0.0) -> bool:
        """running_seconds: time already spent in the current, not yet `add`ed step."""
        if self.limit_minutes <= 0:
            return False
        over = self.seconds + running_seconds + self.last > self.limit_minutes * 60.0
        if jax.process_count() > 1:
            over = bool(multihost_utils.broadcast_one_to_all(np.asarray(over)))
        return over


@contextlib.contextmanager
def stop_on_sigint():
    """Yields a ``stop_requested()`` callable; the first SIGINT sets it, a second one raises."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set
        return

    def handler(signum, frame):
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        _LOG.warning("Ctrl-C: finishing this step, then saving a checkpoint (Ctrl-C again to abort)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
