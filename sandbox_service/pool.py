"""The warm pool: N jailed zygotes, a bounded admission count, and healing on failure.

Each ``Worker`` owns one zygote (``zygote.py``) started under util-linux ``unshare`` in fresh
PID/net/mount/IPC/UTS namespaces, with a scrubbed environment, its own uid (uid_base + index)
and cgroups. Jobs go through one asyncio queue; each worker task takes a job, writes it to its
zygote as one JSON line and reads one JSON line back. A zygote that dies, answers garbage or
misses the outer deadline is killed (its whole namespace with it) and restarted; only that job
gets ``sandbox_error``. Zygotes are also recycled after ``recycle_after`` jobs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import math
import os
import signal
import site
import subprocess
import sys
import time

from sandbox_service import judge
from sandbox_service.cgroups import CgroupTree
from sandbox_service.metrics import ServiceMetrics

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_JAIL_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp",
             "TMPDIR": "/tmp", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
             "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1"}
_UNSHARE = ("unshare", "--pid", "--fork", "--kill-child", "--net", "--mount", "--mount-proc",
            "--ipc", "--uts")
_READ_LIMIT = 256 * 1024 * 1024  # one zygote answer line


@functools.lru_cache(maxsize=None)
def _site_paths(python: str) -> dict:
    """sys.prefix and the site-packages dirs `python` would get from site.py.

    The zygote runs with -S: site.py would also run every .pth file of the environment (an
    editable install's import hook pulls pathlib, urllib and ipaddress into it), and each
    resident page of a zygote costs every fork and exit. Programs still import what is installed.
    """
    if python == sys.executable:
        return {"prefix": sys.prefix, "site_packages": site.getsitepackages()}
    out = subprocess.run([python, "-E", "-s", "-c", "import json, site, sys; print(json.dumps("
                          "{'prefix': sys.prefix, 'site_packages': site.getsitepackages()}))"],
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


@dataclasses.dataclass(frozen=True)
class PoolConfig:
    workers: int = 2
    max_queue: int = 1024          # executions admitted (waiting + running) before 429
    # Jobs per zygote before it is replaced. Its memory is flat between jobs (13.4 -> 13.6 MB over
    # 2,500 jobs), so this only bounds slow drift; a restart costs a new interpreter and jail, ~8%
    # of throughput at 500.
    recycle_after: int = 5000
    tmp_mb: int = 64               # size of each run's /tmp
    uid_base: int = 1_000_000      # worker i runs programs as uid/gid uid_base + i
    python: str = sys.executable
    deadline_slack_s: float = 10.0  # outer deadline = timeout_s * (tests + 1) + slack
    start_timeout_s: float = 60.0


class WorkerFailure(Exception):
    """The zygote failed (died, timed out, or answered garbage): an infrastructure error."""


def sandbox_error_result() -> dict:
    return {"verdict": "sandbox_error", "pass_ratio": 0.0, "tests": []}


def assemble_result(job: dict, records: list[dict]) -> dict:
    verdicts = [r["verdict"] for r in records]
    return {"verdict": judge.overall_verdict(verdicts),
            "pass_ratio": judge.pass_ratio(verdicts, len(job["tests"])), "tests": records}


class Worker:
    """One zygote process (and the namespace it is PID 1 of)."""

    def __init__(self, index: int, config: PoolConfig, cgroups: dict):
        self.index = index
        self.config = config
        self.cgroups = cgroups
        self.proc: asyncio.subprocess.Process | None = None
        self.jobs_done = 0

    async def start(self) -> None:
        zygote_config = {"uid": self.config.uid_base + self.index, "tmp_mb": self.config.tmp_mb,
                         "cgroups": self.cgroups, **_site_paths(self.config.python)}
        self.proc = await asyncio.create_subprocess_exec(
            *_UNSHARE, self.config.python, "-E", "-s", "-S", "-m", "sandbox_service.zygote",
            json.dumps(zygote_config), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=_JAIL_ENV, cwd=_PACKAGE_PARENT,
            start_new_session=True, limit=_READ_LIMIT)
        self.jobs_done = 0
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(),
                                          self.config.start_timeout_s)
        except asyncio.TimeoutError:
            line = b""
        if not line.startswith(b'{"ready"'):
            await self.stop()
            raise WorkerFailure(f"zygote {self.index} did not start")

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # unshare and the zygote (PID 1 of the jail)
        except ProcessLookupError:
            pass
        await proc.wait()

    async def execute(self, job: dict) -> list[dict]:
        """Send one job, return the zygote's test records; raise WorkerFailure on any fault."""
        if self.proc is None or self.proc.returncode is not None:
            raise WorkerFailure("zygote is not running")
        limits = job["limits"]
        deadline = limits["timeout_s"] * (len(job["tests"]) + 1) + self.config.deadline_slack_s
        try:
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), deadline)
            answer = json.loads(line)
            records = answer["tests"]
        except (asyncio.TimeoutError, OSError, ValueError, KeyError, TypeError,
                asyncio.LimitOverrunError) as exc:
            raise WorkerFailure(f"zygote {self.index}: {type(exc).__name__}") from exc
        self.jobs_done += 1
        return records


