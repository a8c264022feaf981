"""The FastAPI application: routers per resource, the archive handed in (no globals).

Mounted resources:

``/dicomweb``  QIDO-RS, WADO-RS and STOW-RS (PS3.18);
``/api``       the analysis API (JSON);
``/healthz``, ``/readyz``, ``/metrics``, and the OpenAPI docs at ``/docs``;
``/``          the OHIF viewer and its generated ``/app-config.js`` (``dicomweb/viewer.py``).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from archive.context import Archive
from dicomweb import analysis, health, metrics, pixels, qido, stow, viewer, wado
from dicomweb.auth import check_exposure, make_authenticator
from dicomweb.context import WebContext
from dicomweb.frames import FrameSource
from dicomweb.metrics import Metrics, MetricsMiddleware
from dicomweb.stow_ingest import StowIngest


def create_app(archive: Archive, stow_ingest: StowIngest | None = None) -> FastAPI:
    """The web app over ``archive``. ``stow_ingest`` (spool and committer) receives
    STOW-RS uploads; without one, uploads get 503.

    Raises :class:`dicomweb.auth.InsecureExposure` for ``L3NET_AUTH=none`` on a
    non-loopback address unless ``L3NET_AUTH_ALLOW_INSECURE`` is set."""
    settings = archive.settings
    check_exposure(settings)
    app = FastAPI(
        title="L3-net Node",
        version="0.1.0",
        description="DICOMweb (QIDO-RS, WADO-RS, STOW-RS) under /dicomweb and the analysis API under /api.",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    registry = Metrics(archive.sessions)
    app.state.web = WebContext(
        archive=archive,
        authenticator=make_authenticator(settings),
        frames=FrameSource(archive.store),
        metrics=registry,
        stow=stow_ingest,
    )
    app.state.archive = archive  # health.readyz reads it here
    app.include_router(health.router)
    app.include_router(metrics.router)
    # Each router carries its own prefix (/dicomweb, /api), so the route templates the
    # metrics label requests with are the full paths.
    for router in (qido.router, wado.router, pixels.router, stow.router, analysis.router):
        app.include_router(router)
    # Last: its catch-all route serves the viewer's files and client-side routes.
    app.include_router(viewer.make_router(settings))
    if settings.cors_origins:
        # Bearer tokens, not cookies: no credentials mode, so origins are listed exactly.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Accept", "Content-Type"],
            expose_headers=["Warning", "Content-Location", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(MetricsMiddleware, metrics=registry)
    return app
