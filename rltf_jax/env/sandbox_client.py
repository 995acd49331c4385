"""Client of the sandbox service (v1 HTTP contract): typed results, batching, retries, replicas.

The trainer's only way to run programs. A request that still fails after the retries (service
unreachable, 5xx, 429 past the deadline) comes back as an ``ExecutionResult`` with verdict
``sandbox_error`` (``.infra_error`` is True): never raised, never dropped, never blamed on the
program. A malformed request (HTTP 422) is a caller bug and raises ``SandboxRequestError``.

Several service URLs may be given: each chunk of work goes to the healthy replica with the
fewest chunks in flight (round-robin among equals); a replica that fails (connection error,
5xx) is taken out for ``down_s`` seconds and comes back after a successful ``/healthz``. A
chunk that failed on one replica is re-sent whole, so every request gets exactly one result.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Iterator, Sequence

import httpx

VERDICTS = ("pass", "wrong_answer", "runtime_error", "syntax_error", "timeout", "memory_limit",
            "output_limit", "sandbox_error")


class SandboxRequestError(ValueError):
    """The service rejected a request as malformed (HTTP 422); the message says why."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-test limits: wall seconds, address-space MiB, bytes per output stream."""

    timeout_s: float = 4.0
    memory_mb: int = 512
    output_bytes: int = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ExceptionInfo:
    type: str
    message: str
    line: int | None  # 1-based in the submitted code; None when no line of it is at fault


@dataclasses.dataclass(frozen=True)
class TestOutcome:
    verdict: str
    exception: ExceptionInfo | None
    stdout: str
    stderr: str
    truncated: bool
    time_s: float
    stdout_bytes: int = 0  # bytes the program wrote (stdout is cut to limits.output_bytes)
    stderr_bytes: int = 0

    __test__ = False  # not a pytest class


@dataclasses.dataclass(frozen=True)
class ExecutionResult:
    verdict: str
    pass_ratio: float
    tests: tuple[TestOutcome, ...]

    @property
    def infra_error(self) -> bool:
        """True when the service failed (retry or drop the sample; never a program failure)."""
        return self.verdict == "sandbox_error"

    @classmethod
    def from_json(cls, data: dict) -> "ExecutionResult":
        tests = tuple(
            TestOutcome(verdict=t["verdict"],
                        exception=ExceptionInfo(**t["exception"]) if t.get("exception") else None,
                        stdout=t.get("stdout", ""), stderr=t.get("stderr", ""),
                        truncated=bool(t.get("truncated", False)),
                        time_s=float(t.get("time_s", 0.0)),
                        stdout_bytes=int(t.get("stdout_bytes", 0)),
                        stderr_bytes=int(t.get("stderr_bytes", 0)))
            for t in data.get("tests", ()))
        return cls(verdict=data["verdict"], pass_ratio=float(data["pass_ratio"]), tests=tests)


SANDBOX_ERROR = ExecutionResult(verdict="sandbox_error", pass_ratio=0.0, tests=())


@dataclasses.dataclass(frozen=True)
class ExecutionRequest:
    code: str
    mode: str  # "stdio" | "call" | "assert"
    tests: Sequence[dict]
    fn_name: str | None = None
    limits: Limits | dict | None = None
    stop_on_first_failure: bool = False

    def to_json(self) -> dict:
        body: dict[str, Any] = {"code": self.code, "mode": self.mode, "tests": list(self.tests),
                                "fn_name": self.fn_name,
                                "stop_on_first_failure": self.stop_on_first_failure}
        if self.limits is not None:
            body["limits"] = (dataclasses.asdict(self.limits)
                              if isinstance(self.limits, Limits) else dict(self.limits))
        return body

    def worst_case_s(self) -> float:
        """Longest the service may take on this request (every test timing out)."""
        limits = self.limits or Limits()
        timeout = limits.timeout_s if isinstance(limits, Limits) else limits.get("timeout_s", 4.0)
        return float(timeout) * (len(self.tests) + 1)


