"""python -m sandbox_service --host 127.0.0.1 --port 8080 --workers N [--token T]

The service runs arbitrary code, so it is only reachable without a token on a loopback address.
Binding any other address needs --token (or $SANDBOX_TOKEN), or --insecure-no-token said in so
many words."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import shutil
import sys

import uvicorn

from sandbox_service.app import create_app
from sandbox_service.pool import PoolConfig

TOKEN_ENV = "SANDBOX_TOKEN"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_uid_base(workers: int) -> int:
    """A uid range of its own for this service: 1,000,000 + (pid mod 100,000) * 256."""
    if workers > 256:
        raise SystemExit("more than 256 workers need an explicit --uid-base")
    return 1_000_000 + (os.getpid() % 100_000) * 256


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox_service", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback default)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="jailed zygotes, i.e. programs run at once (default: CPU count)")
    parser.add_argument("--max-queue", type=int, default=1024,
                        help="executions admitted (waiting + running) before answering 429")
    parser.add_argument("--recycle-after", type=int, default=PoolConfig.recycle_after,
                        help="jobs per zygote before it is replaced")
    parser.add_argument("--tmp-mb", type=int, default=64, help="size of each run's /tmp")
    parser.add_argument("--uid-base", type=int, default=None,
                        help="worker i runs programs as uid/gid uid_base + i (default: a base "
                             "derived from this process id, so services on one machine never "
                             "share uids, and with them RLIMIT_NPROC counts)")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                        help=f"require 'Authorization: Bearer TOKEN' (or env {TOKEN_ENV})")
    parser.add_argument("--insecure-no-token", action="store_true",
                        help="allow a non-loopback --host without a token: anyone who can reach "
                             "the port can then run code on this machine")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.max_queue < 1 or args.recycle_after < 1 or args.tmp_mb < 1:
        parser.error("--workers, --max-queue, --recycle-after and --tmp-mb must be >= 1")
    if not _is_loopback(args.host) and not args.token and not args.insecure_no_token:
        parser.error(f"refusing to bind {args.host} without a token: anyone who can reach it could "
                     f"run code on this machine. Pass --token TOKEN (or set ${TOKEN_ENV}), or "
                     "--insecure-no-token if that is really what you want")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("sandbox_service needs root (namespaces, mounts, per-run uids); "
                 "run it in a container or VM where it is root")
    if shutil.which("unshare") is None:
        sys.exit("sandbox_service needs util-linux 'unshare' on PATH")
    if not _is_loopback(args.host) and not args.token:
        logging.warning("--insecure-no-token: binding %s without a token; anyone who can reach "
                        "it can run code on this machine", args.host)
    uid_base = args.uid_base if args.uid_base is not None else default_uid_base(args.workers)
    config = PoolConfig(workers=args.workers, max_queue=args.max_queue,
                        recycle_after=args.recycle_after, tmp_mb=args.tmp_mb,
                        uid_base=uid_base)
    app = create_app(config, token=args.token)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                access_log=False)


if __name__ == "__main__":
    main()
