"""The jailed fork server: PID 1 of its own PID/net/mount/IPC/UTS namespaces.

Started by ``pool.py`` as ``unshare --pid --fork --kill-child --net --mount --mount-proc --ipc
--uts python -I -m sandbox_service.zygote CONFIG_JSON`` with a scrubbed environment. At start
it joins its cgroups, mounts empty root-owned tmpfs over the world-writable directories and
makes ``/`` read-only. Then, per job read from stdin (one JSON line), it:

  1. mounts a fresh size-limited tmpfs on /tmp (the only writable place, gone after the run);
  2. forks a child that drops to the slot's unprivileged uid (no capabilities, no_new_privs,
     rlimits AS/CPU/NPROC/FSIZE/NOFILE/CORE=0, new session) and runs ``harness.child_main``;
  3. supervises it from outside: drains stdout/stderr concurrently with caps, reads the
     nonce-tagged result fd, enforces each test's wall timeout, and judges each test
     (``judge.py``) on JSON data; a child that dies mid-test is replaced to continue with the
     next test;
  4. kills every other process of the namespace (``kill(-1, SIGKILL)`` from PID 1) and
     unmounts /tmp.
It answers with one JSON line ``{"tests": [TestRecord, ...]}`` on stdout.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import secrets
import selectors
import signal
import sys
import time

from sandbox_service import harness, judge, linux, seccomp

# Modules a typical solution imports, loaded once here so each forked child has them warm.
_WARM_MODULES = ("collections", "itertools", "functools", "math", "heapq", "bisect", "re",
                 "string", "typing", "random", "statistics", "fractions", "decimal", "copy",
                 "operator", "array", "datetime", "hashlib", "dataclasses", "enum")

OUTPUT_CEILING_BYTES = 32 * 1024 * 1024  # drained (and counted) past the cap, then killed
RESULT_LINE_MAX_BYTES = harness.MAX_VALUE_CHARS + 1024 * 1024
NPROC_LIMIT = 64
NOFILE_LIMIT = 64
_EMPTY_ROOT_OWNED = ("/var/tmp", "/run/lock", "/dev/shm", "/dev/mqueue")


def _warm_up() -> None:
    for name in _WARM_MODULES:
        try:
            __import__(name)
        except ImportError:
            pass


def _join_cgroups(config: dict) -> None:
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


def _lock_filesystem() -> None:
    """Root read-only; world-writable dirs replaced by empty root-owned tmpfs; /tmp per run."""
    linux.mount("tmpfs", "/tmp", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV,
                "size=64k,nr_inodes=64,mode=0755")
    _expose_interpreter()
    for path in _EMPTY_ROOT_OWNED:
        if os.path.isdir(path):
            linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV,
                        "size=16k,nr_inodes=16,mode=0755")
    linux.mount(None, "/", None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)


class _Cgroup:
    """The slot's cgroup v1 memory controller (optional): per-run limit and OOM-kill count."""

    def __init__(self, path: str | None):
        self.path = path

    def set_memory_limit(self, limit_bytes: int) -> None:
        if self.path and limit_bytes != getattr(self, "_limit", None):
            self._limit = limit_bytes
            try:
                with open(os.path.join(self.path, "memory.limit_in_bytes"), "w") as f:
                    f.write(str(limit_bytes))
            except OSError:
                pass

    def oom_kills(self) -> int:
        if not self.path:
            return 0
        try:
            with open(os.path.join(self.path, "memory.oom_control")) as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0


class _Capture:
    """One stream of one test: first `cap` bytes kept, all bytes counted."""

    def __init__(self, cap: int):
        self.cap = cap
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def _kill_namespace() -> None:
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


