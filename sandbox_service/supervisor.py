"""Supervision of one jailed child from outside: its output, its results, its clock.

The zygote hands each forked child a job (``child.py`` runs it through ``harness.child_main``) and
watches it here until the tests it was given are judged or it dies:

- stdout and stderr are drained as they arrive into per-test `Capture`s (the first ``cap`` bytes
  kept, every byte counted); past ``OUTPUT_CEILING_BYTES`` in all the child is killed;
- the result fd carries one JSON line per event (``begin`` / ``end`` of a test, ``load_error``),
  each tagged with the job's nonce so a program cannot forge them; a result line longer than
  ``RESULT_LINE_MAX_BYTES`` kills the child;
- each test has its own wall-clock deadline, restarted when the next test begins; the child is
  acknowledged (one byte on its ack pipe) before it may start the next test.

The verdicts themselves come from the zygote's `_Run` (``_judge``, ``_record``, ``_died``).
"""

from __future__ import annotations

import json
import os
import selectors
import time

from sandbox_service import harness, jail

OUTPUT_CEILING_BYTES = 32 * 1024 * 1024  # drained (and counted) past the cap, then killed
RESULT_LINE_MAX_BYTES = harness.MAX_VALUE_CHARS + 1024 * 1024


class Capture:
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


class ChildSupervisor:
    """Watches one child running ``run.tests[start:]`` (one test in stdio mode) until it ends.

    ``run`` is the zygote's `_Run` (job, limits, records, nonce, judge); the fds are the child's
    result, stdout and stderr pipes (read ends) and its ack pipe (write end).
    """

    def __init__(self, run, pid: int, start: int, res_r: int, out_r: int, err_r: int, ack_w: int):
        self.run, self.pid, self.start = run, pid, start
        self.res_r, self.out_r, self.err_r, self.ack_w = res_r, out_r, err_r, ack_w
        self.last = start if run.job["mode"] == "stdio" else len(run.tests) - 1
        self.stop_first = bool(run.job.get("stop_on_first_failure"))
        self.out, self.err = Capture(run.cap), Capture(run.cap)
        self.result_buffer = bytearray()
        self.current: int | None = None  # test index running, None while the module loads
        self.began = time.monotonic()
        self.deadline = self.began + run.timeout_s
        self.kill_reason: str | None = None
        self.exit_status: int | None = None

    def supervise(self) -> tuple[str, int | None]:
        """(how the child ended, the test it died in or None): see `_Run.run_child`."""
        oom_before = self.run.cgroup.oom_kills()
        pidfd = os.pidfd_open(self.pid)
        self.sel = selectors.DefaultSelector()
        for fd in (self.res_r, self.out_r, self.err_r, pidfd):
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ)
        try:
            ended = self._watch(pidfd)
            if ended:
                return ended, None
        finally:
            self.sel.close()
            os.close(pidfd)
        if self.exit_status is None:
            jail.kill_namespace()  # reaps the child as well
        return self.run._died(self.start, self.current, self.kill_reason, self.exit_status, oom_before,
                              self.out, self.err, time.monotonic() - self.began)

    def _watch(self, pidfd: int) -> str | None:
        """The select loop: returns how the tests ended, or None when the child must be recorded
        as dead (``kill_reason`` set, or it exited)."""
        while True:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                self.kill_reason = "timeout"
                return None
            for key, _ in self.sel.select(timeout):
                ended = self._ready(key.fd, pidfd)
                if ended:
                    return ended
            if self.kill_reason:
                return None
            if self.out.total + self.err.total > OUTPUT_CEILING_BYTES + 2 * self.run.cap:
                self.kill_reason = "output"
                return None
            if self.exit_status is not None:
                ended = self._read_results()
                if ended and ended != "result_too_large":
                    return ended
                self._drain(self.out_r, self.out)
                self._drain(self.err_r, self.err)
                return None

    def _ready(self, fd: int, pidfd: int) -> str | None:
        if fd == self.out_r:
            self._drain(self.out_r, self.out)
        elif fd == self.err_r:
            self._drain(self.err_r, self.err)
        elif fd == self.res_r:
            ended = self._read_results()
            if ended == "result_too_large":
                self.kill_reason = "output"
            elif ended:
                return ended
        elif fd == pidfd:
            _, self.exit_status = os.waitpid(self.pid, 0)
            self.sel.unregister(pidfd)
        return None

    def _drain(self, fd: int, capture: Capture) -> None:
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                if fd in self.sel.get_map():
                    self.sel.unregister(fd)
                return
            capture.add(chunk)

    def _read_results(self) -> str | None:
        while True:
            try:
                chunk = os.read(self.res_r, 1 << 16)
            except BlockingIOError:
                return None
            if not chunk:
                if self.res_r in self.sel.get_map():
                    self.sel.unregister(self.res_r)
                return None
            self.result_buffer += chunk
            while b"\n" in self.result_buffer:
                line, _, rest = self.result_buffer.partition(b"\n")
                self.result_buffer = bytearray(rest)
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(event, dict) or event.get("n") != self.run.nonce:
                    continue  # not written by the harness
                ended = self._handle_event(event)
                if ended:
                    return ended
            if len(self.result_buffer) > RESULT_LINE_MAX_BYTES:
                return "result_too_large"

    def _handle_event(self, event: dict) -> str | None:
        kind = event.get("k")
        if kind == "load_error":
            return self._load_failed(event)
        if kind == "begin":
            self.current = int(event["i"])
            self.began = time.monotonic()
            self.deadline = self.began + self.run.timeout_s
            return None
        if kind == "end" and self.current is not None and int(event["i"]) == self.current:
            return self._test_ended(event)
        return None

    def _load_failed(self, event: dict) -> str:
        self._drain(self.out_r, self.out)
        self._drain(self.err_r, self.err)
        exc = event.get("exc")
        if event.get("syntax"):
            verdict = "syntax_error"
        elif exc and exc.get("type") == "MemoryError":
            verdict = "memory_limit"
        else:
            verdict = "runtime_error"
        self.run._fill_remaining(self.start, verdict, exc, self.out, self.err, time.monotonic() - self.began)
        return "load_failed"

    def _test_ended(self, event: dict) -> str | None:
        self._drain(self.out_r, self.out)
        self._drain(self.err_r, self.err)
        exc = event.get("exc")
        value = None if event.get("too_large") else event.get("value")
        verdict = self.run._judge(self.current, exc, value, self.out.text())
        self.run._record(self.current, verdict, exc, self.out, self.err, time.monotonic() - self.began)
        finished, self.current = self.current, None
        self.out, self.err = Capture(self.run.cap), Capture(self.run.cap)
        if self.stop_first and self.run.records[finished]["verdict"] != "pass":
            return "stopped"
        if finished >= self.last:
            return "done"
        self.deadline = time.monotonic() + self.run.timeout_s
        try:
            os.write(self.ack_w, b"g")  # the child may start the next test now
        except OSError:
            pass
        return None
