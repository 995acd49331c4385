"""The jailed child: forked by the zygote, made unprivileged before it knows its job.

``Child`` forks a process that takes fds 0-5 (0 /dev/null, 1 stdout pipe, 2 stderr pipe,
3 result pipe, 4 ack pipe, 5 job pipe), starts a new session, sets static rlimits, drops to
the slot's uid/gid with no groups, sets no_new_privs, installs the seccomp filter, and then
waits for one JSON line on fd 5: ``{"job": <inputs only>, "start": int, "nonce": str}``. With
it, it lowers RLIMIT_AS / RLIMIT_CPU, enters /tmp and runs ``harness.child_main``.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource

from sandbox_service import harness, linux, seccomp

NPROC_LIMIT = 64
NOFILE_LIMIT = 64


def drop_privileges(config: dict, pipes: dict) -> None:
    """In a new child, before it knows its job: fds 0-5, session, static rlimits, uid, seccomp.

    fd 0 /dev/null, 1 stdout pipe, 2 stderr pipe, 3 result pipe, 4 ack pipe, 5 job pipe.
    """
    os.setsid()
    sources = {"in": os.open("/dev/null", os.O_RDONLY), **pipes}
    high = {name: fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for name, fd in sources.items()}
    for target, name in enumerate(("in", "out", "err", "res", "ack", "job")):
        os.dup2(high[name], target)
    os.closerange(6, 1 << 16)
    # No file object: a forked child pays a page copy for every page it writes.
    oom_fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
    os.write(oom_fd, b"1000")
    os.close(oom_fd)
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


def apply_job_limits(job: dict) -> None:
    """Once the job is known (unprivileged now, so limits can only be lowered)."""
    limits = job["limits"]
    memory = int(limits["memory_mb"]) * 1024 * 1024
    cpu_s = int(limits["timeout_s"] * (len(job["tests"]) + 1)) + 1
    for which, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu_s)):
        resource.setrlimit(which, (value, value))
    os.chdir("/tmp")  # the run's tmpfs, mounted by the zygote before it sent the job


def receive_job(fd: int) -> dict:
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            os._exit(0)  # the zygote went away or retired this spare
        data += chunk
    os.close(fd)
    return json.loads(data)


class Child:
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
                    scrub_expected(scrub_job)
                drop_privileges(config, {"out": out_w, "err": err_w, "res": res_w,
                                          "ack": ack_r, "job": job_r})
                message = receive_job(5)
                job, start, nonce = message["job"], message["start"], message["nonce"]
                del message
                apply_job_limits(job)
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


def scrub_expected(job: dict) -> dict:
    """In the child's copy of memory: drop every expected output before the program runs.

    The test dicts are shared by every reference the zygote holds (the raw request line is not
    kept), so after this a program searching its objects (gc, frames) finds inputs only.
    """
    for test in job["tests"]:
        test.pop("expected", None)
        test.pop("expected_stdout", None)
    return job
