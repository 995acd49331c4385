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

    @app.middleware("http")
    async def count_and_authorize(request: Request, call_next):
        route = request.url.path
        declared = request.headers.get("content-length", "0")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            metrics.requests.labels(route, "422").inc()
            return JSONResponse({"detail": f"request body of {declared} bytes is larger than "
                                           f"the limit of {MAX_BODY_BYTES}"}, status_code=422)
        if token and route not in ("/healthz",):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                metrics.requests.labels(route, "401").inc()
                return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401)
        response = await call_next(request)
        if route.startswith("/v1/") or route in ("/healthz", "/metrics"):
            metrics.requests.labels(route, str(response.status_code)).inc()
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError):
        messages = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            messages.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
        return JSONResponse({"detail": "; ".join(messages) or "invalid request",
                             "errors": [str(e.get("msg")) for e in exc.errors()]},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400:  # FastAPI's answer to an undecodable (e.g. non-UTF-8) body
            return JSONResponse({"detail": f"request body is not valid UTF-8 JSON: {exc.detail}"},
                                status_code=422)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

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
