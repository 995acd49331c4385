"""Worker pool: zygotes are recycled after K jobs without losing or mixing up any request."""

from __future__ import annotations

import concurrent.futures
import os
import re

import httpx

from conftest import start_service, stop_service


def test_zygotes_recycle_after_k_jobs_and_keep_judging():
    proc, url = start_service("--recycle-after", "3", workers=2)
    try:
        def one(i: int) -> str:
            body = {"code": f"def f():\n    return {i}\n", "mode": "call", "fn_name": "f",
                    "tests": [{"args": [], "expected": i}]}
            return httpx.post(url + "/v1/execute", json=body, timeout=60).json()["verdict"]

        with concurrent.futures.ThreadPoolExecutor(4) as threads:
            verdicts = list(threads.map(one, range(20)))
        assert verdicts == ["pass"] * 20
        metrics = httpx.get(url + "/metrics").text
        recycled = re.search(r'sandbox_worker_recycles_total\{reason="recycle"\} ([0-9.]+)', metrics)
        assert recycled and float(recycled.group(1)) >= 5  # 20 jobs / 3 per zygote
        assert httpx.get(url + "/healthz").json()["workers_alive"] == 2
    finally:
        stop_service(proc)


def test_cgroups_are_removed_on_shutdown():
    proc, url = start_service(workers=1)
    base = f"/sys/fs/cgroup/memory/rltf_sandbox_{proc.pid}"
    existed = os.path.isdir(base)
    stop_service(proc)
    assert not os.path.isdir(base)
    if os.path.isdir("/sys/fs/cgroup/memory"):
        assert existed


def test_stale_cgroups_of_killed_services_are_removed_at_start():
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        return
    dead_pid = 4_190_000  # above any pid this test machine hands out
    stale = f"/sys/fs/cgroup/memory/rltf_sandbox_{dead_pid}"
    os.makedirs(os.path.join(stale, "slot0"), exist_ok=True)
    proc, _url = start_service(workers=1)
    try:
        assert not os.path.exists(stale)
    finally:
        stop_service(proc)
