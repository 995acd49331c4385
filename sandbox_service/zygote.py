"""The jailed fork server: PID 1 of its own PID/net/mount/IPC/UTS namespaces.

Started by ``pool.py`` as ``unshare --pid --fork --kill-child --net --mount --mount-proc --ipc
--uts python -E -s -m sandbox_service.zygote CONFIG_JSON`` with a scrubbed environment. At start
it joins its cgroups and locks the filesystem (``jail.py``). Then, per job read from stdin (one
JSON line), it:

  1. hands the job's inputs to a child forked ahead of time (``child.py``: unprivileged uid, no
     capabilities, no_new_privs, seccomp, rlimits, new session) that runs ``harness.child_main``;
  2. supervises it from outside (``supervisor.py``): drains stdout/stderr concurrently with
     caps, reads the nonce-tagged result fd, enforces each test's wall timeout, and judges each
     test (``judge.py``) on JSON data; a child that dies mid-test is replaced to continue with
     the next test;
  3. kills every other process of the namespace (``kill(-1, SIGKILL)`` from PID 1) and gives
     /tmp a fresh size-limited tmpfs (the only writable place; nothing survives a run).
It answers with one JSON line ``{"tests": [TestRecord, ...]}`` on stdout.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import site
import sys

from sandbox_service import harness, jail, judge
from sandbox_service.child import Child
from sandbox_service.supervisor import Capture, ChildSupervisor

# Modules a typical solution imports, loaded once here so each forked child has them warm. Only
# light ones: every resident page of the zygote is mapped into each child at fork and torn down at
# its exit, so a module that most programs never import (hashlib with OpenSSL: 3.7 MB; decimal,
# statistics, datetime, dataclasses: 2.3 MB) costs every execution more than it saves the few
# programs that import it themselves.
_WARM_MODULES = ("collections", "itertools", "functools", "math", "heapq", "bisect", "re",
                 "string", "typing", "random", "copy", "operator", "array", "enum")


def _warm_up() -> None:
    for name in _WARM_MODULES:
        try:
            __import__(name)
        except ImportError:
            pass
    # The first compile() of a source string in a process creates the ~120 classes of the _ast
    # module (PyAST_Check -> init_types): a fifth of a HumanEval execution's CPU when every
    # forked child did it again. Done here once, children inherit them.
    compile("0", "<warm-up>", "eval", dont_inherit=True)


class _Run:
    """State of one job: records per test, the current child, clocks and captures."""

    def __init__(self, job: dict, config: dict, cgroup: jail.Cgroup, spare: Child | None = None):
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
        self.nonce = os.urandom(16).hex()

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

    def _record(self, index: int, verdict: str, exc: dict | None, out: Capture,
                err: Capture, time_s: float) -> None:
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
            child = Child(self.config, scrub_job=self.job)
        message = {"job": self.child_job, "start": start, "nonce": self.nonce}
        child.send(json.dumps(message).encode() + b"\n")
        try:
            return ChildSupervisor(self, child.pid, start, child.res_r, child.out_r, child.err_r,
                                   child.ack_w).supervise()
        finally:
            jail.kill_namespace()
            child.close()

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
                self._record(index, verdict, exc, Capture(self.cap), Capture(self.cap), 0.0)
            if self.job.get("stop_on_first_failure"):
                break

    def run(self) -> list[dict]:
        index = 0
        while index < len(self.tests):
            ended, at = self.run_child(index)
            if ended in ("load_failed", "stopped"):
                break
            if self.job["mode"] == "stdio":
                jail.mount_fresh_tmp(int(self.config["tmp_mb"]), replace=True)  # tests share nothing
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


def _serve(config: dict) -> None:
    cgroup = jail.Cgroup(config.get("cgroups", {}).get("memory"))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    tmp_mb = int(config["tmp_mb"])
    jail.mount_fresh_tmp(tmp_mb, replace=False)
    stdout.write(b'{"ready": true}\n')
    stdout.flush()
    while True:
        # Fork ahead: the next job's first child exists (unprivileged, seccomp on) before the
        # job is read, so its memory never held that job's expected outputs.
        spare = Child(config)
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
            # Answer first: the judged records are final, and the clean-up below then overlaps
            # with the service's turnaround instead of adding to every request's latency.
            stdout.write(json.dumps({"tests": records}).encode() + b"\n")
            stdout.flush()
        finally:
            if run.spare is not None:
                run.spare.close()
            # Before the next job is read (and before the next spare child is forked): no process
            # of this run survives, and nothing it wrote to /tmp does.
            jail.kill_namespace()
            jail.mount_fresh_tmp(tmp_mb, replace=True)
        del job, run, records


def main() -> None:
    if os.getpid() != 1:
        raise SystemExit("sandbox_service.zygote must run as PID 1 of a new PID namespace")
    config = json.loads(sys.argv[1])
    # Started with -S (see pool._site_paths): what site.py would have set, without its .pth files:
    # the prefix, site-packages on the path, and the builtins it adds (exit, quit, help, ...),
    # which model-written programs do call.
    sys.prefix = config.get("prefix", sys.prefix)
    sys.path.extend(p for p in config.get("site_packages", ()) if p not in sys.path)
    site.setquit()
    site.setcopyright()
    site.sethelper()
    harness.snapshot_runtime()
    jail.join_cgroups(config)
    jail.lock_filesystem()
    _warm_up()
    gc.freeze()
    _serve(config)


if __name__ == "__main__":
    main()
