"""A ``limits`` storage in the application's database (``lmsdb://``) for when Redis is absent.

Flask-Limiter ships in-memory storage only for that case, which is per process: with four
gunicorn workers a login limit of 5 became 20, and a restart forgot it. This backend keeps
every counted event as a row of ``rate_limit_hit`` so all processes share the counts, and it
supports the moving-window strategy the app uses (a burst straddling a minute boundary
cannot double the allowance). Events are few (failed sign-ins, registrations), so a row per
event is cheap. Each call runs on its own short connection and commits at once: limits are
bookkeeping beside the request's own transaction, not part of it.

Concurrency: two requests checking at the same instant may both pass the last free slot (no
lock is taken); a limit can thus be exceeded by the number of simultaneous requests, which is
acceptable for throttling and is the same as the memory storage across threads.
"""

from __future__ import annotations

import time

from limits.storage import MovingWindowSupport, Storage
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from lms_plugin.accounts.models import RateLimitHit
from lms_plugin.extensions import db

_T = RateLimitHit.__table__


class DatabaseStorage(Storage, MovingWindowSupport):
    """``RATELIMIT_STORAGE_URI = "lmsdb://"``: chosen by ``create_app`` when ``REDIS_URL`` is
    unset. Needs an application context (Flask-Limiter calls it inside requests)."""

    STORAGE_SCHEME = ["lmsdb"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 **options: float | str | bool) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def _live(self, key: str, now: float):
        return (_T.c.key == key) & (_T.c.expires_at > now)

    # --- fixed window (the base interface; the app itself uses the moving window) --------

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with db.engine.begin() as conn:
            window_end = conn.scalar(select(func.max(_T.c.expires_at))
                                     .where(self._live(key, now))) or now + expiry
            conn.execute(insert(_T), [{"key": key, "at": now, "expires_at": window_end}
                                      for _ in range(amount)])
            return conn.scalar(select(func.count()).where(self._live(key, now))) or 0

    def get(self, key: str) -> int:
        with db.engine.connect() as conn:
            return conn.scalar(select(func.count()).where(self._live(key, time.time()))) or 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        with db.engine.connect() as conn:
            return conn.scalar(select(func.max(_T.c.expires_at))
                               .where(self._live(key, now))) or now

    def check(self) -> bool:
        try:
            with db.engine.connect() as conn:
                conn.scalar(select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with db.engine.begin() as conn:
            # RETURNING, not rowcount (a driver may report -1: issue 9).
            return len(conn.execute(delete(_T).returning(_T.c.id)).all())

    def clear(self, key: str) -> None:
        with db.engine.begin() as conn:
            conn.execute(delete(_T).where(_T.c.key == key))

    # --- moving window -----------------------------------------------------------------

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = time.time()
        with db.engine.begin() as conn:
            # Expired events of this key go first (keeps the table small without a job).
            conn.execute(delete(_T).where(_T.c.key == key, _T.c.expires_at <= now))
            used = conn.scalar(select(func.count()).where(
                _T.c.key == key, _T.c.at > now - expiry)) or 0
            if used + amount > limit:
                return False
            conn.execute(insert(_T), [{"key": key, "at": now, "expires_at": now + expiry}
                                      for _ in range(amount)])
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest event in the window, events in the window), as ``limits``
        expects: the window frees its first slot at ``oldest + expiry``."""
        now = time.time()
        with db.engine.connect() as conn:
            oldest, count = conn.execute(
                select(func.min(_T.c.at), func.count())
                .where(_T.c.key == key, _T.c.at > now - expiry)).one()
        return (oldest, count) if count else (now, 0)


def prune(now: float | None = None) -> int:
    """Delete events past their expiry (keys never hit again keep theirs until this runs);
    called by the ``accounts.prune_expired`` scheduled job. Flushes; the job commits."""
    cutoff = time.time() if now is None else now
    return len(db.session.execute(
        delete(_T).where(_T.c.expires_at <= cutoff).returning(_T.c.id)).all())
