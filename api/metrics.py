"""Prometheus metrics of the HTTP door: requests by route and status, their latency, the jobs
in each state (read from the shared database at each scrape, so every machine agrees), and the
rolling fixity of each copy (read from its cycle's cursor in the store)."""
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


class _Fixity:
    """Rolling fixity of each copy: objects re-read and problems found in the current cycle
    (an alert rule fires on ``sohoa_fixity_problems > 0``), and when the cycle started."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def collect(self):
        checked = GaugeMetricFamily("sohoa_fixity_checked_objects", "Objects re-read in the current fixity cycle",
                                    labels=["store"])
        problems = GaugeMetricFamily("sohoa_fixity_problems", "Objects found changed or missing in the current "
                                     "fixity cycle", labels=["store"])
        started = GaugeMetricFamily("sohoa_fixity_cycle_start_timestamp_seconds", "When the current fixity cycle "
                                    "started", labels=["store"])
        try:
            counters = service.fixity_counters(self.settings)
        except Exception:  # a scrape must not fail because the store is down: /readyz says so
            counters = {}
        for store, c in counters.items():
            checked.add_metric([store], c["checked"])
            problems.add_metric([store], c["problems"])
            started.add_metric([store], c["cycle_started"])
        yield from (checked, problems, started)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, settings: Settings):
        self.registry = CollectorRegistry()
        self.requests = Counter("sohoa_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("sohoa_http_request_seconds", "HTTP request latency", ["method", "route"],
                                 registry=self.registry)
        self.registry.register(_Jobs(settings))
        self.registry.register(_Fixity(settings))

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
