"""cognito-local (viewer/node_modules, pinned 5.3.0) as a subprocess on a free loopback
port, with its state in a temporary folder, provisioned with boto3: one user pool, a
public app client for the viewer (authorization code + PKCE, callback and sign-out URLs
on the viewer's origin), the role groups, a site group, and users.

Its tokens carry ``iss = {IssuerDomain}/{pool}``; the IssuerDomain is set to the AWS
form (``https://cognito-idp.{region}.amazonaws.com``), so the server checks them
exactly as it checks real Cognito tokens, and fetches the keys from this emulator
(``L3NET_COGNITO_JWKS_URL``)."""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import boto3
import pytest

from tests.conftest import REPO, free_port, require_tool
from tests.viewer.stack import stop, wait_until_healthy

HOST = "127.0.0.1"
REGION = "eu-west-1"
COGNITO_LOCAL = REPO / "viewer" / "node_modules" / "cognito-local" / "lib" / "bin" / "start.js"
ROLE_GROUPS = ("viewer", "uploader", "admin")
SITE_GROUP = "radiology-a"


@dataclass(frozen=True)
class User:
    username: str  # the e-mail address (the pool signs in by e-mail, as cognito-local's default pool does)
    password: str
    groups: tuple[str, ...]


# Who the tests log in as: a reader (viewer role) and an uploader, both of the site
# group that owns the studies the node receives (L3NET_OWNER_GROUPS_BY_AE).
READER = User("reader@example.org", "Reader-pass-1", ("viewer", SITE_GROUP))
UPLOADER = User("uploader@example.org", "Uploader-pass-1", (SITE_GROUP, "viewer", "uploader"))


@dataclass
class LocalCognito:
    url: str
    pool_id: str
    client_id: str
    process: subprocess.Popen
    log: Path
    users: dict[str, User] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{REGION}.amazonaws.com/{self.pool_id}"

    def client(self):
        return idp_client(self.url)

    def server_env(self) -> dict[str, str]:
        """The L3NET_* settings that point ``l3net serve`` at this pool."""
        return {
            "L3NET_AUTH": "cognito",
            "L3NET_COGNITO_REGION": REGION,
            "L3NET_COGNITO_USER_POOL_ID": self.pool_id,
            "L3NET_COGNITO_CLIENT_ID": self.client_id,
            "L3NET_COGNITO_JWKS_URL": f"{self.url}/{self.pool_id}/.well-known/jwks.json",
            "L3NET_COGNITO_AUTHORITY": f"{self.url}/{self.pool_id}",
            "L3NET_COGNITO_DOMAIN": self.url,
        }

    def add_user(self, user: User) -> None:
        idp = self.client()
        idp.admin_create_user(
            UserPoolId=self.pool_id,
            Username=user.username,
            TemporaryPassword="Temporary-pass-1",
            MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": user.username}, {"Name": "email_verified", "Value": "true"}],
        )
        idp.admin_set_user_password(UserPoolId=self.pool_id, Username=user.username, Password=user.password, Permanent=True)
        for group in user.groups:
            idp.admin_add_user_to_group(UserPoolId=self.pool_id, Username=user.username, GroupName=group)
        self.users[user.username] = user

    def access_token(self, user: User) -> str:
        """An access token for ``user`` without the browser (AdminInitiateAuth)."""
        answer = self.client().admin_initiate_auth(
            UserPoolId=self.pool_id,
            ClientId=self.client_id,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": user.username, "PASSWORD": user.password},
        )
        return answer["AuthenticationResult"]["AccessToken"]


def idp_client(url: str):
    return boto3.client(
        "cognito-idp", endpoint_url=url, region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local"
    )


def require_cognito_local() -> None:
    require_tool("node")
    if not COGNITO_LOCAL.is_file():
        pytest.fail("viewer/node_modules/cognito-local is missing: run `make test` (npm ci in viewer/)")


@contextmanager
def running_cognito(state_dir: Path, viewer_url: str, users: tuple[User, ...] = (READER, UPLOADER)) -> Iterator[LocalCognito]:
    """cognito-local on a free port of 127.0.0.1 with its state in ``state_dir``, one pool
    whose viewer client calls back to ``viewer_url``, the groups and ``users``."""
    require_cognito_local()
    port = free_port()
    (state_dir / ".cognito").mkdir(parents=True, exist_ok=True)
    # Tokens then carry the issuer the server derives from L3NET_COGNITO_REGION and the pool.
    config = {"TokenConfig": {"IssuerDomain": f"https://cognito-idp.{REGION}.amazonaws.com"}}
    (state_dir / ".cognito" / "config.json").write_text(json.dumps(config))
    log = state_dir / "cognito-local.log"
    env = {**os.environ, "HOST": HOST, "PORT": str(port)}
    env.pop("COGNITO_LOCAL_DEVMODE", None)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["node", str(COGNITO_LOCAL)], cwd=state_dir, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://{HOST}:{port}"
    try:
        wait_until_healthy(process, url + "/health", log, "cognito-local", timeout=30)
        idp = idp_client(url)
        pool_id = idp.create_user_pool(PoolName="l3net")["UserPool"]["Id"]
        client_id = idp.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName="viewer",
            GenerateSecret=False,
            AllowedOAuthFlows=["code"],
            AllowedOAuthScopes=["openid", "email", "profile"],
            AllowedOAuthFlowsUserPoolClient=True,
            SupportedIdentityProviders=["COGNITO"],
            CallbackURLs=[f"{viewer_url}/callback"],
            LogoutURLs=[f"{viewer_url}/"],
            ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]
        for group in (*ROLE_GROUPS, SITE_GROUP):
            idp.create_group(UserPoolId=pool_id, GroupName=group)
        cognito = LocalCognito(url, pool_id, client_id, process, log)
        for user in users:
            cognito.add_user(user)
        yield cognito
    finally:
        stop(process, timeout=10)
