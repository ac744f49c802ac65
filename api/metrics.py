"""Prometheus metrics of the HTTP door: requests by route and status, their latency, the jobs
in each state (read from the shared database at each scrape, so every machine agrees), and the
rolling fixity of each copy (read from its cycle's cursor in the store)."""
from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline import service
from pipeline.config import Settings




def _read(what, settings: Settings) -> dict:
    """``what(settings)``, or nothing: a scrape must not fail because the database or the store is
    down (/readyz says so)."""
    try:
        return what(settings)
    except Exception:  # noqa: BLE001
        return {}


class _Jobs:
    def __init__(self, settings: Settings):
        self.settings = settings

    def collect(self):
        family = GaugeMetricFamily("sohoa_jobs", "Jobs by state", labels=["state"])
        counts = _read(service.job_counts, self.settings)
        for state in ("queued", "running", "finishing", "done", "failed", "discarded"):
            family.add_metric([state], counts.get(state, 0))
        yield family
        # a worker gone shows only as a job that stops moving (the ops review: /readyz and the
        # counts said nothing while an upload waited for good): alert on this growing
        quiet = GaugeMetricFamily("sohoa_jobs_quiet_seconds", "Seconds since the open job that moved least "
                                  "recently (a page done, its state changed) last moved", labels=["state"])
        ages = _read(service.jobs_quiet_seconds, self.settings)
        for state in ("queued", "running", "finishing"):
            quiet.add_metric([state], round(ages.get(state, 0.0), 1))
        yield quiet


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
        counters = _read(service.fixity_counters, self.settings)
        for store, c in counters.items():
            checked.add_metric([store], c["checked"])
            problems.add_metric([store], c["problems"])
            started.add_metric([store], c["cycle_started"])
        yield from (checked, problems, started)


class Metrics:
    """The server's metrics. Several ``sohoa serve`` processes (SOHOA_API_PROCESSES) count their
    requests in files of a directory they share (prometheus_client's multiprocess mode, its
    directory set by ``sohoa serve`` for them: ``settings.api.metrics_dir``), so that whichever
    process answers a scrape reports them all."""
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, settings: Settings):
        self.registry = CollectorRegistry()
        shared = settings.api.metrics_dir
        own = None if shared else self.registry  # shared: the values live in the directory's files
        self.requests = Counter("sohoa_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=own)
        self.latency = Histogram("sohoa_http_request_seconds", "HTTP request latency", ["method", "route"],
                                 registry=own)
        if shared:
            MultiProcessCollector(self.registry, path=shared)
        self.registry.register(_Jobs(settings))
        self.registry.register(_Fixity(settings))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts each answer by method, route template (never the dossier code itself) and status,
    and observes its latency; plain ASGI, so it costs the request no task of its own."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts: an error no handler turned into one

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], path, str(status)).inc()
            self.metrics.latency.labels(scope["method"], path).observe(time.perf_counter() - started)
