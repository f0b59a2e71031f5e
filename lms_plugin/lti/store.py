"""Short-lived LTI state (OIDC state, nonces, launch data): Redis when configured, else the DB.

pylti1p3's ``LaunchDataStorage`` interface plus :meth:`LtiStore.consume` (atomic
read-and-delete) and :meth:`LtiStore.claim` (atomic first write), which makes a nonce
single-use (pylti1p3 2.0.0 only checks that it exists, so a captured id_token could be posted
again; see :mod:`lms_plugin.lti.nonces`).

Keys are not bound to a pylti1p3 "session-id" cookie: the browser binding comes from the
state cookie, or from the platform's postMessage storage when third-party cookies are
blocked (then no cookie of ours reaches the launch at all). Nonces and states are random
128+-bit values, so a global key space is safe.
"""

from __future__ import annotations

import json
import typing as t
from datetime import datetime, timedelta

from flask import current_app
from pylti1p3.launch_data_storage.base import LaunchDataStorage
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.lti.models import LtiStoredValue

DEFAULT_TTL = 600  # OIDC state and nonces: ten minutes is ample for a login round trip
_redis_clients: dict[str, t.Any] = {}


def _redis(url: str):
    client = _redis_clients.get(url)
    if client is None:
        import redis

        client = _redis_clients[url] = redis.Redis.from_url(url)
    return client


class LtiStore(LaunchDataStorage[t.Any]):
    """Values are JSON; Redis keys carry a prefix so test runs and apps can share a server."""

    def __init__(self, redis_url: str | None = None, prefix: str = "lms:lti:") -> None:
        super().__init__()
        self._redis_url = redis_url
        self._key_prefix = prefix

    @classmethod
    def for_app(cls) -> LtiStore:
        config = current_app.config
        return cls(config.get("REDIS_URL"), config["LTI_STORE_PREFIX"])

    def get_session_cookie_name(self) -> str | None:
        return None

    def can_set_keys_expiration(self) -> bool:
        return True

    def _key(self, key: str) -> str:
        return self._key_prefix + self._prepare_key(key)

    def get_value(self, key: str) -> t.Any:
        full = self._key(key)
        if self._redis_url:
            raw = _redis(self._redis_url).get(full)
            return None if raw is None else json.loads(raw)
        row = db.session.get(LtiStoredValue, full)
        if row is None or row.expires_at <= utcnow():
            return None
        return json.loads(row.value)

    def set_value(self, key: str, value: t.Any, exp: int | None = None) -> None:
        full = self._key(key)
        ttl = int(exp or DEFAULT_TTL)
        raw = json.dumps(value)
        if self._redis_url:
            _redis(self._redis_url).set(full, raw, ex=ttl)
            return
        expires = utcnow() + timedelta(seconds=ttl)
        # One upsert statement (PostgreSQL and SQLite both have ON CONFLICT).
        dialect = db.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = insert(LtiStoredValue).values(key=full, value=raw, expires_at=expires)
        db.session.execute(stmt.on_conflict_do_update(
            index_elements=[LtiStoredValue.key],
            set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at}))

    def check_value(self, key: str) -> bool:
        return self.get_value(key) is not None

    def consume(self, key: str) -> bool:
        """Delete ``key`` and say whether it existed (unexpired): true for one caller only."""
        full = self._key(key)
        if self._redis_url:
            return _redis(self._redis_url).delete(full) == 1
        # DELETE … WHERE expires_at > now is atomic: two concurrent launches with the same
        # nonce cannot both delete the row (the second deletes nothing after the first
        # commits). RETURNING says which row went: ``rowcount`` is not trusted (issue 9).
        deleted = db.session.execute(
            delete(LtiStoredValue).where(LtiStoredValue.key == full,
                                         LtiStoredValue.expires_at > utcnow())
            .returning(LtiStoredValue.key)
        ).first()
        return deleted is not None

    def claim(self, key: str, ttl: int) -> bool:
        """Record ``key`` for ``ttl`` seconds unless it is already there: true for one caller
        only (Redis ``SET NX``; in the database an insert that yields to an existing row)."""
        full = self._key(key)
        ttl = max(int(ttl), 1)
        if self._redis_url:
            return bool(_redis(self._redis_url).set(full, b"1", ex=ttl, nx=True))
        # Two concurrent launches inserting the same key: the second waits for the first's
        # transaction and then inserts nothing, so RETURNING gives it no row. ``rowcount``
        # is not used: SQLAlchemy 2.1 reports -1 for this INSERT on PostgreSQL (issue 9).
        dialect = db.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        inserted = db.session.execute(insert(LtiStoredValue).values(
            key=full, value="true", expires_at=utcnow() + timedelta(seconds=ttl),
        ).on_conflict_do_nothing(index_elements=[LtiStoredValue.key])
            .returning(LtiStoredValue.key)).first()
        return inserted is not None

    def delete(self, key: str) -> None:
        self.consume(key)


PURGE_BATCH = 1000


def purge_expired(now: datetime | None = None, limit: int | None = None) -> int:
    """Remove up to ``limit`` (default :data:`PURGE_BATCH`) expired rows (used nonces, OIDC
    state, launch data); how many (flush, no commit). Redis expires its keys itself. Rows
    are chosen through the ``expires_at`` index and deleted by key, so a batch locks only
    its own rows; the scheduled ``lti.purge_state`` job calls it in batches
    (``lti/tasks.py``)."""
    chosen = select(LtiStoredValue.key).where(
        LtiStoredValue.expires_at <= (now or utcnow())).limit(limit or PURGE_BATCH)
    if db.session.get_bind().dialect.name == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    keys = list(db.session.scalars(chosen))
    if not keys:
        return 0
    # RETURNING, not rowcount: some drivers report -1 for a DELETE's row count.
    return len(db.session.execute(
        delete(LtiStoredValue).where(LtiStoredValue.key.in_(keys))
        .returning(LtiStoredValue.key),
        execution_options={"synchronize_session": False}).scalars().all())

