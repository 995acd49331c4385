"""Every mode and every verdict, through the real service."""

from __future__ import annotations

SUM_STDIN = "import sys\nprint(sum(map(int, sys.stdin.read().split())))\n"


def test_healthz_and_docs(http):
    health = http.get("/healthz").json()
    assert health["status"] == "ok" and health["workers_alive"] == 2
    docs = http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = http.get("/openapi.json").json()
    assert {"/v1/execute", "/v1/execute_batch", "/healthz"} <= set(schema["paths"])


def test_stdio_pass_and_wrong_answer(run):
    result = run(SUM_STDIN, "stdio", [{"stdin": "1 2\n", "expected_stdout": "3\n"},
                                      {"stdin": "5 5", "expected_stdout": "11"},
                                      {"stdin": "", "expected_stdout": "0   \n\n"}])
    assert [t["verdict"] for t in result["tests"]] == ["pass", "wrong_answer", "pass"]
    assert result["verdict"] == "wrong_answer"
    assert abs(result["pass_ratio"] - 2 / 3) < 1e-9
    assert result["tests"][1]["stdout"] == "10\n"


def test_stdio_float_tolerance_and_exit(run):
    code = "import sys\nprint(1/3)\nsys.exit(0)\nprint('unreachable')\n"
    result = run(code, "stdio", [{"stdin": "", "expected_stdout": "0.333333"}])
    assert result["verdict"] == "pass", result


def test_stdio_tests_do_not_share_state(run):
    code = "import os\nprint(os.path.exists('/tmp/mark'))\nopen('/tmp/mark', 'w').close()\n"
    tests = [{"stdin": "", "expected_stdout": "False"}] * 3
    assert run(code, "stdio", tests)["verdict"] == "pass"


def test_call_mode_function_and_solution_class(run):
    plain = run("def f(xs):\n    return sorted(xs)\n", "call",
                [{"args": [[3, 1, 2]], "expected": [1, 2, 3]}], fn_name="f")
    assert plain["verdict"] == "pass"
    leet = run("class Solution:\n    def twoSum(self, a, t):\n        return (0, 1)\n", "call",
               [{"args": [[1, 2], 3], "expected": [0, 1]}], fn_name="twoSum")
    assert leet["verdict"] == "pass"  # a tuple equals the JSON list after the round trip


def test_call_mode_arguments_are_fresh_per_test(run):
    code = "def f(xs):\n    xs.append(1)\n    return len(xs)\n"
    tests = [{"args": [[0]], "expected": 2}] * 3
    assert run(code, "call", tests, fn_name="f")["verdict"] == "pass"


def test_call_mode_missing_function_is_runtime_error(run):
    result = run("def g():\n    pass\n", "call", [{"args": [], "expected": None}], fn_name="f")
    assert result["verdict"] == "runtime_error"
    assert result["tests"][0]["exception"]["type"] == "NameError"


def test_assert_mode_humaneval_check(run):
    code = "def add(a, b):\n    return a + b\n"
    check = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(0, 0) == 0\n"
    assert run(code, "assert", [{"assert": check + "check(add)"}])["verdict"] == "pass"
    wrong = run("def add(a, b):\n    return a - b\n", "assert", [{"assert": check + "check(add)"}])
    assert wrong["verdict"] == "wrong_answer"
    assert wrong["tests"][0]["exception"] == {"type": "AssertionError", "message": "",
                                              "line": None}


def test_stdout_and_stderr_are_captured_per_test(run):
    code = "import sys\nprint('loading')\ndef f(x):\n    print('out', x)\n    print('err', x, file=sys.stderr)\n    return x\n"
    result = run(code, "call", [{"args": [1], "expected": 1}, {"args": [2], "expected": 2}],
                 fn_name="f")
    first, second = result["tests"]
    assert first["stdout"] == "loading\nout 1\n" and first["stderr"] == "err 1\n"
    assert second["stdout"] == "out 2\n" and second["stderr"] == "err 2\n"


def test_every_verdict(run):
    limits = {"timeout_s": 1.0, "memory_mb": 256, "output_bytes": 1000}
    cases = {
        "pass": ("x = 1", "assert x == 1"),
        "wrong_answer": ("x = 1", "assert x == 2"),
        "runtime_error": ("x = 1", "assert 1 / 0"),
        "syntax_error": ("x = = 1", "assert True"),
        "timeout": ("import time\ntime.sleep(100)", "assert True"),
        "memory_limit": ("x = bytearray(2 * 1024 ** 3)", "assert True"),
        "output_limit": ("print('y' * 5000)", "assert True"),
    }
    for verdict, (code, test) in cases.items():
        result = run(code, "assert", [{"assert": test}], limits=limits)
        assert result["verdict"] == verdict, (verdict, result)
        assert result["tests"][0]["verdict"] == verdict


