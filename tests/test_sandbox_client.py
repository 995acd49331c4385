"""rltf_jax.sandbox_client against the real service (and tiny local HTTP servers for faults)."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import threading
import time

import psutil
import pytest

from rltf_jax.sandbox_client import (ExceptionInfo, ExecutionRequest, ExecutionResult, Limits,
                                     SandboxClient, SandboxRequestError, local_sandbox)


def _add_request(i: int, expected: int | None = None) -> ExecutionRequest:
    return ExecutionRequest(code=f"def f(x):\n    return x + {i}\n", mode="call", fn_name="f",
                            tests=[{"args": [1], "expected": 1 + i if expected is None
                                    else expected}])


@pytest.fixture(scope="module")
def sandbox_url():
    with local_sandbox(workers=2) as url:
        yield url


def test_execute_returns_typed_result(sandbox_url):
    with SandboxClient(sandbox_url) as client:
        assert client.health()["status"] == "ok"
        request = ExecutionRequest(
            code="def f(xs):\n    total = 0\n    for i in range(4):\n        total += xs[i]\n"
                 "    return total\n",
            mode="call", fn_name="f", limits=Limits(timeout_s=2.0),
            tests=[{"args": [[1, 2, 3, 4]], "expected": 10}, {"args": [[1]], "expected": 1}])
        result = client.execute(request)
    assert isinstance(result, ExecutionResult) and not result.infra_error
    assert result.verdict == "runtime_error" and result.pass_ratio == 0.5
    assert [t.verdict for t in result.tests] == ["pass", "runtime_error"]
    assert result.tests[1].exception == ExceptionInfo("IndexError", "list index out of range", 4)


def test_execute_batch_chunks_and_keeps_order(sandbox_url):
    requests = [_add_request(i, expected=None if i % 4 else -1) for i in range(150)]
    with SandboxClient(sandbox_url, batch_size=16, max_in_flight=3) as client:
        results = client.execute_batch(requests)
    assert len(results) == 150
    assert [r.verdict for r in results] == ["wrong_answer" if i % 4 == 0 else "pass"
                                            for i in range(150)]
    assert client.execute_batch([]) == []


def test_malformed_request_raises_with_message(sandbox_url):
    with SandboxClient(sandbox_url) as client:
        with pytest.raises(SandboxRequestError, match="fn_name"):
            client.execute(ExecutionRequest(code="x=1", mode="call", tests=[{"args": [],
                                                                            "expected": 1}]))


def test_unreachable_service_gives_sandbox_error_not_exception():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # nothing listens once closed
    client = SandboxClient(f"http://127.0.0.1:{dead_port}", max_retries=2, backoff_s=0.01,
                           down_s=0.01, timeout_s=5)
    started = time.monotonic()
    results = client.execute_batch([_add_request(i) for i in range(3)])
    assert [r.verdict for r in results] == ["sandbox_error"] * 3
    assert all(r.infra_error for r in results)
    assert time.monotonic() - started < 5
    assert client.health()["status"] == "down"


class _ScriptedHandler(http.server.BaseHTTPRequestHandler):
    """Answers POSTs from a script of (status, headers, body) and records the arrival times."""

    script: list = []
    arrivals: list = []

    def do_POST(self):  # noqa: N802 (http.server naming)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).arrivals.append(time.monotonic())
        status, headers, body = type(self).script.pop(0) if type(self).script else (503, {}, {})
        data = json.dumps(body).encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 -- /healthz, so a replica marked down can come back
        data = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted_server():
    handler = type("Handler", (_ScriptedHandler,), {"script": [], "arrivals": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


OK_BODY = {"verdict": "pass", "pass_ratio": 1.0, "tests": [
    {"verdict": "pass", "exception": None, "stdout": "", "stderr": "", "truncated": False,
     "time_s": 0.001, "stdout_bytes": 0, "stderr_bytes": 0}]}


def test_retries_honour_retry_after_on_429(scripted_server):
    handler, url = scripted_server
    handler.script = [(429, {"Retry-After": "1"}, {"detail": "full"}), (200, {}, OK_BODY)]
    with SandboxClient(url, backoff_s=0.01) as client:
        result = client.execute(_add_request(0))
    assert result.verdict == "pass"
    assert len(handler.arrivals) == 2
    assert handler.arrivals[1] - handler.arrivals[0] >= 0.95  # waited for Retry-After


def test_retries_5xx_with_backoff_then_sandbox_error(scripted_server):
    handler, url = scripted_server
    handler.script = [(500, {}, {})] * 10
    with SandboxClient(url, max_retries=3, backoff_s=0.05, down_s=0.0) as client:
        result = client.execute(_add_request(0))
    assert result.infra_error and result.tests == ()
    assert len(handler.arrivals) == 4  # first try + 3 retries
    gaps = [b - a for a, b in zip(handler.arrivals, handler.arrivals[1:])]
    assert gaps[2] > gaps[0]  # exponential


def test_5xx_then_success(scripted_server):
    handler, url = scripted_server
    handler.script = [(503, {}, {}), (502, {}, {}), (200, {}, {"results": [OK_BODY, OK_BODY]})]
    with SandboxClient(url, backoff_s=0.01, down_s=0.0) as client:
        results = client.execute_batch([_add_request(0), _add_request(1)])
    assert [r.verdict for r in results] == ["pass", "pass"]


def test_real_429_from_small_queue_is_retried_to_completion():
    with local_sandbox(workers=1, extra_args=["--max-queue", "2"]) as url:
        slow = [ExecutionRequest(code="import time\ntime.sleep(0.2)\ndef f(x):\n    return x\n",
                                 mode="call", fn_name="f", tests=[{"args": [i], "expected": i}])
                for i in range(8)]
        with SandboxClient(url, batch_size=1, max_in_flight=6, backoff_s=0.05,
                           max_retries=20) as client:
            results = client.execute_batch(slow)
            metrics = client._http.get(url + "/metrics").text
    assert [r.verdict for r in results] == ["pass"] * 8
    rejected = [line for line in metrics.splitlines() if line.startswith("sandbox_rejected_total")]
    assert float(rejected[0].split()[-1]) > 0  # the queue really said 429


def _service_pid(port: int) -> int:
    for child in psutil.Process().children(recursive=True):
        try:
            if str(port) in child.cmdline() and "sandbox_service" in child.cmdline():
                return child.pid
        except psutil.Error:
            continue
    raise LookupError(port)


def test_three_replicas_one_killed_mid_run_loses_nothing():
    with local_sandbox(workers=1) as a, local_sandbox(workers=1) as b, \
            local_sandbox(workers=1) as c:
        requests = [ExecutionRequest(code=f"import time\ntime.sleep(0.01)\ndef f():\n    return {i}\n",
                                     mode="call", fn_name="f",
                                     tests=[{"args": [], "expected": i}]) for i in range(240)]
        client = SandboxClient([a, b, c], batch_size=8, max_in_flight=3, backoff_s=0.05,
                               down_s=0.5)
        victim = _service_pid(int(b.rsplit(":", 1)[1]))
        killer = threading.Timer(1.0, os.kill, (victim, signal.SIGKILL))
        killer.start()
        started = time.monotonic()
        results = client.execute_batch(requests)
        killer.join()
        elapsed = time.monotonic() - started
        health = client.health()
        client.close()
    assert len(results) == 240
    assert [r.verdict for r in results] == ["pass"] * 240  # none lost, none mixed up
    assert health["replicas"][b]["status"] == "down"
    assert health["replicas"][a]["status"] == "ok" and health["replicas"][c]["status"] == "ok"
    assert elapsed > 1.0  # the kill happened during the run
    assert client.replicas[1].failures >= 1
