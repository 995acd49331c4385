"""Per-worker cgroup v1 directories (memory + pids), when the host lets us create them.

Layout: /sys/fs/cgroup/{memory,pids}/rltf_sandbox_<service pid>/slot<i>. The zygote joins its
slot's groups itself (writing "0" to cgroup.procs) and sets the memory limit per run; the pids
limit is fixed here. Everything is best-effort: without cgroups the rlimits still apply.
"""

from __future__ import annotations

import os
import time

CGROUP_ROOT = "/sys/fs/cgroup"
PIDS_MAX = 96


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _remove_stale_groups(root: str) -> None:
    """Remove empty groups left by services that were killed (their pid no longer exists)."""
    for controller in ("memory", "pids"):
        parent = os.path.join(root, controller)
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            pid = name.removeprefix("rltf_sandbox_")
            if not name.startswith("rltf_sandbox_") or not pid.isdigit():
                continue
            if os.path.exists(f"/proc/{pid}"):
                continue
            base = os.path.join(parent, name)
            for slot in os.listdir(base):
                if slot.startswith("slot"):
                    try:
                        os.rmdir(os.path.join(base, slot))
                    except OSError:
                        pass
            try:
                os.rmdir(base)
            except OSError:
                pass  # still has members (they would be killed jails): leave it


class CgroupTree:
    """Creates and removes this service's cgroup directories."""

    def __init__(self, root: str = CGROUP_ROOT):
        self.base = {c: os.path.join(root, c, f"rltf_sandbox_{os.getpid()}")
                     for c in ("memory", "pids")}
        _remove_stale_groups(root)
        self.available: dict[str, bool] = {}
        for controller, path in self.base.items():
            try:
                os.makedirs(path, exist_ok=True)
                self.available[controller] = True
            except OSError:
                self.available[controller] = False

    def slot(self, index: int) -> dict[str, str | None]:
        """Paths of slot `index`'s groups (None for a controller that is unavailable)."""
        paths: dict[str, str | None] = {}
        for controller, base in self.base.items():
            path = os.path.join(base, f"slot{index}")
            if not self.available[controller]:
                paths[controller] = None
                continue
            try:
                os.makedirs(path, exist_ok=True)
                if controller == "pids":
                    _write(os.path.join(path, "pids.max"), str(PIDS_MAX))
                paths[controller] = path
            except OSError:
                paths[controller] = None
        return paths

    def remove(self, wait_s: float = 3.0) -> None:
        """Remove every slot directory and the base (waits for killed members to exit)."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not self._remove_once():
            time.sleep(0.05)

    def _remove_once(self) -> bool:
        for controller, base in self.base.items():
            if not self.available.get(controller) or not os.path.isdir(base):
                continue
            for name in os.listdir(base):
                path = os.path.join(base, name)
                if name.startswith("slot") and os.path.isdir(path):
                    try:
                        os.rmdir(path)
                    except OSError:
                        pass
            try:
                os.rmdir(base)
            except OSError:
                pass
        return not any(os.path.isdir(b) for c, b in self.base.items() if self.available.get(c))
