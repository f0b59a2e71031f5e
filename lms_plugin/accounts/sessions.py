"""Server-side session records: revocable sign-ins with an idle timeout and an absolute lifetime.

Flask keeps the session *data* in its signed cookie as before; what this module adds is the
authority on whether that cookie still signs anyone in. A sign-in creates a record keyed by
the SHA-256 of a random session id (the id travels in the cookie, only its hash is stored);
every request that needs the person checks the record, so:

- logout deletes the record: a copied cookie is dead at once (it lived 31 days before);
- an admin's ``users sign-out`` and a password change delete all of a person's records;
- a record unused for ``LMS_SESSION_IDLE`` (default 30 minutes, shared ward workstations)
  or older than ``LMS_SESSION_MAX`` (default 12 hours) no longer signs anyone in.

Records live in Redis when ``REDIS_URL`` is set (keys expire by themselves), else in the
``user_session`` table (pruned by the ``accounts.prune_sessions`` scheduled job).

Why not Flask-Session: it keys sessions by id only (no index by person, so "sign this person
out everywhere" would scan every session), has an idle timeout but no absolute lifetime, its
SQLAlchemy backend creates its own table outside our migrations, and it rewrites the whole
session on every modification - a write on the LTI launch hot path and on most requests.
Here a request costs one primary-key read (Redis ``HMGET`` or one ``SELECT``) and a write at
most once per ``TOUCH_EVERY``; a sign-in or an LTI launch costs one write (one statement, or
one Redis pipeline), which also ends the browser's previous session.
"""

from __future__ import annotations

import hashlib
import secrets
import typing as t
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import delete, insert, or_, select, update

from lms_plugin.accounts.models import UserSession
from lms_plugin.db import utcnow
from lms_plugin.extensions import db

#: How stale ``last_seen`` may get before a request refreshes it: the idle timeout is thus
#: exact to within this much, and a busy person costs one write a minute, not one a request.
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class SessionPolicy:
    """``idle``: longest gap between requests; ``maximum``: longest life from sign-in."""

    idle: timedelta
    maximum: timedelta

    @classmethod
    def for_app(cls) -> SessionPolicy:
        config = current_app.config
        return cls(config["LMS_SESSION_IDLE"], config["LMS_SESSION_MAX"])

    def alive(self, created: datetime, last_seen: datetime, now: datetime) -> bool:
        return now - last_seen < self.idle and now - created < self.maximum


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class DbSessionStore:
    """Records in ``user_session``, read and written in the caller's transaction (the edge
    commits: the login and the launch commit anyway), except :meth:`check`'s touch, which
    commits on its own short connection because most requests that check never commit."""

    def create(self, user_id: int, now: datetime, replacing: str | None = None) -> str:
        """One statement: the browser's previous record (``replacing``, whoever it signed
        in) becomes the new one under a new id - an UPDATE by primary key - or, when there
        is none, an INSERT. The previous id is dead either way."""
        sid = secrets.token_urlsafe(32)
        values = {"id": _digest(sid), "user_id": user_id, "created_at": now,
                  "last_seen_at": now}
        if replacing:
            # RETURNING, not rowcount (a driver may report -1: issue 9).
            moved = db.session.execute(
                update(UserSession).where(UserSession.id == _digest(replacing)).values(values)
                .returning(UserSession.id),
                execution_options={"synchronize_session": False}).first()
            if moved is not None:
                return sid
        db.session.execute(insert(UserSession).values(values))
        return sid

    def check(self, sid: str, user_id: int, now: datetime, policy: SessionPolicy) -> bool:
        key = _digest(sid)
        row = db.session.execute(
            select(UserSession.user_id, UserSession.created_at, UserSession.last_seen_at)
            .where(UserSession.id == key)
        ).first()
        if row is None or row.user_id != user_id:
            return False
        if not policy.alive(row.created_at, row.last_seen_at, now):
            return False
        if now - row.last_seen_at >= TOUCH_EVERY:
            with db.engine.begin() as conn:
                conn.execute(update(UserSession).where(UserSession.id == key)
                             .values(last_seen_at=now))
        return True

    def revoke(self, sid: str) -> None:
        db.session.execute(delete(UserSession).where(UserSession.id == _digest(sid)))

    def revoke_user(self, user_id: int, keep_sid: str | None = None) -> int:
        where = [UserSession.user_id == user_id]
        if keep_sid:
            where.append(UserSession.id != _digest(keep_sid))
        return len(db.session.execute(
            delete(UserSession).where(*where).returning(UserSession.id)).all())

    def count_for_user(self, user_id: int, now: datetime, policy: SessionPolicy) -> int:
        rows = db.session.execute(
            select(UserSession.created_at, UserSession.last_seen_at)
            .where(UserSession.user_id == user_id)).all()
        return sum(policy.alive(r.created_at, r.last_seen_at, now) for r in rows)

    def prune(self, now: datetime, policy: SessionPolicy) -> int:
        return len(db.session.execute(delete(UserSession).where(or_(
            UserSession.last_seen_at <= now - policy.idle,
            UserSession.created_at <= now - policy.maximum,
        )).returning(UserSession.id)).all())