def _drop_privileges(config: dict, pipes: dict) -> None:
    """In a new child, before it knows its job: fds 0-5, session, static rlimits, uid, seccomp.

    fd 0 /dev/null, 1 stdout pipe, 2 stderr pipe, 3 result pipe, 4 ack pipe, 5 job pipe.
    """
    os.setsid()
    sources = {"in": os.open("/dev/null", os.O_RDONLY), **pipes}
    high = {name: fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for name, fd in sources.items()}
    for target, name in enumerate(("in", "out", "err", "res", "ack", "job")):
        os.dup2(high[name], target)
    os.closerange(6, 1 << 16)
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
    os.umask(0o077)
    for which, value in ((resource.RLIMIT_NPROC, NPROC_LIMIT), (resource.RLIMIT_CORE, 0),
                         (resource.RLIMIT_NOFILE, NOFILE_LIMIT),
                         (resource.RLIMIT_FSIZE, int(config["tmp_mb"]) * 1024 * 1024)):
        resource.setrlimit(which, (value, value))
    uid = int(config["uid"])
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    linux.set_no_new_privs()
    seccomp.install()


def _apply_job_limits(job: dict) -> None:
    """Once the job is known (unprivileged now, so limits can only be lowered)."""
    limits = job["limits"]
    memory = int(limits["memory_mb"]) * 1024 * 1024
    cpu_s = int(limits["timeout_s"] * (len(job["tests"]) + 1)) + 1
    for which, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu_s)):
        resource.setrlimit(which, (value, value))
    os.chdir("/tmp")  # the run's tmpfs, mounted by the zygote before it sent the job


def _receive_job(fd: int) -> dict:
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            os._exit(0)  # the zygote went away or retired this spare
        data += chunk
    os.close(fd)
    return json.loads(data)


class _Child:
    """A forked, already unprivileged child waiting on its job pipe, and the zygote's ends."""

    def __init__(self, config: dict, scrub_job: dict | None = None):
        res_r, res_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ack_r, ack_w = os.pipe()
        job_r, job_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                for fd in (res_r, out_r, err_r, ack_w, job_w):
                    os.close(fd)
                if scrub_job is not None:  # forked during a run: drop that run's answers
                    _scrub_expected(scrub_job)
                _drop_privileges(config, {"out": out_w, "err": err_w, "res": res_w,
                                          "ack": ack_r, "job": job_r})
                message = _receive_job(5)
                job, start, nonce = message["job"], message["start"], message["nonce"]
                del message
                _apply_job_limits(job)
                harness.child_main(job, start, 3, 4, nonce)
            finally:
                os._exit(127)
        for fd in (res_w, out_w, err_w, ack_r, job_r):
            os.close(fd)
        self.pid = pid
        self.res_r, self.out_r, self.err_r, self.ack_w, self.job_w = res_r, out_r, err_r, ack_w, job_w

    def alive(self) -> bool:
        try:
            return os.waitpid(self.pid, os.WNOHANG) == (0, 0)
        except ChildProcessError:
            return False

    def send(self, message: bytes) -> None:
        try:
            view = memoryview(message)
            while view:
                view = view[os.write(self.job_w, view):]
        except BrokenPipeError:
            pass  # it died; supervision reports how
        os.close(self.job_w)
        self.job_w = -1

    def close(self) -> None:
        for fd in (self.res_r, self.out_r, self.err_r, self.ack_w, self.job_w):
            if fd >= 0:
                os.close(fd)


def _scrub_expected(job: dict) -> dict:
    """In the child's copy of memory: drop every expected output before the program runs.

    The test dicts are shared by every reference the zygote holds (the raw request line is not
    kept), so after this a program searching its objects (gc, frames) finds inputs only.
    """
    for test in job["tests"]:
        test.pop("expected", None)
        test.pop("expected_stdout", None)
    return job


