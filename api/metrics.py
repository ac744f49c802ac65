"""Prometheus metrics of the HTTP door: requests by route and status, their latency, and the
jobs in each state (read from the shared database at each scrape, so every machine agrees)."""
from __future__ import annotations

import time

from fastapi import Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from pipeline import service
from pipeline.config import Settings


class _Jobs:
    def __init__(self, settings: Settings):
        self.settings = settings

    def collect(self):
        family = GaugeMetricFamily("sohoa_jobs", "Jobs by state", labels=["state"])
        try:
            counts = service.job_counts(self.settings)
        except Exception:  # a scrape must not fail because the database is down: /readyz says so
            counts = {}
        for state in ("queued", "running", "finishing", "done", "failed"):
            family.add_metric([state], counts.get(state, 0))
        yield family


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, settings: Settings):
        self.registry = CollectorRegistry()
        self.requests = Counter("sohoa_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("sohoa_http_request_seconds", "HTTP request latency", ["method", "route"],
                                 registry=self.registry)
        self.registry.register(_Jobs(settings))

    async def middleware(self, request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")  # the template, never the dossier code itself
        self.requests.labels(request.method, path, str(response.status_code)).inc()
        self.latency.labels(request.method, path).observe(time.perf_counter() - started)
        return response

    def render(self) -> bytes:
        return generate_latest(self.registry)
