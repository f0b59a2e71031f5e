"""Shared fixtures: ``app`` on a fresh database per run, ``client``, ``db_session``, factories.

SQLite by default; when ``TEST_DATABASE_URL`` points at PostgreSQL the run creates its own
fresh database there (dropped afterwards), so concurrent runs never see each other's data.
Tests are isolated by emptying every table after each test rather than by a rolled-back
transaction, because concurrency tests (many threads, real commits) must see real commits.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lms_plugin import create_app
from lms_plugin.accounts import services as accounts
from lms_plugin.accounts.models import Organisation, User
from lms_plugin.extensions import db as _db
from lms_plugin.extensions import limiter

PASSWORD = "correct horse battery staple"

# argon2 at full cost takes most of a second per hash: the suite hashes with the cheap
# profile (LMS_PASSWORD_HASH_PROFILE, refused in production). Set in the environment so the
# apps and the command-line subprocesses tests start get it too.
os.environ.setdefault("LMS_PASSWORD_HASH_PROFILE", "fast")


def _fresh_postgres(url: str) -> tuple[str, Callable[[], None]]:
    base = make_url(url).set(drivername="postgresql+psycopg")
    name = f"lms_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
            ), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if url.startswith("postgres"):
        fresh, drop = _fresh_postgres(url)
        yield fresh
        drop()
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def app(database_url: str, tmp_path_factory) -> Iterator[Flask]:
    app = create_app({
        "TESTING": True,
        "LMS_ENV": "testing",
        "SECRET_KEY": "test-secret-key-that-is-long-enough-for-tests",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "LMS_BASE_URL": "http://tool.test",
        "WTF_CSRF_ENABLED": True,
        # Redis when the run has it (CI's second run), under a prefix of this run only.
        "RATELIMIT_STORAGE_URI": os.environ.get("REDIS_URL") or "lmsdb://",
        "RATELIMIT_KEY_PREFIX": f"lms-test-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        "SERVER_NAME": None,
        # The file mail backend (the default) writes here, never under the source tree.
        "MAIL_FILE_DIR": str(tmp_path_factory.mktemp("mail")),
    })
    with app.app_context():
        _db.create_all()
    yield app
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


def _empty_all_tables() -> None:
    _db.session.rollback()
    engine = _db.engine
    tables = list(reversed(_db.metadata.sorted_tables))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())


@pytest.fixture(autouse=True)
def _clean(app: Flask) -> Iterator[None]:
    # Server-side sessions in Redis are keyed by user id, which restarts with every test.
    prefix = app.config["SESSION_STORE_PREFIX"] = f"lms-test:{uuid.uuid4().hex}:session:"
    with app.app_context():
        limiter.reset()
    # flask-limiter's Limiter is one global object, and create_app() rebinds its storage to
    # the new app's settings: a test that builds another app (a second process, a fresh
    # database, the demo's live server) left this session's app counting in that other
    # store, so the throttling tests passed or failed by test order. Put it back after.
    storage, strategy = limiter._storage, limiter._limiter
    yield
    limiter._storage, limiter._limiter = storage, strategy
    with app.app_context():
        _empty_all_tables()
        _db.session.remove()
    if app.config.get("REDIS_URL"):
        import redis

        client = redis.Redis.from_url(app.config["REDIS_URL"])
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()


@pytest.fixture
def db_session(app: Flask):
    with app.app_context():
        yield _db.session
        _db.session.rollback()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Factory:
    """Builds committed rows for tests through the real services."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def organisation(self, name: str = "General Hospital") -> int:
        with self.app.app_context():
            org = accounts.get_or_create_organisation(name)
            _db.session.commit()
            return org.id

    def user(self, *roles: str, email: str | None = None, org: str = "General Hospital",
             password: str = PASSWORD) -> int:
        with self.app.app_context():
            organisation = accounts.get_or_create_organisation(org)
            email = email or f"{'-'.join(roles) or 'person'}-{uuid.uuid4().hex[:6]}@example.org"
            user = accounts.create_local_user(organisation, email, email.split("@")[0],
                                              password, roles=roles)
            _db.session.commit()
            return user.id

    def email_of(self, user_id: int) -> str:
        with self.app.app_context():
            return _db.session.get(User, user_id).email

    def org_of(self, user_id: int) -> Organisation:
        with self.app.app_context():
            return _db.session.get(User, user_id).organisation_id


@pytest.fixture
def factory(app: Flask) -> Factory:
    return Factory(app)


def csrf_token(client: FlaskClient, path: str = "/auth/login") -> str:
    """Fetch a page that renders a form and read its CSRF token (tests keep CSRF on)."""
    import re

    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: FlaskClient, email: str, password: str = PASSWORD):
    token = csrf_token(client)
    return client.post("/auth/login", data={"email": email, "password": password,
                                            "csrf_token": token})


@pytest.fixture
def login_as(client: FlaskClient, factory: Factory) -> Callable[..., int]:
    """Create a user with these roles, sign them in on ``client``, return their id."""

    def _login(*roles: str, org: str = "General Hospital") -> int:
        user_id = factory.user(*roles, org=org)
        response = login(client, factory.email_of(user_id))
        assert response.status_code == 302, response.get_data(as_text=True)
        return user_id

    return _login