def test_output_limit_reports_original_size(run):
    result = run("print('z' * 250000)", "assert", [{"assert": "pass"}],
                 limits={"output_bytes": 1024})
    test = result["tests"][0]
    assert test["verdict"] == "output_limit" and test["truncated"] is True
    assert len(test["stdout"]) == 1024 and test["stdout_bytes"] == 250001


def test_timeout_then_next_test_still_runs(run):
    code = "import time\ndef f(x):\n    if x == 0:\n        time.sleep(100)\n    return x\n"
    tests = [{"args": [0], "expected": 0}, {"args": [5], "expected": 5}]
    result = run(code, "call", tests, fn_name="f", limits={"timeout_s": 0.5})
    assert [t["verdict"] for t in result["tests"]] == ["timeout", "pass"]
    assert 0.4 < result["tests"][0]["time_s"] < 2.0
    assert result["verdict"] == "timeout" and result["pass_ratio"] == 0.5


def test_stop_on_first_failure(run):
    tests = [{"args": [1], "expected": 1}, {"args": [2], "expected": 3},
             {"args": [3], "expected": 3}]
    code = "def f(x):\n    return x\n"
    full = run(code, "call", tests, fn_name="f")
    assert [t["verdict"] for t in full["tests"]] == ["pass", "wrong_answer", "pass"]
    stopped = run(code, "call", tests, fn_name="f", stop_on_first_failure=True)
    assert [t["verdict"] for t in stopped["tests"]] == ["pass", "wrong_answer"]
    assert abs(stopped["pass_ratio"] - 1 / 3) < 1e-9


def test_batch_keeps_order(http):
    requests = [{"code": f"def f():\n    return {i}\n", "mode": "call", "fn_name": "f",
                 "tests": [{"args": [], "expected": i if i % 3 else -1}]} for i in range(12)]
    results = http.post("/v1/execute_batch", json={"requests": requests}).json()["results"]
    assert [r["verdict"] for r in results] == [
        "pass" if i % 3 else "wrong_answer" for i in range(12)]


def test_metrics_exposes_counters(http, run):
    run("x = 1", "assert", [{"assert": "assert x"}])
    text = http.get("/metrics").text
    for name in ("sandbox_requests_total", "sandbox_verdicts_total", "sandbox_queue_depth",
                 "sandbox_execution_seconds_bucket", "sandbox_worker_recycles_total",
                 "sandbox_errors_total"):
        assert name in text, name
    assert 'sandbox_verdicts_total{verdict="pass"}' in text


def test_stdlib_modules_the_zygote_does_not_preload_still_import(run):
    # hashlib (OpenSSL), decimal, statistics, datetime and dataclasses are left out of the zygote's
    # warm set to keep every fork small; a program that needs them imports them inside the jail.
    code = ("import hashlib, decimal, statistics, datetime, dataclasses, fractions\n\n"
            "@dataclasses.dataclass\nclass P:\n    x: int\n\n"
            "def f(s):\n"
            "    return [hashlib.md5(s.encode()).hexdigest(), str(decimal.Decimal('0.1') * 3),\n"
            "            statistics.median([3, 1, 2]), datetime.date(2024, 2, 29).isoformat(),\n"
            "            P(4).x, str(fractions.Fraction(1, 3) * 3)]\n")
    expected = ["5d41402abc4b2a76b9719d911017c592", "0.3", 2, "2024-02-29", 4, "1"]
    result = run(code, "call", [{"args": ["hello"], "expected": expected}], fn_name="f")
    assert result["verdict"] == "pass", result


def test_packages_installed_in_the_services_environment_import_in_the_jail(run):
    # The zygote starts with -S (no .pth files run in it); the environment's site-packages are
    # put on its path instead, so a program can still use what is installed (numpy is, via jax).
    # site.py's builtins are set up without it: programs call exit() and quit().
    code = ("import sys\nimport numpy as np\n\n"
            "def f(xs):\n"
            "    return [int(np.asarray(xs).sum()), sys.flags.no_site, callable(exit), callable(quit)]\n")
    result = run(code, "call", [{"args": [[1, 2, 3]], "expected": [6, 1, True, True]}], fn_name="f")
    assert result["verdict"] == "pass", result