class _Run:
    """State of one job: records per test, the current child, clocks and captures."""

    def __init__(self, job: dict, config: dict, cgroup: _Cgroup, spare: _Child | None = None):
        self.job = job
        self.spare = spare
        self.child_job = {**job, "tests": [
            {k: v for k, v in t.items() if k not in ("expected", "expected_stdout")}
            for t in job["tests"]]}
        self.config = config
        self.cgroup = cgroup
        self.tests = job["tests"]
        self.timeout_s = float(job["limits"]["timeout_s"])
        self.cap = int(job["limits"]["output_bytes"])
        self.records: dict[int, dict] = {}
        self.nonce = secrets.token_hex(16)

    # -- verdict of one finished test, from JSON only ------------------------------------
    def _judge(self, index: int, exc: dict | None, value: str | None, stdout: str) -> str:
        mode = self.job["mode"]
        if exc is not None:
            if exc["type"] == "MemoryError":
                return "memory_limit"
            if mode == "assert" and exc["type"] == "AssertionError":
                return "wrong_answer"
            return "runtime_error"
        if mode == "call":
            if value is None:
                return "wrong_answer"
            try:
                got = json.loads(value)
            except ValueError:
                return "wrong_answer"
            want = json.loads(json.dumps(self.tests[index]["expected"]))
            return "pass" if judge.values_equal(got, want) else "wrong_answer"
        if mode == "stdio":
            want = self.tests[index]["expected_stdout"]
            return "pass" if judge.stdout_matches(stdout, want) else "wrong_answer"
        return "pass"

    def _record(self, index: int, verdict: str, exc: dict | None, out: _Capture,
                err: _Capture, time_s: float) -> None:
        truncated = out.total > out.cap or err.total > err.cap
        if truncated and verdict in ("pass", "wrong_answer"):
            verdict = "output_limit"
        self.records[index] = {
            "verdict": verdict, "exception": exc, "stdout": out.text(), "stderr": err.text(),
            "truncated": truncated, "time_s": round(time_s, 6),
            "stdout_bytes": out.total, "stderr_bytes": err.total}

    # -- one child process, running tests from `start` -----------------------------------
    def run_child(self, start: int) -> tuple[str, int | None]:
        """Run tests[start:] (one test in stdio mode) in the spare child or a new one.

        Returns (how it ended, index of the test it died in or None): ended is "done" (every
        test it was given has a record), "load_failed" (records filled for all remaining
        tests), "stopped" (stop_on_first_failure), or "died" (the test at the index has a
        record; continue after it).
        """
        child, self.spare = self.spare, None
        if child is None or not child.alive():
            if child is not None:
                child.close()
            child = _Child(self.config, scrub_job=self.job)
        message = {"job": self.child_job, "start": start, "nonce": self.nonce}
        child.send(json.dumps(message).encode() + b"\n")
        try:
            return self._supervise(child.pid, start, child.res_r, child.out_r, child.err_r,
                                   child.ack_w)
        finally:
            _kill_namespace()
            child.close()

    def _supervise(self, pid: int, start: int, res_r: int, out_r: int, err_r: int,
                   ack_w: int):
        mode = self.job["mode"]
        last = start if mode == "stdio" else len(self.tests) - 1
        stop_first = bool(self.job.get("stop_on_first_failure"))
        oom_before = self.cgroup.oom_kills()
        pidfd = os.pidfd_open(pid)
        sel = selectors.DefaultSelector()
        for fd in (res_r, out_r, err_r, pidfd):
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        out, err = _Capture(self.cap), _Capture(self.cap)
        result_buffer = bytearray()
        current: int | None = None  # test index running, None while the module loads
        began = time.monotonic()
        deadline = began + self.timeout_s
        kill_reason: str | None = None
        exit_status: int | None = None

        def drain(fd: int, capture: _Capture) -> None:
            while True:
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    return
                if not chunk:
                    sel.unregister(fd) if fd in sel.get_map() else None
                    return
                capture.add(chunk)

        def handle_event(event: dict):
            nonlocal current, began, deadline, out, err
            kind = event.get("k")
            if kind == "load_error":
                drain(out_r, out)
                drain(err_r, err)
                exc = event.get("exc")
                if event.get("syntax"):
                    verdict = "syntax_error"
                elif exc and exc.get("type") == "MemoryError":
                    verdict = "memory_limit"
                else:
                    verdict = "runtime_error"
                self._fill_remaining(start, verdict, exc, out, err, time.monotonic() - began)
                return "load_failed"
            if kind == "begin":
                current = int(event["i"])
                began = time.monotonic()
                deadline = began + self.timeout_s
                return None
            if kind == "end" and current is not None and int(event["i"]) == current:
                drain(out_r, out)
                drain(err_r, err)
                exc = event.get("exc")
                value = None if event.get("too_large") else event.get("value")
                verdict = self._judge(current, exc, value, out.text())
                self._record(current, verdict, exc, out, err, time.monotonic() - began)
                finished = current
                current = None
                out, err = _Capture(self.cap), _Capture(self.cap)
                if stop_first and self.records[finished]["verdict"] != "pass":
                    return "stopped"
                if finished >= last:
                    return "done"
                deadline = time.monotonic() + self.timeout_s
                try:
                    os.write(ack_w, b"g")  # the child may start the next test now
                except OSError:
                    pass
            return None

        def read_results():
            nonlocal result_buffer
            while True:
                try:
                    chunk = os.read(res_r, 1 << 16)
                except BlockingIOError:
                    return None
                if not chunk:
                    if res_r in sel.get_map():
                        sel.unregister(res_r)
                    return None
                result_buffer += chunk
                while b"\n" in result_buffer:
                    line, _, rest = result_buffer.partition(b"\n")
                    result_buffer = bytearray(rest)
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if not isinstance(event, dict) or event.get("n") != self.nonce:
                        continue  # not written by the harness
                    ended = handle_event(event)
                    if ended:
                        return ended
                if len(result_buffer) > RESULT_LINE_MAX_BYTES:
                    return "result_too_large"
            return None

        try:
            while True:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    kill_reason = "timeout"
                    break
                for key, _ in sel.select(timeout):
                    fd = key.fd
                    if fd == out_r:
                        drain(out_r, out)
                    elif fd == err_r:
                        drain(err_r, err)
                    elif fd == res_r:
                        ended = read_results()
                        if ended == "result_too_large":
                            kill_reason = "output"
                        elif ended:
                            return ended, None
                    elif fd == pidfd:
                        _, exit_status = os.waitpid(pid, 0)
                        sel.unregister(pidfd)
                if kill_reason:
                    break
                if out.total + err.total > OUTPUT_CEILING_BYTES + 2 * self.cap:
                    kill_reason = "output"
                    break
                if exit_status is not None:
                    ended = read_results()
                    if ended and ended != "result_too_large":
                        return ended, None
                    drain(out_r, out)
                    drain(err_r, err)
                    break
        finally:
            sel.close()
            os.close(pidfd)
        if exit_status is None:
            _kill_namespace()  # reaps the child as well
        return self._died(start, current, kill_reason, exit_status, oom_before, out, err,
                          time.monotonic() - began)

    def _died(self, start, current, kill_reason, exit_status, oom_before, out, err, elapsed):
        """Record the test the child died in (or every remaining test if it died loading)."""
        exc = None
        if kill_reason == "output":
            verdict = "output_limit"
        elif self.cgroup.oom_kills() > oom_before:  # also when only a forked helper was killed
            verdict = "memory_limit"
        elif kill_reason == "timeout":
            verdict = "timeout"
        elif exit_status is not None and os.WIFSIGNALED(exit_status):
            sig = os.WTERMSIG(exit_status)
            verdict = "timeout" if sig == signal.SIGXCPU else "runtime_error"
            exc = {"type": "Signal", "message": f"killed by {signal.Signals(sig).name}",
                   "line": None}
        else:
            code = os.WEXITSTATUS(exit_status) if exit_status is not None else -1
            if self.job["mode"] == "stdio" and code == 0 and current is not None:
                verdict = self._judge(current, None, None, out.text())  # os._exit(0) after output
            else:
                verdict = "runtime_error"
                exc = {"type": "SystemExit",
                       "message": f"process exited with status {code} before the test finished",
                       "line": None}
        if current is None:  # died while loading: every remaining test shares the outcome
            if self.job["mode"] == "stdio":
                self._record(start, verdict, exc, out, err, elapsed)
                return "died", start
            self._fill_remaining(start, verdict, exc, out, err, elapsed)
            return "load_failed", None
        self._record(current, verdict, exc, out, err, elapsed)
        return "died", current

    def _fill_remaining(self, start, verdict, exc, out, err, elapsed):
        first = True
        for index in range(start, len(self.tests)):
            if first:
                self._record(index, verdict, exc, out, err, elapsed)
                first = False
            else:
                self._record(index, verdict, exc, _Capture(self.cap), _Capture(self.cap), 0.0)
            if self.job.get("stop_on_first_failure"):
                break

    def run(self) -> list[dict]:
        index = 0
        while index < len(self.tests):
            ended, at = self.run_child(index)
            if ended in ("load_failed", "stopped"):
                break
            if self.job["mode"] == "stdio":
                _mount_fresh_tmp(int(self.config["tmp_mb"]), replace=True)  # tests share nothing
                record = self.records.get(index)
                if record is None or record["verdict"] == "syntax_error":
                    break
                if record["verdict"] != "pass" and self.job.get("stop_on_first_failure"):
                    break
                index += 1
                continue
            if ended == "done":
                break
            if self.job.get("stop_on_first_failure"):
                break
            index = at + 1
        return [self.records[i] for i in sorted(self.records)]


