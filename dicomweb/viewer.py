"""The OHIF viewer at ``/``: the unpacked build (``viewer/fetch_ohif.py``) and a generated
``/app-config.js``.

OHIF's ``index.html`` hardcodes ``/``, so the viewer owns the root of this origin:

* ``/app-config.js`` is generated from the settings on every request: the DICOMweb
  roots (this server's ``/dicomweb``), the data-source options OHIF needs, and in
  Cognito mode the ``oidc`` block (authorization code with PKCE; OHIF then sends
  ``Authorization: Bearer`` with every DICOMweb request).
* Files of the build are served with explicit MIME types (``application/wasm``
  included) and cache headers: content-hashed names are immutable for a year,
  ``index.html``, the config and the service-worker scripts are revalidated each time.
* Any other path without a file extension is one of the app's routes (``/viewer``,
  ``/callback``, ...) and gets ``index.html``; a missing file with an extension is 404.
* A link that opens a study (``/viewer?StudyInstanceUIDs=...``, from a RIS, PACS or
  e-mail) without a hanging protocol is redirected to the same link with
  ``hangingprotocolId=`` ``L3NET_VIEWER_HANGING_PROTOCOL`` (default ``@ohif/seg``): OHIF
  then hangs the SEG on its CT with no click, and shows the plain CT where there is no
  SEG. The redirect needs no lookup, so it tells nobody whether a study exists.
  Navigation inside the app (the study list) does not reach the server and keeps
  OHIF's default layout.
  Paths of the API (``/dicomweb``, ``/api``, ``/healthz``, ...) are never answered here.

The viewer's files need no authorization (the login happens in the browser); the
data behind them does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from archive.settings import Settings

REPO_VIEWER_DIST = Path(__file__).resolve().parents[1] / "viewer" / "dist"

# Prefixes that belong to the API; unknown paths under them are 404, never index.html.
API_PREFIXES = ("dicomweb", "api", "healthz", "readyz", "metrics", "docs", "openapi.json", "redoc")

MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".jpg": "image/jpeg",
    ".gif": "image/gif",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/xml",
    ".webmanifest": "application/manifest+json",
    ".onnx": "application/octet-stream",
}

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
SHORT = "public, max-age=3600"
# Names the build gives content hashes: 1234.bundle.0123456789abcdef.js, 0123456789abcdef.wasm, ...
HASHED = re.compile(r"(^|[.\-_])[0-9a-f]{16,}\.[a-z0-9]+$")
ALWAYS_FRESH = {"index.html", "sw.js", "init-service-worker.js", "manifest.json", "silent-refresh.html"}


def viewer_dir(settings: Settings) -> Path:
    return (settings.viewer_dir or REPO_VIEWER_DIST).resolve()


def cache_control(relative: str) -> str:
    name = relative.rsplit("/", 1)[-1]
    if name in ALWAYS_FRESH:
        return REVALIDATE
    if HASHED.search(name):
        return IMMUTABLE
    return SHORT


def mime_type(path: Path) -> str:
    return MIME_TYPES.get(path.suffix.lower(), "application/octet-stream")


def _base_url(settings: Settings, request: Request) -> str:
    """The origin the browser reaches this server at (``L3NET_PUBLIC_URL`` wins)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def app_config(settings: Settings, base_url: str) -> dict:
    """``window.config`` for OHIF 3.13: one DICOMweb data source on this server, and in
    Cognito mode the OIDC block."""
    dicomweb = f"{base_url}/dicomweb"
    config: dict = {
        "name": "l3net",
        "routerBasename": "/",
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "showStudyList": True,
        "maxNumberOfWebWorkers": 3,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "groupEnabledModesFirst": True,
        "investigationalUseDialog": {"option": "never"},
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 25},
        "showErrorDetails": "always",
        # Open a SEG (and RTSTRUCT) on the CT without OHIF's "load this segmentation?"
        # question, so /viewer?...&hangingprotocolId=@ohif/seg shows the overlay at once.
        "disableConfirmationPrompts": True,
        "defaultDataSourceName": "l3net",
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "l3net",
                "configuration": {
                    "friendlyName": "L3-net Node",
                    "name": "l3net",
                    "qidoRoot": dicomweb,
                    "wadoRoot": dicomweb,
                    "wadoUriRoot": dicomweb,
                    "qidoSupportsIncludeField": True,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": True,
                    "supportsFuzzyMatching": False,
                    "supportsWildcard": True,
                    "staticWado": False,
                    "singlepart": "bulkdata,video",
                    "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
                    "omitQuotationForMultipartRequest": True,
                    # OHIF's upload dialog (STOW-RS); the server decides who may upload.
                    "dicomUploadEnabled": True,
                },
            }
        ],
    }
    if settings.auth == "cognito":
        config["oidc"] = [oidc_block(settings, base_url)]
    return config


