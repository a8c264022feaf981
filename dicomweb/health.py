"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="The index and object store answer")
def readyz(request: Request) -> JSONResponse:
    archive = request.app.state.archive
    checks: dict[str, str] = {}
    try:
        with archive.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["index"] = "ok"
    except Exception as error:  # readiness reports, it does not raise
        checks["index"] = f"error: {error.__class__.__name__}"
    try:
        archive.store.exists("readyz-probe")
        checks["object_store"] = "ok"
    except Exception as error:
        checks["object_store"] = f"error: {error.__class__.__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503)