@dataclasses.dataclass
class _Replica:
    url: str
    healthy: bool = True
    down_until: float = 0.0
    in_flight: int = 0
    failures: int = 0


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after_s: float | None = None,
                 replica_fault: bool = True):
        super().__init__(reason)
        self.retry_after_s = retry_after_s
        self.replica_fault = replica_fault


class SandboxClient:
    """Thread-safe client over one or several sandbox service replicas."""

    def __init__(self, urls: str | Sequence[str], *, token: str | None = None,
                 timeout_s: float = 300.0, max_retries: int = 6, backoff_s: float = 0.2,
                 max_backoff_s: float = 10.0, batch_size: int = 64, max_in_flight: int = 4,
                 down_s: float = 2.0):
        """
        Args:
          urls: base URL(s) of the service, e.g. "http://127.0.0.1:8080".
          token: bearer token, if the service was started with --token.
          timeout_s: deadline per chunk of requests (all attempts together), extended by the
            sum of the chunk's worst-case run times; past it the chunk's results are
            sandbox_error.
          max_retries: attempts after the first, on connection errors, 5xx and 429.
          backoff_s / max_backoff_s: exponential backoff base and cap (Retry-After wins).
          batch_size: requests per /v1/execute_batch call.
          max_in_flight: chunks sent at once (across replicas).
          down_s: how long a failed replica is left out before a health check.
        """
        urls = [urls] if isinstance(urls, str) else list(urls)
        if not urls:
            raise ValueError("SandboxClient needs at least one URL")
        if batch_size < 1 or max_in_flight < 1 or max_retries < 0:
            raise ValueError("batch_size and max_in_flight must be >= 1, max_retries >= 0")
        self.replicas = [_Replica(url.rstrip("/")) for url in urls]
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.down_s = down_s
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(headers=headers, timeout=timeout_s,
                                  limits=httpx.Limits(max_connections=4 * max_in_flight + 4))
        self._lock = threading.Lock()
        self._round_robin = itertools.count()

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "SandboxClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- public API --------------------------------------------------------------------------
    def health(self) -> dict:
        """{"status": "ok" if any replica answers, else "down", "replicas": {url: /healthz}}."""
        replicas = {}
        for replica in self.replicas:
            try:
                response = self._http.get(replica.url + "/healthz", timeout=5.0)
                response.raise_for_status()
                replicas[replica.url] = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                replicas[replica.url] = {"status": "down", "error": type(exc).__name__}
        ok = any(h.get("status") == "ok" for h in replicas.values())
        return {"status": "ok" if ok else "down", "replicas": replicas}

    def execute(self, request: ExecutionRequest) -> ExecutionResult:
        return self._send_chunk("/v1/execute", [request])[0]

    def execute_batch(self, requests: Sequence[ExecutionRequest]) -> list[ExecutionResult]:
        """Results in request order; chunks of `batch_size` run `max_in_flight` at a time."""
        requests = list(requests)
        chunks = [requests[i:i + self.batch_size]
                  for i in range(0, len(requests), self.batch_size)]
        if len(chunks) <= 1:
            return self._send_chunk("/v1/execute_batch", chunks[0]) if chunks else []
        with concurrent.futures.ThreadPoolExecutor(self.max_in_flight) as pool:
            parts = list(pool.map(lambda c: self._send_chunk("/v1/execute_batch", c), chunks))
        return [result for part in parts for result in part]

    # -- replicas ----------------------------------------------------------------------------
    def _probe(self, replica: _Replica) -> bool:
        try:
            ok = self._http.get(replica.url + "/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            ok = False
        with self._lock:
            replica.healthy = ok
            replica.down_until = 0.0 if ok else time.monotonic() + self.down_s
        return ok

    def _pick(self) -> _Replica | None:
        """The healthy replica with the fewest chunks in flight; probes ones due back."""
        now = time.monotonic()
        for replica in self.replicas:
            if not replica.healthy and replica.down_until <= now:
                self._probe(replica)
        with self._lock:
            healthy = [r for r in self.replicas if r.healthy]
            if not healthy:
                return None
            turn = next(self._round_robin)
            ordered = healthy[turn % len(healthy):] + healthy[:turn % len(healthy)]
            replica = min(ordered, key=lambda r: r.in_flight)
            replica.in_flight += 1
            return replica

    def _release(self, replica: _Replica, failed: bool) -> None:
        with self._lock:
            replica.in_flight -= 1
            if failed:
                replica.failures += 1
                replica.healthy = False
                replica.down_until = time.monotonic() + self.down_s

    # -- one chunk, with retries ---------------------------------------------------------------
    def _post(self, replica: _Replica, route: str, chunk: list[ExecutionRequest],
              timeout: float) -> list[ExecutionResult]:
        if route == "/v1/execute":
            body: dict = chunk[0].to_json()
        else:
            body = {"requests": [r.to_json() for r in chunk]}
        try:
            response = self._http.post(replica.url + route, json=body, timeout=timeout)
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__} from {replica.url}") from exc
        if response.status_code == 429:
            retry_after = response.headers.get("Retry-After")
            try:
                wait = float(retry_after) if retry_after is not None else None
            except ValueError:
                wait = None
            raise _Retryable("429 queue full", retry_after_s=wait, replica_fault=False)
        if response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code} from {replica.url}")
        if response.status_code == 422:
            raise SandboxRequestError(response.json().get("detail", response.text))
        response.raise_for_status()
        data = response.json()
        items = [data] if route == "/v1/execute" else data["results"]
        if len(items) != len(chunk):
            raise _Retryable(f"{len(items)} results for {len(chunk)} requests")
        return [ExecutionResult.from_json(item) for item in items]

    def _send_chunk(self, route: str, chunk: list[ExecutionRequest]) -> list[ExecutionResult]:
        # Requests of a chunk may run one after another on a single worker, so the budget is the
        # sum of their worst cases (the service bounds each job itself) plus timeout_s.
        budget = self.timeout_s + sum(r.worst_case_s() for r in chunk)
        deadline = time.monotonic() + budget
        for attempt in range(self.max_retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            replica = self._pick()
            if replica is None:
                wait = min(self.max_backoff_s, self.backoff_s * 2 ** attempt, remaining)
                time.sleep(max(wait, 0.0))
                continue
            try:
                results = self._post(replica, route, chunk, timeout=remaining)
            except _Retryable as retry:
                self._release(replica, failed=retry.replica_fault)
                wait = self.backoff_s * 2 ** attempt
                if retry.retry_after_s is not None:
                    wait = max(wait, retry.retry_after_s)
                wait = min(wait, self.max_backoff_s, max(deadline - time.monotonic(), 0.0))
                if attempt < self.max_retries:
                    time.sleep(wait)
                continue
            except BaseException:
                self._release(replica, failed=False)
                raise
            self._release(replica, failed=False)
            return results
        return [SANDBOX_ERROR] * len(chunk)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_sandbox(workers: int | None = None, port: int | None = None, *,
                  extra_args: Sequence[str] = (), start_timeout_s: float = 60.0) -> Iterator[str]:
    """Run ``python -m sandbox_service`` on 127.0.0.1 as a child process; yields its URL.

    Waits until /healthz answers; stops the service (and with it every jail) on exit.
    """
    port = port or _free_port()
    command = [sys.executable, "-m", "sandbox_service", "--host", "127.0.0.1",
               "--port", str(port), *extra_args]
    if workers is not None:
        command += ["--workers", str(workers)]
    log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty service never blocks
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError("sandbox service exited during start: "
                                   + log.read().decode(errors="replace")[-2000:])
            try:
                if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"sandbox service not healthy after {start_timeout_s} s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
