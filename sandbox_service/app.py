"""FastAPI routes of the v1 contract: /healthz, /v1/execute, /v1/execute_batch, /metrics.

Requests are validated (422 with a message), admitted against the pool's bounded queue (429
with Retry-After when full) and executed by the pool. An optional bearer token guards every
route but /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox_service.metrics import ServiceMetrics
from sandbox_service.pool import PoolConfig, WorkerPool
from sandbox_service.schemas import (BatchRequest, BatchResponse, ExecuteRequest,
                                     ExecuteResponse)

API_VERSION = "1"
MAX_BODY_BYTES = 256 * 1024 * 1024


class GuardAndCount:
    """Plain ASGI middleware: body-size limit, bearer token (all routes but /healthz), and
    per-route request counts by status code."""

    def __init__(self, app, token: str | None, metrics: ServiceMetrics):
        self.app = app
        self.expected_auth = f"Bearer {token}".encode() if token else None
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = scope["path"]
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"0")
        refusal = None
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            refusal = JSONResponse({"detail": f"request body of {int(declared)} bytes is larger "
                                              f"than the limit of {MAX_BODY_BYTES}"},
                                   status_code=422)
        elif self.expected_auth and route != "/healthz" and not hmac.compare_digest(
                headers.get(b"authorization", b""), self.expected_auth):
            refusal = JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401)
        if refusal is not None:
            self.metrics.requests.labels(route, str(refusal.status_code)).inc()
            return await refusal(scope, receive, send)
        counted = route.startswith("/v1/") or route in ("/healthz", "/metrics")

        async def send_and_count(message):
            if counted and message["type"] == "http.response.start":
                self.metrics.requests.labels(route, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, send_and_count)


async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with one readable line naming each bad field (``detail``) and the raw messages."""
    messages = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        messages.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return JSONResponse({"detail": "; ".join(messages) or "invalid request",
                         "errors": [str(e.get("msg")) for e in exc.errors()]},
                        status_code=422)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:  # FastAPI's answer to an undecodable (e.g. non-UTF-8) body
        return JSONResponse({"detail": f"request body is not valid UTF-8 JSON: {exc.detail}"},
                            status_code=422)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


def create_app(config: PoolConfig, token: str | None = None) -> FastAPI:
    metrics = ServiceMetrics()
    pool = WorkerPool(config, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        await pool.start()
        try:
            yield
        finally:
            await pool.stop()

    app = FastAPI(title="rltf sandbox service", version=API_VERSION, lifespan=lifespan,
                  description="Runs untrusted Python against unit tests in a jail and returns "
                              "per-test verdicts with the exception line in the submitted code.")
    app.state.pool = pool
    app.state.metrics = metrics

    app.add_middleware(GuardAndCount, token=token, metrics=metrics)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    def queue_full() -> JSONResponse:
        metrics.rejected.inc()
        return JSONResponse({"detail": "queue full, retry later"}, status_code=429,
                            headers={"Retry-After": str(pool.retry_after_s())})

    @app.get("/healthz")
    async def healthz() -> dict:
        alive = sum(1 for w in pool.workers if w.proc is not None and w.proc.returncode is None)
        return {"status": "ok", "version": API_VERSION, "workers": len(pool.workers),
                "workers_alive": alive, "queue_depth": pool.pending,
                "max_queue": pool.config.max_queue}

    @app.post("/v1/execute", response_model=ExecuteResponse,
              responses={422: {"description": "malformed request"},
                         429: {"description": "queue full; see Retry-After"}})
    async def execute(request: ExecuteRequest):
        if not pool.try_admit(1):
            return queue_full()
        return JSONResponse(await pool.run(request.job()))

    @app.post("/v1/execute_batch", response_model=BatchResponse,
              responses={422: {"description": "malformed request"},
                         429: {"description": "queue full; see Retry-After"}})
    async def execute_batch(batch: BatchRequest):
        if not pool.try_admit(len(batch.requests)):
            return queue_full()
        results = await asyncio.gather(*(pool.run(r.job()) for r in batch.requests))
        return JSONResponse({"results": list(results)})

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
