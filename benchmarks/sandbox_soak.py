"""Soak: 10,000 mixed requests (5% hostile) through the real service, every result checked.

Each request carries a unique marker (a return value or a printed token), so a result that
belongs to another request, is missing, or is duplicated shows up as a mismatch. Hostile
requests (busy loops ignoring signals, memory bombs, bounded fork bombs, output floods,
parent kills, exit-before-asserts, always-equal objects) must get their expected verdict too.
Prints one JSON line: counts, mismatches (must be 0), sandbox errors, throughput, latency.

    flock /tmp/rltf_heavy.lock .venv/bin/python benchmarks/sandbox_soak.py
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import time

import httpx

from rltf_jax.env.sandbox_client import ExecutionRequest, Limits, SandboxClient, local_sandbox

FAST = Limits(timeout_s=2.0, memory_mb=256, output_bytes=4096)


def normal_case(i: int, rng: random.Random):
    """(request, expected verdict, check(result) -> bool) for a well-behaved program."""
    kind = rng.choice(["call_pass", "call_wrong", "stdio", "assert", "runtime", "syntax"])
    if kind == "call_pass":
        code = f"def f(x):\n    return x * 3 + {i}\n"
        return (ExecutionRequest(code=code, mode="call", fn_name="f",
                                 tests=[{"args": [k], "expected": 3 * k + i} for k in range(3)]),
                "pass", lambda r: r.pass_ratio == 1.0)
    if kind == "call_wrong":
        code = f"def f(x):\n    return x + {i}\n"
        tests = [{"args": [1], "expected": 1 + i}, {"args": [2], "expected": 3 + i}]
        return (ExecutionRequest(code=code, mode="call", fn_name="f", tests=tests),
                "wrong_answer", lambda r: [t.verdict for t in r.tests] == ["pass", "wrong_answer"])
    if kind == "stdio":
        code = f"a, b = map(int, input().split())\nprint('id{i}', a + b)\n"
        return (ExecutionRequest(code=code, mode="stdio",
                                 tests=[{"stdin": f"{i} 1\n", "expected_stdout": f"id{i} {i + 1}"}]),
                "pass", lambda r: r.tests[0].stdout == f"id{i} {i + 1}\n")
    if kind == "assert":
        code = f"def g(n):\n    return sum(range(n)) + {i}\n"
        test = f"def check(c):\n    assert c(10) == {45 + i}\ncheck(g)\n"
        return (ExecutionRequest(code=code, mode="assert", tests=[{"assert": test}]), "pass",
                lambda r: r.pass_ratio == 1.0)
    if kind == "runtime":
        line = 2 + i % 5
        code = "def f(xs):\n" + "    xs = list(xs)\n" * (line - 2) + f"    return xs[{i} + 10]\n"
        return (ExecutionRequest(code=code, mode="call", fn_name="f",
                                 tests=[{"args": [[1, 2]], "expected": 0}]), "runtime_error",
                lambda r: r.tests[0].exception.type == "IndexError"
                and r.tests[0].exception.line == line)
    line = 1 + i % 4
    code = "x = 1\n" * (line - 1) + f"y = ({i} +\n"
    return (ExecutionRequest(code=code, mode="assert", tests=[{"assert": "pass"}]),
            "syntax_error", lambda r: r.tests[0].exception.line == line)


HOSTILE = {
    "busy_loop": ("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                  "signal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass\n",
                  "pass", "timeout"),
    "memory_bomb": ("blocks = []\nfor _ in range(400):\n    blocks.append(bytearray(10 ** 7))\n",
                    "pass", "memory_limit"),
    "fork_bomb": ("import os, time\nforks = 0\nfor _ in range(3000):\n    try:\n"
                  "        pid = os.fork()\n    except OSError:\n        break\n"
                  "    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n    forks += 1\n",
                  "assert forks < 128", "pass"),
    "output_flood": ("import sys\nfor _ in range(2000):\n    sys.stdout.write('x' * 10000)\n",
                     "pass", "output_limit"),
    "kill_parent": ("import os\nos.kill(os.getppid(), 9)\n", "pass", "runtime_error"),
    "exit_early": ("import sys\nprint('PASS')\nsys.exit(0)\n", "assert False", "runtime_error"),
    "always_equal": ("class A:\n    def __eq__(self, o):\n        return True\n", "assert A() == 1",
                     "pass"),
}


def hostile_case(i: int, rng: random.Random):
    name = rng.choice(sorted(HOSTILE))
    code, test, verdict = HOSTILE[name]
    if name == "always_equal":  # in call mode, where the comparison happens outside
        code += "def f():\n    return A()\n"
        return (ExecutionRequest(code=code, mode="call", fn_name="f", limits=FAST,
                                 tests=[{"args": [], "expected": i}]), "wrong_answer",
                lambda r: True)
    # The memory bomb gets time to fault in its 256 MB even on a busy machine.
    timeout_s = 5.0 if name == "memory_bomb" else 0.5
    limits = Limits(timeout_s=timeout_s, memory_mb=256, output_bytes=4096)
    return (ExecutionRequest(code=code, mode="assert", tests=[{"assert": test}], limits=limits),
            verdict, lambda r: True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--hostile-fraction", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recycle-after", type=int, default=500,
                        help="jobs per zygote (lower than the service's default, so the soak "
                             "also replaces zygotes while requests are in flight)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cases = [hostile_case(i, rng) if rng.random() < args.hostile_fraction else normal_case(i, rng)
             for i in range(args.requests)]
    with local_sandbox(workers=args.workers,
                       extra_args=["--recycle-after", str(args.recycle_after)]) as url, \
            SandboxClient(url, batch_size=args.batch_size, max_in_flight=args.in_flight) as client:
        started = time.perf_counter()
        results = client.execute_batch([request for request, _, _ in cases])
        wall = time.perf_counter() - started
        metrics = httpx.get(url + "/metrics").text
    mismatches = []
    verdicts = collections.Counter()
    for i, ((request, want, check), result) in enumerate(zip(cases, results)):
        verdicts[result.verdict] += 1
        try:
            ok = result.verdict == want and check(result)
        except (AttributeError, IndexError, TypeError):
            ok = False
        if not ok:
            mismatches.append({"index": i, "want": want, "got": result.verdict,
                               "code": request.code[:80]})

    def metric(name: str) -> float:
        found = re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", metrics, re.M)
        return sum(float(v) for v in found)

    report = {"benchmark": "sandbox_soak", "requests": args.requests,
              "results": len(results), "lost": args.requests - len(results),
              "hostile": sum(1 for r, _, _ in cases if r.limits is not None),
              "mismatches": len(mismatches), "sandbox_errors": verdicts["sandbox_error"],
              "verdicts": dict(verdicts), "wall_s": round(wall, 1),
              "executions_per_s": round(len(results) / wall, 1), "workers": args.workers,
              "service_sandbox_errors": metric("sandbox_errors_total"),
              "worker_recycles": metric("sandbox_worker_recycles_total"),
              "first_mismatches": mismatches[:5]}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
