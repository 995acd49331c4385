"""Starts the real sandbox service (python -m sandbox_service) on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(*extra: str, workers: int = 2, env: dict | None = None):
    """Start the service as a child process; returns (process, base URL) once /healthz is ok."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox_service", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), *extra],
        cwd=REPO, env=env if env is not None else os.environ.copy(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("service did not become healthy within 60 s")


def stop_service(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


SECRET_ENV = "RLTF_SANDBOX_CANARY"
SECRET_VALUE = "canary-7f3a9c1e5b"


@pytest.fixture(scope="session")
def service():
    # A uid range of its own (other services may run on this machine at the same time), and a
    # secret in the service's own environment that no program may ever see.
    uid_base = 3_000_000 + (os.getpid() % 100_000) * 16
    proc, url = start_service("--uid-base", str(uid_base), workers=2,
                              env={**os.environ, SECRET_ENV: SECRET_VALUE})
    yield {"url": url, "pid": proc.pid, "port": int(url.rsplit(":", 1)[1]), "uid_base": uid_base}
    stop_service(proc)


@pytest.fixture(scope="session")
def http(service):
    with httpx.Client(base_url=service["url"], timeout=120) as client:
        yield client


@pytest.fixture
def run(http):
    """run(code, mode, tests, fn_name=None, **fields) -> response JSON (asserts HTTP 200)."""

    def _run(code: str, mode: str, tests: list, fn_name: str | None = None, **fields) -> dict:
        body = {"code": code, "mode": mode, "tests": tests, "fn_name": fn_name, **fields}
        response = http.post("/v1/execute", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    return _run


def assert_service_judges_correctly(run) -> None:
    """The service is healthy and judges the next request right."""
    ok = run("def add(a, b):\n    return a + b\n", "call",
             [{"args": [2, 3], "expected": 5}, {"args": [1, 1], "expected": 3}], fn_name="add")
    assert [t["verdict"] for t in ok["tests"]] == ["pass", "wrong_answer"], ok
