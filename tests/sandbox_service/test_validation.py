"""Malformed requests → 422 with a message; a full queue → 429 with Retry-After; the token, and
the refusal to serve a non-loopback address without one."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from conftest import REPO, free_port, start_service, stop_service

GOOD = {"code": "x = 1", "mode": "assert", "tests": [{"assert": "assert x"}]}


@pytest.mark.parametrize("change,needle", [
    ({"tests": []}, "tests is empty"),
    ({"mode": "bash"}, "mode"),
    ({"mode": "call", "tests": [{"args": [], "expected": 1}]}, "fn_name"),
    ({"mode": "call", "fn_name": "f", "tests": [{"args": 5, "expected": 1}]}, "args"),
    ({"tests": [{"stdin": "", "expected_stdout": ""}]}, "needs exactly"),
    ({"limits": {"timeout_s": -1}}, "timeout_s"),
    ({"limits": {"memory_mb": -5}}, "memory_mb"),
    ({"limits": {"output_bytes": 0}}, "output_bytes"),
    ({"limits": {"cpu": 3}}, "cpu"),
    ({"code": "x" * (1024 * 1024 + 1)}, "more than the limit"),
    ({"code": "x = '\udc80'"}, "not valid UTF-8"),
    ({"code": None}, "code"),
])
def test_malformed_request_is_422_with_message(http, change, needle):
    body = json.dumps({**GOOD, **change})  # ASCII-escaped, so lone surrogates reach the server
    response = http.post("/v1/execute", content=body,
                         headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert needle in response.json()["detail"]


def test_non_utf8_body_is_422(http):
    body = b'{"code": "x = \xff\xfe", "mode": "assert", "tests": [{"assert": "pass"}]}'
    response = http.post("/v1/execute", content=body,
                         headers={"content-type": "application/json"})
    assert response.status_code == 422 and "UTF-8" in response.json()["detail"]


def test_oversized_body_is_422_before_it_is_read(service):
    # A raw socket: the declared 300 MB are never sent, the answer comes from the headers alone.
    with socket.create_connection(("127.0.0.1", service["port"]), timeout=10) as conn:
        conn.sendall(b"POST /v1/execute HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: 314572800\r\n\r\n{}")
        answer = b""
        while b"larger" not in answer:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 422") and "larger than the limit" in answer


def test_malformed_batch_is_422(http):
    assert http.post("/v1/execute_batch", json={"requests": []}).status_code == 422
    bad = http.post("/v1/execute_batch", json={"requests": [GOOD, {**GOOD, "tests": []}]})
    assert bad.status_code == 422 and "requests.1" in bad.json()["detail"]


def test_full_queue_answers_429_with_retry_after():
    proc, url = start_service("--max-queue", "2", workers=1)
    try:
        slow = {"code": "import time\ntime.sleep(1.5)", "mode": "assert",
                "tests": [{"assert": "pass"}]}
        with httpx.Client(base_url=url, timeout=30) as client, \
                concurrent.futures.ThreadPoolExecutor(4) as threads:
            futures = [threads.submit(client.post, "/v1/execute", json=slow) for _ in range(2)]
            time.sleep(0.5)  # both admitted (one running, one queued)
            refused = client.post("/v1/execute", json=GOOD)
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
            too_big = client.post("/v1/execute_batch", json={"requests": [GOOD]})
            assert too_big.status_code == 429
            assert all(f.result().json()["verdict"] == "pass" for f in futures)
            assert client.post("/v1/execute", json=GOOD).json()["verdict"] == "pass"
    finally:
        stop_service(proc)


def test_bearer_token_guards_routes_but_not_healthz():
    env = {**os.environ, "SANDBOX_TOKEN": "s3cret"}
    proc, url = start_service(workers=1, env=env)
    try:
        assert httpx.get(url + "/healthz").status_code == 200
        assert httpx.post(url + "/v1/execute", json=GOOD).status_code == 401
        wrong = httpx.post(url + "/v1/execute", json=GOOD,
                           headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = httpx.post(url + "/v1/execute", json=GOOD, timeout=30,
                        headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["verdict"] == "pass"
    finally:
        stop_service(proc)


def test_non_loopback_host_without_token_is_refused_and_names_both_ways_out():
    env = {k: v for k, v in os.environ.items() if k != "SANDBOX_TOKEN"}
    refused = subprocess.run(
        [sys.executable, "-m", "sandbox_service", "--host", "0.0.0.0", "--port", str(free_port()),
         "--workers", "1"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "refusing to bind 0.0.0.0 without a token" in refused.stderr
    assert "--token" in refused.stderr and "SANDBOX_TOKEN" in refused.stderr
    assert "--insecure-no-token" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize("way_out", ["token", "insecure"])
def test_non_loopback_host_starts_with_a_token_or_the_explicit_flag(way_out):
    """Both ways out start a working service; it is reached over loopback only."""
    env = {k: v for k, v in os.environ.items() if k != "SANDBOX_TOKEN"}
    extra, headers = ("--host", "0.0.0.0"), {}
    if way_out == "token":
        env["SANDBOX_TOKEN"] = "s3cret"
        headers = {"Authorization": "Bearer s3cret"}
    else:
        extra += ("--insecure-no-token",)
    proc, url = start_service(*extra, workers=1, env=env)
    try:
        ok = httpx.post(url + "/v1/execute", json=GOOD, timeout=30, headers=headers)
        assert ok.status_code == 200 and ok.json()["verdict"] == "pass"
    finally:
        stop_service(proc)
