"""Fixtures for LTI tests: a test platform with its JWKS on 127.0.0.1 and a launch helper."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from lms_plugin.accounts.models import RoleGrant, User
from lms_plugin.extensions import db
from lms_plugin.lti.models import (
    LtiContext,
    LtiIdentity,
    LtiMembership,
    LtiResourceLink,
)
from lms_plugin.lti.tool import platform_keys
from tests.lti.platform import CLAIM, KeyServer, TestPlatform, login_state, oidc_login


@pytest.fixture(scope="session")
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _lti_isolation(app) -> Iterator[None]:
    app.config["LTI_STORE_PREFIX"] = f"lms-test:{os.getpid()}:{uuid.uuid4().hex[:8]}:"
    platform_keys.clear()
    yield
    platform_keys.clear()


@pytest.fixture
def make_platform(app, key_server) -> Callable[..., TestPlatform]:
    def _make(issuer: str | None = None, client_id: str | None = None, *,
              register: bool = True, organisation: str = "General Hospital",
              **kwargs: Any) -> TestPlatform:
        name = f"p{uuid.uuid4().hex[:10]}"
        platform = TestPlatform(key_server, name, issuer or key_server.url(f"/{name}"),
                                client_id or f"client-{name}")
        if register:
            with app.app_context():
                platform.platform_id = platform.register(organisation, **kwargs)
        return platform

    return _make


@pytest.fixture
def moodle(make_platform) -> TestPlatform:
    return make_platform()


class Launcher:
    """Runs login + launch as a browser (the Flask test client keeps cookies)."""

    def __init__(self, app) -> None:
        self.app = app

    def login(self, client, platform: TestPlatform, **params: str):
        return login_state(oidc_login(client, platform, **params))

    def launch(self, client, platform: TestPlatform, claims: dict[str, Any] | None = None, *,
               drop: tuple[str, ...] = (), sign: dict[str, Any] | None = None,
               state: str | None = None, sub: str = "user-1", roles: list[str] | None = None):
        """Full login + launch. ``claims`` override the body; a key ``lti:x`` means the LTI
        claim ``https://purl.imsglobal.org/spec/lti/claim/x``; ``drop`` removes claims."""
        login = self.login(client, platform)
        body = platform.claims(login.nonce, sub=sub, roles=roles)
        for key, value in (claims or {}).items():
            body[expand(key)] = value
        for key in drop:
            body.pop(expand(key), None)
        token = platform.sign(body, **(sign or {}))
        return client.post("/lti/launch", data={"id_token": token,
                                                "state": login.state if state is None else state})


def expand(key: str) -> str:
    return CLAIM + key[4:] if key.startswith("lti:") else key


@pytest.fixture
def launcher(app) -> Launcher:
    return Launcher(app)


@pytest.fixture
def count_rows(app) -> Callable[[], dict[str, int]]:
    """Rows a launch may create: a refused launch must leave every count unchanged."""

    def _count() -> dict[str, int]:
        with app.app_context():
            counts = {model.__name__: db.session.scalar(select(func.count()).select_from(model))
                      for model in (User, RoleGrant, LtiIdentity, LtiContext, LtiResourceLink,
                                    LtiMembership)}
            db.session.remove()
            return counts

    return _count
