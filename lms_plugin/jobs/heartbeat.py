"""Worker heartbeats: is anything sending the outbox? (issue 12, item 2)

Under ``make run`` no worker used to run, so grades stayed pending forever and nothing said
so. Every worker (the one ``lms-plugin run`` embeds, ``lms-plugin worker`` with or without
Redis, and ``--once`` from cron) now refreshes a ``worker_heartbeat`` row every few seconds;
:func:`status` reads the newest one beside the count of due jobs, for ``/admin/jobs`` and
``/healthz``. The database, not Redis, holds the beats so all three supported
configurations answer the same way.

Services here flush; the worker loop (an edge) commits.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.jobs.models import PENDING, OutboxJob, WorkerHeartbeat

#: Default of ``LMS_WORKER_STALE`` when the app config has none (tests build their own).
DEFAULT_STALE = timedelta(minutes=3)
#: Rows of workers silent this long are deleted by the next beat (restarted dev servers).
FORGET_AFTER = timedelta(days=7)
#: Due jobs are counted up to this many (the count is shown, never used to decide more).
COUNT_CAP = 10_000


def stale_after() -> timedelta:
    """``LMS_WORKER_STALE``: silence after which a worker no longer counts as running."""
    value = current_app.config.get("LMS_WORKER_STALE")
    return value if isinstance(value, timedelta) else DEFAULT_STALE


def beat_interval() -> float:
    """Seconds between two beats of one worker: a quarter of the stale limit, 1-30 s, so
    a live worker is never mistaken for a dead one between two beats."""
    return max(1.0, min(30.0, stale_after().total_seconds() / 4))


def beat(worker_id: str, kind: str, now: datetime | None = None) -> None:
    """Record that ``worker_id`` (of this host and process) is alive at ``now``; flushes.

    Insert or refresh in one statement (each worker id is written by one thread only);
    ``kind`` is ``embedded``, ``loop``, ``rq`` or ``once`` (see :class:`WorkerHeartbeat`).
    Also forgets workers silent for :data:`FORGET_AFTER`.
    """
    now = now or utcnow()
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(WorkerHeartbeat).values(
        worker_id=worker_id[:200], host=socket.gethostname()[:255], pid=os.getpid(),
        kind=kind[:20], started_at=now, last_seen=now)
    db.session.execute(stmt.on_conflict_do_update(
        index_elements=["worker_id"], set_={"last_seen": stmt.excluded.last_seen}))
    db.session.execute(delete(WorkerHeartbeat)
                       .where(WorkerHeartbeat.last_seen < now - FORGET_AFTER))
    db.session.flush()


@dataclass(frozen=True)
class WorkerStatus:
    """What ``/admin/jobs`` and ``/healthz`` say about the workers.

    ``last_seen``: newest beat of any worker (None: never); ``alive``: workers that beat
    within ``stale_after``; ``due``: pending jobs whose time has come (capped at
    :data:`COUNT_CAP`), of one organisation or of all.
    """

    now: datetime
    stale_after: timedelta
    last_seen: datetime | None
    alive: int
    due: int

    @property
    def running(self) -> bool:
        return self.alive > 0

    @property
    def warning(self) -> bool:
        """Jobs are waiting and nothing will send them: the case people must hear about."""
        return self.due > 0 and not self.running

    @property
    def silence(self) -> str:
        """How long no worker has been seen, in words ("7 minutes", "2 hours")."""
        if self.last_seen is None:
            return ""
        return _words(self.now - self.last_seen)

    @property
    def window(self) -> str:
        """``stale_after`` in words ("3 minutes")."""
        return _words(self.stale_after)

    def describe(self) -> str:
        """``ok`` | ``none seen for 7 minutes`` | ``never seen`` (the ``/healthz`` field)."""
        if self.running:
            return "ok"
        if self.last_seen is None:
            return "never seen"
        return f"none seen for {self.silence}"


def _words(span: timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def status(organisation_id: int | None = None, now: datetime | None = None) -> WorkerStatus:
    """The workers' state and the due jobs of ``organisation_id`` (None: every job).

    Two indexed reads (``worker_heartbeat.last_seen``, ``outbox_job (status,
    next_attempt_at)``); raises SQLAlchemy errors to the caller (``/healthz`` reports them).
    """
    now = now or utcnow()
    stale = stale_after()
    last_seen, alive = db.session.execute(select(
        func.max(WorkerHeartbeat.last_seen),
        func.count().filter(WorkerHeartbeat.last_seen >= now - stale),
    )).one()
    due_query = select(OutboxJob.id).where(OutboxJob.status == PENDING,
                                           OutboxJob.next_attempt_at <= now)
    if organisation_id is not None:
        due_query = due_query.where(OutboxJob.organisation_id == organisation_id)
    due = db.session.scalar(select(func.count()).select_from(
        due_query.limit(COUNT_CAP).subquery())) or 0
    if last_seen is not None and last_seen.tzinfo is None:  # times are UTC
        last_seen = last_seen.replace(tzinfo=UTC)
    return WorkerStatus(now=now, stale_after=stale, last_seen=last_seen, alive=alive or 0,
                        due=due)
