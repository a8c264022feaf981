"""Prometheus metrics of one app, in its own registry (no process-wide state).

* ``l3net_http_requests_total`` and ``l3net_http_request_duration_seconds``, by method,
  route template (``/dicomweb/studies/{study}``, never the raw path: UIDs would make
  unbounded label sets) and status;
* ``l3net_stow_instances_total`` by outcome (stored, failed);
* ``l3net_jobs`` by state and ``l3net_analysis_duration_seconds``, read from the index
  at each scrape, so they count the jobs of every worker, not only this process's.
"""

from __future__ import annotations

import time
from typing import Iterable

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from archive.index.models import Job, Study

ANALYSIS_BUCKETS = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class IndexCollector(Collector):
    """Job counts by state and analysis durations, from the index at scrape time."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterable[Metric]:
        with self.sessions() as db:
            by_state = dict(db.execute(select(Job.state, func.count()).group_by(Job.state)).all())
            studies = dict(db.execute(select(Study.state, func.count()).group_by(Study.state)).all())
            spans = db.execute(
                select(Job.started_at, Job.finished_at).where(
                    Job.state == "done", Job.started_at.is_not(None), Job.finished_at.is_not(None)
                )
            ).all()
        jobs = GaugeMetricFamily("l3net_jobs", "Analysis jobs in the index, by state.", labels=["state"])
        for state in ("queued", "running", "done", "failed", "dead"):
            jobs.add_metric([state], by_state.get(state, 0))
        yield jobs
        study_gauge = GaugeMetricFamily("l3net_studies", "Studies in the index, by state.", labels=["state"])
        for state, count in sorted(studies.items()):
            study_gauge.add_metric([state], count)
        yield study_gauge
        seconds = [(end - start).total_seconds() for start, end in spans]
        buckets = [(str(bound), sum(1 for s in seconds if s <= bound)) for bound in ANALYSIS_BUCKETS]
        buckets.append(("+Inf", len(seconds)))
        histogram = HistogramMetricFamily(
            "l3net_analysis_duration_seconds", "Run time of finished analysis jobs (last attempt)."
        )
        histogram.add_metric([], buckets, sum_value=sum(seconds))
        yield histogram


class Metrics:
    """The app's registry and the metrics its code updates."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "l3net_http_requests", "HTTP requests answered.", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "l3net_http_request_duration_seconds",
            "Time to answer an HTTP request, to the last body byte.",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.stow_instances = Counter(
            "l3net_stow_instances", "Instances received by STOW-RS.", ["outcome"], registry=self.registry
        )
        self.registry.register(IndexCollector(sessions))


class MetricsMiddleware:
    """ASGI middleware timing each request to its last body byte (streamed retrievals
    included, which a response-start timer would miss)."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)


router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    registry = request.app.state.web.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
