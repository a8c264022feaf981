"""The FastAPI application: routers per resource, the archive handed in (no globals)."""

from __future__ import annotations

from fastapi import FastAPI

from archive.context import Archive
from dicomweb import health


def create_app(archive: Archive) -> FastAPI:
    app = FastAPI(title="L3-net Node", version="0.1.0", docs_url="/docs", openapi_url="/openapi.json")
    app.state.archive = archive
    app.include_router(health.router)
    return app
