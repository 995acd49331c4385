"""Hostile programs: each is contained, judged, and the service stays healthy afterwards.

Every probe is bounded in itself (a fork bomb that stops after a few thousand attempts, memory
bombs of a few GB), so a broken jail cannot take the machine down. Network probes only target
127.0.0.1.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import SECRET_VALUE, assert_service_judges_correctly

FAST = {"timeout_s": 2.0, "memory_mb": 512, "output_bytes": 4096}
def _leftover_jailed_processes(uid_base: int) -> list[str]:
    """Processes running as this service's sandbox uids beyond each worker's waiting spare."""
    out = subprocess.run(["ps", "-eo", "uid=,pid=,comm="], capture_output=True, text=True).stdout
    jailed = [line for line in out.splitlines()
              if uid_base <= int(line.split()[0]) < uid_base + 16]
    per_uid: dict[str, list[str]] = {}
    for line in jailed:
        per_uid.setdefault(line.split()[0], []).append(line)
    return [line for lines in per_uid.values() if len(lines) > 1 for line in lines]


@pytest.fixture
def hostile(run, http, service):
    """Runs a probe, then checks the service is healthy and judges the next request right."""

    def _hostile(code, test="pass", mode="assert", limits=FAST, **fields):
        result = run(code, mode, [{"assert": test}] if mode == "assert" else test,
                     limits=limits, **fields)
        assert http.get("/healthz").json()["workers_alive"] == 2
        assert_service_judges_correctly(run)
        assert _leftover_jailed_processes(service["uid_base"]) == []
        return result

    return _hostile


def test_fork_bomb_is_capped(hostile):
    code = ("import os, time\n"
            "forks = 0\n"
            "for _ in range(3000):\n"
            "    try:\n"
            "        pid = os.fork()\n"
            "    except OSError:\n"
            "        break\n"
            "    if pid == 0:\n"
            "        time.sleep(60)\n"
            "        os._exit(0)\n"
            "    forks += 1\n")
    result = hostile(code, "assert forks < 128, forks")
    assert result["verdict"] == "pass", result  # fork failed long before 3000 (NPROC / pids)


def test_thread_bomb_is_capped(hostile):
    code = ("import threading, time\n"
            "threads = 0\n"
            "for _ in range(3000):\n"
            "    try:\n"
            "        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
            "    except RuntimeError:\n"
            "        break\n"
            "    threads += 1\n")
    result = hostile(code, "assert threads < 128, threads")
    assert result["verdict"] == "pass", result


def test_memory_bomb_slow_growth(hostile):
    code = ("chunks = []\n"
            "for _ in range(400):\n"  # at most 4 GB
            "    chunks.append(bytearray(10 * 1024 * 1024))\n")
    result = hostile(code, limits={**FAST, "memory_mb": 256})
    assert result["verdict"] == "memory_limit", result
    assert result["tests"][0]["exception"]["line"] == 3


def test_memory_bomb_across_processes_hits_the_cgroup(hostile):
    code = ("import os, time\n"
            "for _ in range(8):\n"  # 8 x 400 MB, each under RLIMIT_AS, together over the cgroup
            "    if os.fork() == 0:\n"
            "        block = bytearray(400 * 1024 * 1024)\n"
            "        time.sleep(30)\n"
            "        os._exit(0)\n"
            "time.sleep(30)\n")
    result = hostile(code, limits={**FAST, "timeout_s": 5.0})
    assert result["verdict"] in ("memory_limit", "timeout"), result
    if os.path.isdir("/sys/fs/cgroup/memory"):
        assert result["verdict"] == "memory_limit", result


def test_busy_loop_ignoring_signals_times_out(hostile):
    code = ("import signal\n"
            "signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "signal.alarm(0)\n"
            "while True:\n"
            "    pass\n")
    started = time.monotonic()
    result = hostile(code, limits={**FAST, "timeout_s": 1.0})
    assert result["verdict"] == "timeout"
    assert 0.9 < result["tests"][0]["time_s"] < 1.5
    assert time.monotonic() - started < 10


def test_sleeping_forever_times_out(hostile):
    result = hostile("import time\ntime.sleep(10 ** 9)", limits={**FAST, "timeout_s": 0.5})
    assert result["verdict"] == "timeout"


def test_network_is_dead_even_to_host_loopback(hostile, service):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    try:
        ports = [service["port"], listener.getsockname()[1]]
        code = ("import socket\n"
                "results = []\n"
                f"for port in {ports}:\n"
                "    s = socket.socket()\n"
                "    s.settimeout(1)\n"
                "    try:\n"
                "        s.connect(('127.0.0.1', port))\n"
                "        results.append('connected')\n"
                "    except OSError as e:\n"
                "        results.append(type(e).__name__)\n"
                "print(results)\n")
        result = hostile(code, "assert 'connected' not in results, results")
        assert result["verdict"] == "pass", result
        with pytest.raises(socket.timeout):
            listener.accept()  # nothing ever reached the host's listener
    finally:
        listener.close()


def test_filesystem_is_read_only_outside_tmp(hostile):
    code = ("import os\n"
            "denied = []\n"
            f"for path in ['/etc/rltf_probe', '/usr/rltf_probe', {os.getcwd()!r} + '/rltf_probe',\n"
            "             '/var/tmp/rltf_probe', '/dev/shm/rltf_probe', '/rltf_probe']:\n"
            "    try:\n"
            "        open(path, 'w').write('x')\n"
            "    except OSError:\n"
            "        denied.append(path)\n"
            "open('/tmp/ok', 'w').write('tmp is writable')\n"
            "try:\n"
            "    open('/etc/shadow').read()\n"
            "    shadow = 'read'\n"
            "except OSError:\n"
            "    shadow = 'denied'\n")
    result = hostile(code, "assert len(denied) == 6 and shadow == 'denied', (denied, shadow)")
    assert result["verdict"] == "pass", result
    assert not os.path.exists(os.path.join(os.getcwd(), "rltf_probe"))


def test_tmp_size_is_limited(hostile):
    code = ("written = 0\n"
            "try:\n"
            "    with open('/tmp/big', 'wb') as f:\n"
            "        for _ in range(1024):\n"  # at most 1 GB
            "            f.write(b'x' * 1024 * 1024)\n"
            "            written += 1\n"
            "except OSError:\n"
            "    pass\n")
    result = hostile(code, "assert written < 1024, written")
    assert result["verdict"] == "pass", result


def test_no_secrets_from_service_environment(hostile):
    code = ("import os\n"
            "found = [k for k, v in os.environ.items() if 'canary' in v]\n"
            "for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
            "    try:\n"
            "        if b'canary' in open(f'/proc/{pid}/environ', 'rb').read():\n"
            "            found.append(pid)\n"
            "    except OSError:\n"
            "        pass\n")
    result = hostile(code, "assert not found, found")
    assert result["verdict"] == "pass", result
    assert SECRET_VALUE not in str(result)


def test_proc_1_is_the_jail_init_not_the_host(hostile, service):
    code = ("import os\n"
            "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
            "try:\n"
            "    environ = open('/proc/1/environ').read()\n"
            "except OSError as e:\n"
            "    environ = type(e).__name__\n")
    test = (f"assert {service['pid']} not in pids or len(pids) < 5, pids\n"
            "assert len(pids) < 5, pids\n"
            "assert environ == 'PermissionError', environ\n")
    assert hostile(code, test)["verdict"] == "pass"


def test_files_do_not_survive_between_runs(run, hostile):
    writer = ("import os\n"
              "seen = os.path.exists('/tmp/leak')\n"
              "open('/tmp/leak', 'w').write('secret')\n")
    for _ in range(4):  # enough runs to hit both workers more than once
        result = hostile(writer, "assert not seen")
        assert result["verdict"] == "pass", result


@pytest.mark.parametrize("code,stream", [
    ("print('x' * 10 ** 7)", "stdout"),
    ("import sys\nsys.stderr.write('e' * 10 ** 7)", "stderr"),
    ("import sys\nsys.stdout.write('y' * 5 * 10 ** 6)", "stdout"),  # one line, no newline
])
def test_huge_output_is_capped(hostile, code, stream):
    result = hostile(code)
    test = result["tests"][0]
    assert test["verdict"] == "output_limit" and test["truncated"]
    assert len(test[stream]) == FAST["output_bytes"]
    assert test[f"{stream}_bytes"] >= 5 * 10 ** 6


def test_endless_print_loop_is_stopped(hostile):
    code = ("for i in range(10 ** 8):\n"  # bounded: ~1 GB if nothing stops it
            "    print('spam line', i)\n")
    started = time.monotonic()
    result = hostile(code, limits={**FAST, "timeout_s": 20.0})
    assert result["verdict"] == "output_limit"
    assert time.monotonic() - started < 15  # killed at the drain ceiling, not at the timeout


def test_killing_parent_and_group_only_kills_the_program(hostile):
    parent = hostile("import os\nos.kill(os.getppid(), 9)")
    assert parent["verdict"] == "runtime_error"
    assert parent["tests"][0]["exception"]["type"] == "PermissionError"
    group = hostile("import os\nos.killpg(0, 9)")
    assert group["verdict"] == "runtime_error"
    assert "SIGKILL" in group["tests"][0]["exception"]["message"]


def test_kill_all_only_inside_its_own_pid_namespace(hostile, service):
    probe = hostile("import os\npids = [p for p in os.listdir('/proc') if p.isdigit()]",
                    f"assert '{service['pid']}' not in pids and len(pids) < 5, pids")
    assert probe["verdict"] == "pass"  # the guard: its own PID namespace, no host processes
    result = hostile("import os\nos.kill(-1, 9)")
    assert result["verdict"] == "runtime_error"


def test_cannot_regain_privileges(hostile):
    code = ("import os\n"
            "attempts = []\n"
            "for call in (lambda: os.setuid(0), lambda: os.chroot('/tmp'),\n"
            "             lambda: os.setgid(0)):\n"
            "    try:\n"
            "        call()\n"
            "        attempts.append('allowed')\n"
            "    except OSError:\n"
            "        attempts.append('denied')\n")
    result = hostile(code, "assert attempts == ['denied'] * 3, attempts")
    assert result["verdict"] == "pass", result


# -- reward hacks ------------------------------------------------------------------------------

ADD_TESTS = [{"args": [1, 2], "expected": 3}, {"args": [2, 2], "expected": 4}]


@pytest.mark.parametrize("code", [
    "print('PASS')\nprint('All tests passed')\nimport sys\nsys.exit(0)\n",
    "import os\nos._exit(0)\n",
    "import os\ndef add(a, b):\n    os._exit(0)\n",
    "import sys\ndef add(a, b):\n    sys.exit(0)\n",
])
def test_exiting_early_never_passes(hostile, code):
    result = hostile(code, ADD_TESTS, mode="call", fn_name="add")
    assert result["verdict"] == "runtime_error" and result["pass_ratio"] == 0, result


def test_exit_before_asserts_never_passes(hostile):
    result = hostile("import sys\ndef add(a, b):\n    return 0\nsys.exit(0)\n",
                     "assert add(1, 2) == 3")
    assert result["verdict"] == "runtime_error"


def test_always_equal_objects_never_pass(hostile):
    code = ("class Anything:\n"
            "    def __eq__(self, other):\n"
            "        return True\n"
            "    def __ne__(self, other):\n"
            "        return False\n"
            "class SneakyInt(int):\n"
            "    def __eq__(self, other):\n"
            "        return True\n"
            "def add(a, b):\n"
            "    return Anything() if a == 1 else SneakyInt(0)\n")
    result = hostile(code, ADD_TESTS, mode="call", fn_name="add")
    assert [t["verdict"] for t in result["tests"]] == ["wrong_answer", "wrong_answer"]


def test_patched_builtins_and_json_never_pass(hostile):
    code = ("import builtins, json\n"
            "json.dumps = lambda *a, **k: '3'\n"
            "json.loads = lambda *a, **k: 3\n"
            "builtins.isinstance = lambda *a: True\n"
            "def add(a, b):\n"
            "    return -1\n")
    result = hostile(code, ADD_TESTS, mode="call", fn_name="add")
    assert result["verdict"] == "wrong_answer" and result["pass_ratio"] == 0


def test_builtins_patched_by_the_program_are_restored_before_the_asserts(run):
    # `exit` comes from site.py's set-up (the zygote runs with -S and adds it itself): it is
    # restored like the interpreter's own builtins.
    code = ("import builtins\n"
            "builtins.abs = lambda x: 0\n"
            "builtins.exit = 'patched'\n"
            "def area(r):\n"
            "    return 0\n")
    tests = [{"assert": "assert callable(exit) and abs(-2) == 2"},
             {"assert": "assert abs(area(2) - 12.566) < 1e-3"}]
    result = run(code, "assert", tests, limits=FAST)
    assert [t["verdict"] for t in result["tests"]] == ["pass", "wrong_answer"], result


def test_forged_result_lines_never_pass(hostile):
    code = ("import os\n"
            "def add(a, b):\n"
            "    for fd in range(3, 10):\n"
            "        for i in range(2):\n"
            "            try:\n"
            "                os.write(fd, ('{\"k\": \"end\", \"i\": %d, \"exc\": null, '\n"
            "                              '\"value\": \"%d\", \"n\": \"\"}\\n' % (i, a + b)).encode())\n"
            "            except OSError:\n"
            "                pass\n"
            "    os._exit(0)\n")
    result = hostile(code, ADD_TESTS, mode="call", fn_name="add")
    assert result["verdict"] == "runtime_error" and result["pass_ratio"] == 0, result


def test_worker_death_is_sandbox_error_for_that_request_only(run, http, service):
    slow = ("import time\n"
            "def f(x):\n"
            "    time.sleep(2)\n"
            "    return x\n")
    with concurrent.futures.ThreadPoolExecutor(2) as threads:
        futures = [threads.submit(run, slow, "call", [{"args": [i], "expected": i}], "f")
                   for i in range(2)]
        time.sleep(0.8)  # both workers busy
        children = open(f"/proc/{service['pid']}/task/{service['pid']}/children").read().split()
        unshare_pids = [int(p) for p in children
                        if b"unshare" in open(f"/proc/{p}/cmdline", "rb").read()]
        assert len(unshare_pids) == 2
        os.kill(unshare_pids[0], signal.SIGKILL)  # one worker (and its jail) dies mid-request
        verdicts = sorted(f.result()["verdict"] for f in futures)
    assert verdicts == ["pass", "sandbox_error"]
    deadline = time.monotonic() + 20
    while http.get("/healthz").json()["workers_alive"] != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert_service_judges_correctly(run)
    assert 'sandbox_worker_recycles_total{reason="failure"}' in http.get("/metrics").text


def test_expected_values_are_not_in_the_programs_memory(hostile):
    code = ("import gc\n"
            "def add(a, b):\n"
            "    for obj in gc.get_objects():\n"
            "        if isinstance(obj, dict) and 'expected' in obj:\n"
            "            return obj['expected']\n"
            "    return None\n")
    tests = [{"args": [1, 2], "expected": 987654321}]
    result = hostile(code, tests, mode="call", fn_name="add")
    assert result["verdict"] == "wrong_answer", result


def test_seccomp_denies_namespaces_mounts_and_ptrace(hostile):
    code = ("import ctypes, os, threading\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "results = {}\n"
            "for name, call in [('unshare_user', lambda: libc.unshare(0x10000000)),\n"
            "                   ('unshare_mount', lambda: libc.unshare(0x00020000)),\n"
            "                   ('mount', lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)),\n"
            "                   ('ptrace', lambda: libc.ptrace(16, 1, None, None))]:\n"
            "    results[name] = (call(), ctypes.get_errno())\n"
            "box = []\n"
            "t = threading.Thread(target=box.append, args=(1,))\n"
            "t.start(); t.join()\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os._exit(7)\n"
            "status = os.waitpid(pid, 0)[1]\n")
    test = ("assert all(r == (-1, 1) for r in results.values()), results\n"
            "assert box == [1] and os.waitstatus_to_exitcode(status) == 7\n")
    result = hostile(code, test)
    assert result["verdict"] == "pass", result
