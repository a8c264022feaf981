"""Shared pieces of the DICOMweb tests: a real uvicorn server on 127.0.0.1 over a fresh
archive, loading studies through the durable path, and a JWKS server with a token mint."""

from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Iterator

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from pydicom.filewriter import write_file_meta_info

from archive.committer import Committer
from archive.context import Archive, open_archive
from archive.ingest import mark_owner_group
from archive.spool import Spool
from dicomweb.app import create_app
from dicomweb.stow_ingest import StowIngest, split_part10
from tests.conftest import free_port

HOST = "127.0.0.1"
TIMEOUT_S = 30


@dataclass
class Server:
    """A running app: its base URLs and the archive under it."""

    url: str  # http://127.0.0.1:PORT
    archive: Archive
    committer: Committer

    @property
    def dicomweb(self) -> str:
        return self.url + "/dicomweb"


@contextmanager
def running_server(settings) -> Iterator[Server]:
    """``create_app`` served by uvicorn on 127.0.0.1 and a free port, with a STOW spool
    and committer as ``l3net web`` has; everything stopped afterwards."""
    settings = settings.model_copy(update={"http_host": HOST, "http_port": free_port()})
    archive = open_archive(settings)
    spool = Spool(settings.resolved_spool_dir / "stow")
    committer = Committer(archive, spool)
    committer.start()
    app = create_app(archive, StowIngest(settings, spool, committer))
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=settings.http_port, log_config=None,
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield Server(f"http://{HOST}:{settings.http_port}", archive, committer)
    finally:
        server.should_exit = True
        thread.join(TIMEOUT_S)
        committer.wait_idle(TIMEOUT_S)
        committer.stop()
        archive.close()


def ingest(server: Server, paths: list[Path], owner_group: str | None = None, source_ae: str | None = None) -> None:
    """Put files through the spool and committer (the path C-STORE uses), marked as
    owned by ``owner_group`` or as sent by ``source_ae``; returns once they are committed."""
    spool = server.committer.spool
    for path in paths:
        data = path.read_bytes()
        meta, start = split_part10(data)
        mark_owner_group(meta, owner_group)
        if source_ae:
            meta.SourceApplicationEntityTitle = source_ae
        head = BytesIO()
        head.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(head, meta, enforce_standard=True)
        spooled = spool.write([head.getvalue(), data[start:]])
        server.committer.submit(spooled, None)
    assert server.committer.wait_idle(TIMEOUT_S)


# -- Cognito stand-in --------------------------------------------------------------------

REGION = "eu-west-1"
POOL = "eu-west-1_TestPool1"
CLIENT_ID = "l3net-viewer-client"
ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{POOL}"


class Keys:
    """An RSA key pair, its JWKS, and tokens signed with it."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def token(self, groups: list[str] | None = None, **overrides) -> str:
        """A Cognito-shaped access token; ``overrides`` replace or (with None) drop claims."""
        now = int(time.time())
        claims = {
            "sub": f"user-{uuid.uuid4().hex[:8]}", "iss": ISSUER, "client_id": CLIENT_ID, "token_use": "access",
            "scope": "openid", "auth_time": now, "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex,
            "username": "tester",
        }
        if groups is not None:
            claims["cognito:groups"] = groups
        for name, value in overrides.items():
            name = name.replace("cognito_groups", "cognito:groups")
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid})


@contextmanager
def jwks_server(keys: Keys) -> Iterator[str]:
    """The JWKS JSON over HTTP on 127.0.0.1 (a free port); yields its URL. Counts fetches."""
    body = json.dumps(keys.jwks).encode()
    fetches = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            fetches.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer((HOST, 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://{HOST}:{httpd.server_address[1]}/.well-known/jwks.json"
        jwks_server.fetches = fetches  # type: ignore[attr-defined]
        yield url
    finally:
        httpd.shutdown()
        httpd.server_close()
