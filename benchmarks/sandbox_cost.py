"""Where a sandbox execution's CPU goes: time and page faults per execution, by process.

Starts the service (isolation on, --workers W, zygotes never recycled during the run), sends N
trivial (or HumanEval) executions through SandboxClient.execute_batch, and reads each zygote's
/proc/<pid>/stat before and after: user and system CPU of the zygote itself, of its reaped
children (the jailed programs), and their minor page faults. After a fork every page either
process writes is copied first, so faults are the cost to watch (~1-2 us each on this VM).

Prints one JSON line: executions/s, and per execution: zygote_user_ms, zygote_sys_ms,
child_user_ms, child_sys_ms, zygote_faults, child_faults, total_cpu_ms.

    flock /tmp/rltf_heavy.lock .venv/bin/python benchmarks/sandbox_cost.py [--workload humaneval]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sandbox_throughput import as_request, workloads  # noqa: E402

from rltf_jax.env.sandbox_client import SandboxClient, local_sandbox  # noqa: E402

_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        return []
    return [d for c in children for d in [c, *_descendants(c)]]


def _zygotes(root: int) -> list[int]:
    """The python zygotes below `root`: each is the only child of an `unshare` process."""
    found = []
    for pid in _descendants(root):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if f.read().startswith(b"unshare"):
                with open(f"/proc/{pid}/task/{pid}/children") as c:
                    found.append(int(c.read().split()[0]))
    return found


def _counters(pid: int) -> dict[str, float]:
    """utime, stime, cutime, cstime (ms) and minflt, cminflt of one process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # fields[0] is field 3 (state)
    minflt, cminflt, utime, stime, cutime, cstime = (int(fields[i]) for i in (7, 8, 11, 12, 13, 14))
    return {"zygote_user_ms": utime * _TICK_MS, "zygote_sys_ms": stime * _TICK_MS,
            "child_user_ms": cutime * _TICK_MS, "child_sys_ms": cstime * _TICK_MS,
            "zygote_faults": minflt, "child_faults": cminflt}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=("trivial", "humaneval"), default="trivial")
    parser.add_argument("--n", type=int, default=2000, help="executions")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    pairs = workloads(count=40)[args.workload]
    requests = [as_request(*pairs[i % len(pairs)]) for i in range(args.n)]
    with local_sandbox(workers=args.workers, extra_args=["--recycle-after", str(10 * args.n)]) as url, \
            SandboxClient(url, max_in_flight=args.workers, batch_size=16) as client:
        client.execute_batch(requests[:32])  # warm
        zygotes = _zygotes(os.getpid())
        before = {z: _counters(z) for z in zygotes}
        start = time.perf_counter()
        results = client.execute_batch(requests)
        wall = time.perf_counter() - start
        after = {z: _counters(z) for z in zygotes}
    per_exec = {key: round(sum(after[z][key] - before[z][key] for z in zygotes) / args.n, 3)
                for key in before[zygotes[0]]}
    per_exec["total_cpu_ms"] = round(sum(v for k, v in per_exec.items() if k.endswith("_ms")), 3)
    print(json.dumps({"benchmark": "sandbox_cost", "workload": args.workload, "n": args.n,
                      "workers": args.workers, "executions_per_s": round(args.n / wall, 1),
                      "all_pass": all(r.verdict == "pass" for r in results),
                      "per_execution": per_exec}))


if __name__ == "__main__":
    main()
