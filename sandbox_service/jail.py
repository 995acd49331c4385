"""The jail's fixed parts, used by the zygote (PID 1 of its namespaces, still root).

Filesystem: empty root-owned tmpfs over the world-writable directories, a closed home dir
holding the interpreter replaced by a tmpfs with only the interpreter prefix bound back
read-only, ``/`` remounted read-only, and a fresh size-limited tmpfs on ``/tmp`` per run.
Also the slot's cgroup (join, per-run memory limit, OOM-kill count) and the namespace-wide kill.
"""

from __future__ import annotations

import os
import signal
import sys

from sandbox_service import linux

EMPTY_ROOT_OWNED = ("/var/tmp", "/run/lock", "/dev/shm", "/dev/mqueue")


def join_cgroups(config: dict) -> None:
    for path in config.get("cgroups", {}).values():
        if path:
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write("0")
    try:  # the OOM killer should take the program, never the zygote (needs CAP_SYS_RESOURCE)
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("-1000")
    except OSError:
        pass


def _closed_ancestor(path: str) -> str | None:
    """The highest ancestor of `path` that other users cannot traverse (e.g. /root), or None."""
    parts = os.path.abspath(path).split("/")[1:]
    for depth in range(1, len(parts) + 1):
        ancestor = "/" + "/".join(parts[:depth])
        if not os.stat(ancestor).st_mode & 0o001:
            return ancestor
    return None


def _expose_interpreter() -> None:
    """Let the unprivileged child import the stdlib when Python lives in a closed home dir.

    An empty tmpfs is mounted over the closed directory (hiding everything else in it, such
    as root's home) and only the interpreter's prefix is bind-mounted back at its own path.
    """
    for prefix in dict.fromkeys((sys.base_prefix, sys.prefix)):
        closed = _closed_ancestor(prefix)
        if closed is None:
            continue
        staging = "/tmp/.prefix"
        os.makedirs(staging, exist_ok=True)
        linux.mount(prefix, staging, None, linux.MS_BIND | linux.MS_REC)
        linux.mount("tmpfs", closed, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV,
                    "size=64k,nr_inodes=256,mode=0755")
        os.makedirs(prefix, exist_ok=True)
        linux.mount(staging, prefix, None, linux.MS_MOVE)
        linux.mount(None, prefix, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
        os.rmdir(staging)


# Where the code the jail runs lives, when that is under /tmp (e.g. a clone in /tmp): /tmp is
# covered by a fresh tmpfs for every run, so those directories are bind-mounted once into
# KEEP_ROOT (its own empty root-owned tmpfs) and bound back, read-only, into each new /tmp.
KEEP_ROOT = "/var/tmp"
_kept: list[tuple[str, str]] = []  # (staging path under KEEP_ROOT, original path under /tmp)


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _paths_to_keep() -> list[str]:
    """The interpreter prefixes and this package's root, outermost first, that lie under /tmp."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = sorted({os.path.abspath(p) for p in (sys.base_prefix, sys.prefix, package_root)})
    hidden = [d for d in EMPTY_ROOT_OWNED if any(_under(p, d) for p in candidates)]
    if hidden:
        raise RuntimeError(f"the sandbox's interpreter or package lives under {hidden[0]}, which the jail "
                           "replaces with an empty directory; install it elsewhere (e.g. under /tmp or /opt)")
    kept: list[str] = []
    for path in candidates:
        if _under(path, "/tmp") and not any(_under(path, outer) for outer in kept):
            kept.append(path)
    return kept


def _bind_kept_into_tmp() -> None:
    """Bind every kept directory back at its own path inside the current /tmp, read-only."""
    for staging, original in _kept:
        os.makedirs(original, mode=0o755, exist_ok=True)
        linux.mount(staging, original, None, linux.MS_BIND | linux.MS_REC)
        linux.mount(None, original, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)


def lock_filesystem() -> None:
    """Root read-only; world-writable dirs replaced by empty root-owned tmpfs; /tmp per run."""
    keep = _paths_to_keep()
    for path in EMPTY_ROOT_OWNED:
        if os.path.isdir(path):
            linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV,
                        f"size=16k,nr_inodes={16 + 2 * len(keep)},mode=0755")
    for index, original in enumerate(keep):  # before /tmp is covered, while they are visible
        staging = os.path.join(KEEP_ROOT, f".keep{index}")
        os.makedirs(staging, mode=0o755)
        linux.mount(original, staging, None, linux.MS_BIND | linux.MS_REC)
        _kept.append((staging, original))
    linux.mount("tmpfs", "/tmp", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV,
                "size=64k,nr_inodes=64,mode=0755")
    _bind_kept_into_tmp()
    _expose_interpreter()
    linux.mount(None, "/", None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)


def mount_fresh_tmp(tmp_mb: int, replace: bool) -> None:
    """A new empty tmpfs on /tmp; with `replace`, the current one is dropped first unless the
    last run left it empty (no inode but its root, no block used), which saves two syscalls."""
    if replace:
        usage = os.statvfs("/tmp")
        if not _kept and usage.f_files - usage.f_ffree <= 1 and usage.f_bfree == usage.f_blocks:
            return
        linux.umount("/tmp")
    linux.mount("tmpfs", "/tmp", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV,
                f"size={tmp_mb}m,nr_inodes=4096,mode=1777")
    _bind_kept_into_tmp()


class Cgroup:
    """The slot's cgroup v1 memory controller (optional): per-run limit and OOM-kill count."""

    def __init__(self, path: str | None):
        self.path = path
        self._oom_fd: int | None = None  # memory.oom_control, opened on first read

    def set_memory_limit(self, limit_bytes: int) -> None:
        if self.path and limit_bytes != getattr(self, "_limit", None):
            self._limit = limit_bytes
            try:
                with open(os.path.join(self.path, "memory.limit_in_bytes"), "w") as f:
                    f.write(str(limit_bytes))
            except OSError:
                pass

    def oom_kills(self) -> int:
        """The memory group's OOM-kill count (read before and after every run: one pread of an
        fd kept open, instead of a text file object per read)."""
        if not self.path:
            return 0
        try:
            if self._oom_fd is None:
                self._oom_fd = os.open(os.path.join(self.path, "memory.oom_control"),
                                       os.O_RDONLY | os.O_CLOEXEC)
            data = os.pread(self._oom_fd, 4096, 0)
        except OSError:
            return 0
        for line in data.split(b"\n"):
            if line.startswith(b"oom_kill "):
                return int(line.split()[1])
        return 0


def kill_namespace() -> None:
    """SIGKILL every process of this PID namespace except PID 1 (us), then reap them."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while True:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        if pid == 0:
            return
