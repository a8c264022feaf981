"""Who is asking: Cognito access tokens (``L3NET_AUTH=cognito``) or nobody (``none``).

A request's :class:`Principal` comes from the :func:`principal` dependency. In Cognito
mode the Bearer token must be an RS256 *access* token of our user pool and app client,
not expired; its ``cognito:groups`` give the roles (``L3NET_ROLE_GROUPS`` says which
group grants which role) and the owning groups whose studies the user may see.
In ``none`` mode every request is an administrator; that mode only starts on loopback
(see :func:`check_exposure`).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Callable

import jwt
from fastapi import Depends, HTTPException, Request

from archive.settings import Settings

log = logging.getLogger("l3net.auth")

ROLES = ("viewer", "uploader", "admin")
# Keys a cached JWKS keeps before it is fetched again; an unknown kid refetches at once.
JWKS_CACHE_S = 3600


@dataclass(frozen=True)
class Principal:
    """The caller: subject, owning groups (non-role groups) and roles.

    ``primary_group`` is the first owning group in the token's ``cognito:groups``
    order: the owner of what this caller uploads."""

    subject: str
    groups: frozenset[str] = field(default_factory=frozenset)
    roles: frozenset[str] = field(default_factory=frozenset)
    primary_group: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def can(self, role: str) -> bool:
        """Admins may do everything; others need the role itself."""
        return self.is_admin or role in self.roles

    def owner_group(self, fallback: str | None) -> str | None:
        """The group that owns what this caller uploads (``fallback`` when it has none)."""
        return self.primary_group or fallback


class Unauthorized(HTTPException):
    """401 with the RFC 6750 challenge."""

    def __init__(self, detail: str) -> None:
        super().__init__(401, detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class NoAuth:
    """``L3NET_AUTH=none``: everyone is an administrator (loopback only)."""

    def authenticate(self, authorization: str | None) -> Principal:
        return Principal("anonymous", frozenset(), frozenset(ROLES))


class CognitoAuth:
    """Verifies Cognito access tokens against the pool's JWKS (fetched once, cached)."""

    def __init__(self, settings: Settings) -> None:
        missing = [name for name in ("cognito_user_pool_id", "cognito_client_id") if not getattr(settings, name)]
        if missing:
            raise ValueError(f"L3NET_AUTH=cognito needs {', '.join('L3NET_' + m.upper() for m in missing)}")
        self.issuer = settings.cognito_issuer
        self.client_id = settings.cognito_client_id
        self.role_of_group = {group: role for role, group in settings.role_groups.items() if role in ROLES}
        jwks_url = settings.cognito_jwks_url or f"{self.issuer}/.well-known/jwks.json"
        self.jwks = jwt.PyJWKClient(jwks_url, cache_jwk_set=True, lifespan=JWKS_CACHE_S, timeout=10)

    def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "Bearer token required", headers={"WWW-Authenticate": "Bearer"})
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthorized(f"malformed token: {error}") from None
        # Cognito signs with RS256 only; refusing anything else up front rules out
        # "alg: none" and HS256-with-the-public-key confusion whatever the JWKS holds.
        if header.get("alg") != "RS256":
            raise Unauthorized(f"token algorithm {header.get('alg')!r} is not accepted")
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as error:
            log.error("event=auth.jwks_unreachable error=%r", str(error))
            raise HTTPException(503, "cannot fetch the token signing keys") from None
        except jwt.PyJWTError as error:
            raise Unauthorized(f"unknown signing key: {error}") from None
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                issuer=self.issuer,
                # Cognito access tokens carry client_id instead of aud (checked below).
                options={"require": ["exp", "iss", "sub", "token_use", "client_id"], "verify_aud": False},
                leeway=30,
            )
        except jwt.PyJWTError as error:
            raise Unauthorized(f"invalid token: {error}") from None
        if claims.get("token_use") != "access":
            raise Unauthorized("not an access token")
        if claims.get("client_id") != self.client_id:
            raise Unauthorized("token issued to another client")
        listed = [str(group) for group in claims.get("cognito:groups") or []]
        roles = frozenset(self.role_of_group[g] for g in listed if g in self.role_of_group)
        owning = [g for g in listed if g not in self.role_of_group]
        return Principal(str(claims["sub"]), frozenset(owning), roles, owning[0] if owning else None)


Authenticator = NoAuth | CognitoAuth


def make_authenticator(settings: Settings) -> Authenticator:
    return CognitoAuth(settings) if settings.auth == "cognito" else NoAuth()


class InsecureExposure(RuntimeError):
    """``L3NET_AUTH=none`` on an address other machines can reach."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> None:
    """Refuse to serve without authorization on a non-loopback address, unless forced."""
    if settings.auth == "none" and not is_loopback(settings.http_host):
        if not settings.auth_allow_insecure:
            raise InsecureExposure(
                f"L3NET_AUTH=none on {settings.http_host}: anyone who reaches it could read and write every study. "
                "Use L3NET_AUTH=cognito, listen on 127.0.0.1, or force it with --allow-insecure-no-auth "
                "(L3NET_AUTH_ALLOW_INSECURE=true)."
            )
        log.warning("event=web.insecure host=%s: no authorization on a non-loopback address", settings.http_host)


def principal(request: Request) -> Principal:
    """Dependency: the authenticated caller (401 when the token does not verify)."""
    return request.app.state.web.authenticator.authenticate(request.headers.get("authorization"))


def require(role: str) -> Callable[..., Principal]:
    """Dependency factory: the caller, who must hold ``role`` (403 otherwise)."""

    def dependency(who: Principal = Depends(principal)) -> Principal:
        if not who.can(role):
            raise HTTPException(403, f"the {role} role is required")
        return who

    dependency.__name__ = f"require_{role}"
    return dependency
