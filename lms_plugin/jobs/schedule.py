"""Periodic jobs (roster sync, reminders…): a small registry of (kind, interval).

Each worker loop calls :func:`enqueue_due` on every poll. A ``job_schedule`` row per kind
holds when it is next due; advancing it is a conditional UPDATE, so when several workers
poll at once exactly one of them enqueues the job for that slot. The enqueued job also
carries the coalesce key ``schedule:<kind>``, so a slow run is never stacked twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.jobs.models import JobSchedule
from lms_plugin.jobs.outbox import enqueue
from lms_plugin.jobs.registry import discover_handlers


@dataclass(frozen=True)
class Periodic:
    kind: str
    interval: timedelta
    payload: dict[str, Any] = field(default_factory=dict)


_PERIODIC: dict[str, Periodic] = {}


def every(kind: str, interval: timedelta, payload: dict[str, Any] | None = None) -> Periodic:
    """Run jobs of ``kind`` (a registered handler) every ``interval``; call from ``tasks.py``.

    The handler of a periodic kind usually fans out: e.g. "nrps.sync_all" enqueues one
    roster-sync job per course context, each with its own coalesce key.
    """
    if interval.total_seconds() <= 0:
        raise ValueError("a periodic job needs a positive interval")
    entry = Periodic(kind, interval, dict(payload or {}))
    _PERIODIC[kind] = entry
    return entry


def cancel(kind: str) -> None:
    """Forget a periodic kind (its row stays; it simply stops being enqueued)."""
    _PERIODIC.pop(kind, None)


def periodic_jobs() -> list[Periodic]:
    return sorted(_PERIODIC.values(), key=lambda p: p.kind)


def _insert_ignore(kind: str, next_run_at: datetime) -> None:
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    db.session.execute(
        insert(JobSchedule).values(kind=kind, next_run_at=next_run_at)
        .on_conflict_do_nothing(index_elements=["kind"])
    )


def enqueue_due(now: datetime | None = None) -> list[str]:
    """Enqueue each periodic kind whose time has come; the kinds enqueued. Commits."""
    discover_handlers()
    now = now or utcnow()
    enqueued = []
    for entry in periodic_jobs():
        db.session.rollback()
        _insert_ignore(entry.kind, now)  # first sight of a kind: due at once
        # RETURNING names the row this worker advanced (none when another worker got there
        # first); ``rowcount`` is not trusted, a driver may report -1 (issue 9).
        advanced = db.session.execute(
            update(JobSchedule)
            .where(JobSchedule.kind == entry.kind, JobSchedule.next_run_at <= now)
            .values(next_run_at=now + entry.interval, last_run_at=now)
            .returning(JobSchedule.kind),
            execution_options={"synchronize_session": False},
        ).first()
        if advanced is not None:
            enqueue(entry.kind, entry.payload, coalesce_key=f"schedule:{entry.kind}",
                             now=now)
            enqueued.append(entry.kind)
        db.session.commit()
    return enqueued