def oidc_block(settings: Settings, base_url: str) -> dict:
    """Authorization code + PKCE against the pool (oidc-client-ts, OHIF's ``response_type:
    'code'`` client). Cognito's discovery lacks a logout endpoint, so ``metadataSeed``
    supplies the hosted UI's ``/logout`` (and, for cognito-local, which has no hosted UI
    domain in its discovery, the authorize and token endpoints)."""
    authority = settings.cognito_authority or settings.cognito_issuer
    if not authority or not settings.cognito_client_id:
        raise ValueError("the viewer's Cognito login needs L3NET_COGNITO_USER_POOL_ID and L3NET_COGNITO_CLIENT_ID")
    block: dict = {
        "authority": authority.rstrip("/"),
        "client_id": settings.cognito_client_id,
        "redirect_uri": "/callback",
        "post_logout_redirect_uri": "/",
        "response_type": "code",
        "scope": settings.viewer_oidc_scope,
        # Cognito cannot revoke access tokens; prompt=none (silent renew) is unsupported.
        "revokeTokenTypes": ["refresh_token"],
        "automaticSilentRenew": False,
        "loadUserInfo": False,
    }
    if settings.cognito_domain:
        domain = settings.cognito_domain.rstrip("/")
        logout = urlencode({"client_id": settings.cognito_client_id, "logout_uri": f"{base_url}/"})
        block["metadataSeed"] = {
            "authorization_endpoint": f"{domain}/oauth2/authorize",
            "token_endpoint": f"{domain}/oauth2/token",
            "revocation_endpoint": f"{domain}/oauth2/revoke",
            "end_session_endpoint": f"{domain}/logout?{logout}",
        }
    return block


def app_config_js(settings: Settings, base_url: str) -> str:
    body = json.dumps(app_config(settings, base_url), indent=2)
    return f"/* Generated by l3net (dicomweb/viewer.py) from the L3NET_* settings. */\nwindow.config = {body};\n"


MISSING_BUILD = """<!doctype html><html><head><meta charset="utf-8"><title>L3-net Node</title></head>
<body><h1>L3-net Node</h1><p>The OHIF viewer is not installed in <code>{dir}</code>.
Run <code>python viewer/fetch_ohif.py</code> (or <code>make run</code>).</p>
<p>DICOMweb is at <a href="/dicomweb/studies">/dicomweb</a>; the API docs at <a href="/docs">/docs</a>.</p>
</body></html>"""


def make_router(settings: Settings) -> APIRouter:
    """GET/HEAD ``/app-config.js`` and ``/{path}`` over the viewer build. Include it last:
    its catch-all route must not shadow the API."""
    root = viewer_dir(settings)
    router = APIRouter(include_in_schema=False)

    def file_response(path: Path, relative: str) -> Response:
        return FileResponse(
            path,
            media_type=mime_type(path),
            headers={"Cache-Control": cache_control(relative), "X-Content-Type-Options": "nosniff"},
        )

    def index() -> Response:
        index_html = root / "index.html"
        if not index_html.is_file():
            return HTMLResponse(MISSING_BUILD.format(dir=root), status_code=503, headers={"Cache-Control": "no-store"})
        return file_response(index_html, "index.html")

    @router.api_route("/app-config.js", methods=["GET", "HEAD"])
    def config_js(request: Request) -> Response:
        return Response(
            app_config_js(settings, _base_url(settings, request)),
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    @router.api_route("/", methods=["GET", "HEAD"])
    def root_page() -> Response:
        return index()

    @router.api_route("/viewer", methods=["GET", "HEAD"])
    def viewer_link(request: Request) -> Response:
        protocol = settings.viewer_hanging_protocol
        query = request.query_params
        if protocol and "StudyInstanceUIDs" in query and "hangingprotocolId" not in query:
            target = f"/viewer?{urlencode([*query.multi_items(), ('hangingprotocolId', protocol)])}"
            return RedirectResponse(target, status_code=302, headers={"Cache-Control": "no-store"})
        return index()

    @router.api_route("/{path:path}", methods=["GET", "HEAD"])
    def asset(path: str) -> Response:
        first = path.split("/", 1)[0]
        if first in API_PREFIXES:
            raise HTTPException(404, "Not Found")
        candidate = (root / path).resolve()
        if candidate.is_relative_to(root) and candidate.is_file():
            return file_response(candidate, path)
        last = path.rstrip("/").rsplit("/", 1)[-1]
        if "." in last:
            raise HTTPException(404, "Not Found")
        return index()  # one of the app's client-side routes

    return router
