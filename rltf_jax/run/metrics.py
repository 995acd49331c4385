"""Training metrics: a JSONL file, TensorBoard event files and a progress bar.

Only the main process (``jax.process_index() == 0``) writes; the others get a logger that does
nothing, so multi-host runs produce one log. Values are plain floats (host scalars): the caller
fetches device metrics once per step (one ``jax.device_get``), never one scalar at a time.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, Mapping

import numpy as np
from tqdm.auto import tqdm


def _as_float(value: Any) -> float | None:
    try:
        number = float(np.asarray(value))
    except (TypeError, ValueError):
        return None
    return number


class MetricsLogger:
    """Writes one JSON object per step to ``<workdir>/metrics.jsonl`` and scalars to TensorBoard.

    Args:
      workdir: run directory; created if missing.
      total_steps: for the progress bar's ETA.
      start_step: the first step this process will log (after a resume).
      enabled: False on non-main processes: every method is then a no-op.
      progress: show a progress bar on stderr.
    """

    def __init__(self, workdir: str, *, total_steps: int, start_step: int = 0,
                 enabled: bool = True, progress: bool = True):
        self.enabled = enabled
        self.total_steps = total_steps
        self._start_time = time.monotonic()
        self._start_step = start_step
        self._jsonl = None
        self._tb = None
        self._bar = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8")
        self._tb = _summary_writer(os.path.join(workdir, "tensorboard"))
        if progress:
            self._bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step",
                             dynamic_ncols=True)

    def log(self, step: int, metrics: Mapping[str, Any], *, summary_keys: tuple[str, ...] = ()) -> None:
        """Records ``metrics`` for ``step`` (1-based, the step just completed)."""
        if not self.enabled:
            return
        record: dict[str, Any] = {"step": int(step), "time": time.time()}
        for key, value in metrics.items():
            if isinstance(value, str):
                record[key] = value
                continue
            number = _as_float(value)
            if number is None:
                continue
            record[key] = number if math.isfinite(number) else str(number)
            if math.isfinite(number):
                self._tb.add_scalar(key, number, step)
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        if self._bar is not None:
            self._bar.update(max(0, step - self._bar.n))
            line = self.summary_line(step, record, summary_keys)
            self._bar.write(line)

    def summary_line(self, step: int, record: Mapping[str, Any], keys: tuple[str, ...]) -> str:
        elapsed = time.monotonic() - self._start_time
        done = max(1, step - self._start_step)
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total_steps - step) / rate if rate > 0 else float("nan")
        parts = [f"step {step}/{self.total_steps}"]
        for key in keys:
            if key in record and not isinstance(record[key], str):
                parts.append(f"{key.split('/')[-1]}={record[key]:.4g}")
        parts.append(f"{rate:.3g} steps/s, eta {eta:.0f}s")
        return " | ".join(parts)

    def log_event(self, name: str, payload: Mapping[str, Any]) -> None:
        """A non-step record (evaluation results, resume, interruption) in the same JSONL file."""
        if not self.enabled:
            return
        self._jsonl.write(json.dumps({"event": name, "time": time.time(), **payload}) + "\n")
        self._jsonl.flush()
        if self._bar is not None:
            self._bar.write(f"[{name}] " + ", ".join(f"{k}={v}" for k, v in payload.items()))

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        self._tb.close()
        self._jsonl.close()


def read_metrics(path: str) -> list[dict[str, Any]]:
    """Reads the step records (not the events) of a ``metrics.jsonl`` file, each step once.

    A run resumed from the checkpoint of step s logs a ``resumed`` event with ``step: s``; the
    records of later steps that the interrupted process had logged are dropped, since the resumed
    process logs those steps again, so each step appears once.
    """
    records: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{line_number}: not a JSON line ({error})") from error
            if record.get("event") == "resumed":
                records = [r for r in records if r["step"] <= record.get("step", 0)]
            elif "step" in record and "event" not in record:
                records.append(record)
    return records


def _summary_writer(logdir: str):
    """A tensorboardX SummaryWriter, imported without torch.

    tensorboardX imports torch when it is installed (~2 s, for its torch helpers, which scalars do
    not need). Unless the process already has torch, the import runs with torch marked missing, and
    the mark is removed again, so a later `import torch` works as usual."""
    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None  # `import torch` raises ImportError while this is set
    try:
        from tensorboardX import SummaryWriter
    finally:
        if blocked and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return SummaryWriter(logdir)