def _mount_fresh_tmp(tmp_mb: int, replace: bool) -> None:
    """A new empty tmpfs on /tmp; with `replace`, the current one is dropped first unless the
    last run left it empty (no inode but its root, no block used), which saves two syscalls."""
    if replace:
        usage = os.statvfs("/tmp")
        if usage.f_files - usage.f_ffree <= 1 and usage.f_bfree == usage.f_blocks:
            return
        linux.umount("/tmp")
    linux.mount("tmpfs", "/tmp", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV,
                f"size={tmp_mb}m,nr_inodes=4096,mode=1777")


def _serve(config: dict) -> None:
    cgroup = _Cgroup(config.get("cgroups", {}).get("memory"))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    tmp_mb = int(config["tmp_mb"])
    _mount_fresh_tmp(tmp_mb, replace=False)
    stdout.write(b'{"ready": true}\n')
    stdout.flush()
    while True:
        # Fork ahead: the next job's first child exists (unprivileged, seccomp on) before the
        # job is read, so its memory never held that job's expected outputs.
        spare = _Child(config)
        line = stdin.readline()
        if not line:
            spare.close()
            return
        job = json.loads(line)
        del line  # only the parsed dicts hold expected values (scrubbed in later children)
        memory = int(job["limits"]["memory_mb"]) * 1024 * 1024
        cgroup.set_memory_limit(memory + (tmp_mb + 96) * 1024 * 1024)
        run = _Run(job, config, cgroup, spare)
        del spare
        try:
            records = run.run()  # every child is killed and reaped
        finally:
            if run.spare is not None:
                run.spare.close()
            _kill_namespace()
            _mount_fresh_tmp(tmp_mb, replace=True)  # nothing a run wrote survives it
        del job, run
        stdout.write(json.dumps({"tests": records}).encode() + b"\n")
        stdout.flush()
        del records


def main() -> None:
    if os.getpid() != 1:
        raise SystemExit("sandbox_service.zygote must run as PID 1 of a new PID namespace")
    config = json.loads(sys.argv[1])
    _join_cgroups(config)
    _lock_filesystem()
    _warm_up()
    _serve(config)


if __name__ == "__main__":
    main()