class RedisSessionStore:
    """``<prefix>s:<hash>`` = {user, created, seen} (epoch seconds), expiring when the session
    can no longer be alive; ``<prefix>u:<user id>`` = the set of a person's hashes, for
    revocation. Expiry is also checked against our own clock, so Redis' TTL is only
    garbage collection."""

    _clients: t.ClassVar[dict[str, t.Any]] = {}  # one connection pool per URL and process

    def __init__(self, url: str, prefix: str) -> None:
        client = self._clients.get(url)
        if client is None:
            import redis

            client = self._clients[url] = redis.Redis.from_url(url)
        self.redis = client
        self.prefix = prefix

    def _ttl(self, created: float, seen: float, now: float, policy: SessionPolicy) -> int:
        end = min(seen + policy.idle.total_seconds(), created + policy.maximum.total_seconds())
        return max(int(end - now) + 1, 1)

    def create(self, user_id: int, now: datetime, replacing: str | None = None) -> str:
        """One round trip: the previous record of the browser (``replacing``) is deleted
        and the new one written in the same pipeline."""
        sid = secrets.token_urlsafe(32)
        key, ts = _digest(sid), now.timestamp()
        policy = SessionPolicy.for_app()
        pipe = self.redis.pipeline(transaction=False)
        if replacing:
            pipe.delete(self.prefix + "s:" + _digest(replacing))
        pipe.hset(self.prefix + "s:" + key, mapping={"user": user_id, "created": ts, "seen": ts})
        pipe.expire(self.prefix + "s:" + key, self._ttl(ts, ts, ts, policy))
        pipe.sadd(self.prefix + f"u:{user_id}", key)
        pipe.expire(self.prefix + f"u:{user_id}", int(policy.maximum.total_seconds()) + 60)
        pipe.execute()
        return sid

    def _read(self, key: str) -> tuple[int, float, float] | None:
        user, created, seen = self.redis.hmget(self.prefix + "s:" + key,
                                               ["user", "created", "seen"])
        if user is None or created is None or seen is None:
            return None
        return int(user), float(created), float(seen)

    def check(self, sid: str, user_id: int, now: datetime, policy: SessionPolicy) -> bool:
        key = _digest(sid)
        found = self._read(key)
        if found is None or found[0] != user_id:
            return False
        _, created, seen = found
        as_dt = lambda ts: datetime.fromtimestamp(ts, UTC)  # noqa: E731
        if not policy.alive(as_dt(created), as_dt(seen), now):
            return False
        ts = now.timestamp()
        if ts - seen >= TOUCH_EVERY.total_seconds():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(self.prefix + "s:" + key, "seen", ts)
            pipe.expire(self.prefix + "s:" + key, self._ttl(created, ts, ts, policy))
            pipe.execute()
        return True

    def revoke(self, sid: str) -> None:
        # One round trip (a relaunch ends the browser's previous session on the launch hot
        # path); the hash left in the person's set is skipped by every reader and expires.
        self.redis.delete(self.prefix + "s:" + _digest(sid))

    def revoke_user(self, user_id: int, keep_sid: str | None = None) -> int:
        keep = _digest(keep_sid) if keep_sid else None
        members = {m.decode() if isinstance(m, bytes) else m
                   for m in self.redis.smembers(self.prefix + f"u:{user_id}")}
        gone = [m for m in members if m != keep]
        if not gone:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for member in gone:
            pipe.delete(self.prefix + "s:" + member)
        pipe.srem(self.prefix + f"u:{user_id}", *gone)
        results = pipe.execute()
        return sum(int(r) for r in results[:len(gone)])

    def count_for_user(self, user_id: int, now: datetime, policy: SessionPolicy) -> int:
        count = 0
        for member in self.redis.smembers(self.prefix + f"u:{user_id}"):
            key = member.decode() if isinstance(member, bytes) else member
            found = self._read(key)
            if found and policy.alive(datetime.fromtimestamp(found[1], UTC),
                                      datetime.fromtimestamp(found[2], UTC), now):
                count += 1
        return count

    def prune(self, now: datetime, policy: SessionPolicy) -> int:
        return 0  # keys expire by themselves; a person's set expires with their last sign-in


SessionStore = DbSessionStore | RedisSessionStore


def store() -> SessionStore:
    """Redis when ``REDIS_URL`` is set, else the database (the app's three configurations)."""
    url = current_app.config.get("REDIS_URL")
    if url:
        return RedisSessionStore(url, current_app.config["SESSION_STORE_PREFIX"])
    return DbSessionStore()


# --- services (plain arguments; callers commit) ----------------------------------------


def start(user_id: int, now: datetime | None = None, replacing: str | None = None) -> str:
    """Record a new sign-in of ``user_id``; the session id to put in the cookie.

    ``replacing``: the session id the browser held before (any person's): it ends in the
    same single write, so a sign-in or relaunch never leaves the old cookie alive.
    """
    old = replacing if isinstance(replacing, str) and replacing else None
    return store().create(user_id, now or utcnow(), replacing=old)


def is_alive(sid: str | None, user_id: int, now: datetime | None = None) -> bool:
    """Whether the cookie's session id still signs ``user_id`` in (refreshing its idle time)."""
    if not sid or not isinstance(sid, str):
        return False
    return store().check(sid, user_id, now or utcnow(), SessionPolicy.for_app())


def end(sid: str | None) -> None:
    """End one session (logout). Unknown or missing ids are ignored."""
    if sid and isinstance(sid, str):
        store().revoke(sid)


def end_all(user_id: int, keep_sid: str | None = None) -> int:
    """End every session of a person, except ``keep_sid`` (the one changing the password);
    returns how many were ended."""
    return store().revoke_user(user_id, keep_sid)


def active_count(user_id: int, now: datetime | None = None) -> int:
    """How many live sessions a person has (admin pages, tests)."""
    return store().count_for_user(user_id, now or utcnow(), SessionPolicy.for_app())


def prune(now: datetime | None = None) -> int:
    """Delete expired records (idle or past the absolute lifetime); how many were deleted."""
    return store().prune(now or utcnow(), SessionPolicy.for_app())


__all__: t.Sequence[str] = ("start", "is_alive", "end", "end_all", "active_count", "prune",
                            "SessionPolicy", "TOUCH_EVERY")
