"""Prometheus metrics of one service instance (own registry, so several apps can coexist)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServiceMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("sandbox_requests", "HTTP requests by route and status code",
                                ["route", "code"], registry=self.registry)
        self.verdicts = Counter("sandbox_verdicts", "Program verdicts (one per execution)",
                                ["verdict"], registry=self.registry)
        self.executions = Counter("sandbox_executions", "Programs executed",
                                  registry=self.registry)
        self.queue_depth = Gauge("sandbox_queue_depth", "Executions waiting or running",
                                 registry=self.registry)
        self.latency = Histogram("sandbox_execution_seconds",
                                 "Time from admission to result of one execution",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.recycles = Counter("sandbox_worker_recycles",
                                "Worker (zygote) restarts, by reason", ["reason"],
                                registry=self.registry)
        self.sandbox_errors = Counter("sandbox_errors", "Executions answered with sandbox_error",
                                      registry=self.registry)
        self.rejected = Counter("sandbox_rejected", "Executions refused with 429 (queue full)",
                                registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