class WorkerPool:
    """Admission control + queue + worker tasks. Use from one asyncio event loop."""

    def __init__(self, config: PoolConfig, metrics: ServiceMetrics):
        self.config = config
        self.metrics = metrics
        self.queue: asyncio.Queue = asyncio.Queue()
        self.pending = 0  # admitted executions not yet answered
        self.workers: list[Worker] = []
        self.tasks: list[asyncio.Task] = []
        self.cgroup_tree: CgroupTree | None = None
        self._mean_job_s = 0.05

    async def start(self) -> None:
        self.cgroup_tree = CgroupTree()
        self.workers = [Worker(i, self.config, self.cgroup_tree.slot(i))
                        for i in range(self.config.workers)]
        await asyncio.gather(*(w.start() for w in self.workers))
        self.tasks = [asyncio.create_task(self._serve(w)) for w in self.workers]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(w.stop() for w in self.workers), return_exceptions=True)
        if self.cgroup_tree is not None:
            self.cgroup_tree.remove()

    def try_admit(self, count: int) -> bool:
        """Reserve room for `count` executions; False (answer 429) when the queue is full."""
        if self.pending + count > self.config.max_queue:
            return False
        self.pending += count
        self.metrics.queue_depth.set(self.pending)
        return True

    def retry_after_s(self) -> int:
        """Seconds until roughly one queue's worth of work has drained."""
        return max(1, math.ceil(self.pending * self._mean_job_s / max(1, len(self.workers))))

    async def run(self, job: dict) -> dict:
        """Execute one admitted job; always returns a result dict (sandbox_error on faults)."""
        started = time.monotonic()
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((job, future))
        try:
            result = await future
        finally:
            self.pending -= 1
            self.metrics.queue_depth.set(self.pending)
        elapsed = time.monotonic() - started
        self.metrics.latency.observe(elapsed)
        self.metrics.executions.inc()
        self.metrics.verdicts.labels(result["verdict"]).inc()
        if result["verdict"] == "sandbox_error":
            self.metrics.sandbox_errors.inc()
        return result

    async def _restart(self, worker: Worker, reason: str) -> None:
        self.metrics.recycles.labels(reason).inc()
        await worker.stop()
        while True:
            try:
                await worker.start()
                return
            except WorkerFailure:
                await asyncio.sleep(0.5)

    async def _serve(self, worker: Worker) -> None:
        while True:
            job, future = await self.queue.get()
            if future.cancelled():
                continue
            began = time.monotonic()
            try:
                result = assemble_result(job, await worker.execute(job))
            except WorkerFailure:
                result = sandbox_error_result()
                await self._restart(worker, "failure")
            except Exception:  # never let one job take the worker task down
                result = sandbox_error_result()
                await self._restart(worker, "failure")
            if not future.cancelled():
                future.set_result(result)
            self._mean_job_s = 0.9 * self._mean_job_s + 0.1 * (time.monotonic() - began)
            if worker.jobs_done >= self.config.recycle_after:
                await self._restart(worker, "recycle")
