"""The outbox table (one row per piece of background work) and the periodic-schedule table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lms_plugin.db import utcnow
from lms_plugin.extensions import db

PENDING = "pending"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
SUPERSEDED = "superseded"
REJECTED = "rejected"
STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED, SUPERSEDED, REJECTED)
#: Final states a person can send again (from the admin page or ``lms-plugin outbox retry``).
RETRYABLE = (FAILED, REJECTED)


class OutboxJob(db.Model):
    """One piece of work the outside world must receive (a grade, a roster sync…).

    The table is the single source of truth: RQ, when used, only carries job ids; a job is
    run by whoever claims its row (``status`` pending → running under a row lock).
    """

    __tablename__ = "outbox_job"
    __table_args__ = (
        # "Due pending jobs": WHERE status = 'pending' AND next_attempt_at <= now.
        Index("ix_outbox_job_due", "status", "next_attempt_at"),
        # Coalescing ("only the newest matters") and per-key serialisation look-ups.
        Index("ix_outbox_job_coalesce", "coalesce_key", "status"),
        # The admin page: one organisation's jobs, most recently changed first, all of them
        # or of one status (keyset pagination on (updated_at, id); bounded counts by status).
        Index("ix_outbox_job_org_updated", "organisation_id", "updated_at", "id"),
        Index("ix_outbox_job_org_status_updated", "organisation_id", "status", "updated_at",
              "id"),
        # Pruning: finished jobs of a status older than LMS_JOB_KEEP.
        Index("ix_outbox_job_status_finished", "status", "finished_at"),
        CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'superseded', 'rejected')",
            name="status_known",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    coalesce_key: Mapped[str | None] = mapped_column(String(255))
    # When the event the job carries happened: orders jobs of one coalesce key, so an older
    # event never overwrites a newer one even when it is enqueued later.
    event_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    locked_by: Mapped[str | None] = mapped_column(String(200))
    locked_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]
    give_up_at: Mapped[datetime]

    @property
    def idempotency_key(self) -> str:
        """Stable per job across retries: lets a far end (or a test server) drop duplicates."""
        return f"outbox-{self.id}"


class JobSchedule(db.Model):
    """When each periodic job kind is next due; one row per kind.

    Workers advance ``next_run_at`` with a conditional UPDATE, so of several workers polling
    at once exactly one enqueues the periodic job for a given slot.
    """

    __tablename__ = "job_schedule"

    kind: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_run_at: Mapped[datetime]
    last_run_at: Mapped[datetime | None]


class WorkerHeartbeat(db.Model):
    """One row per worker process: who is sending the outbox, and when it was last alive.

    A worker refreshes ``last_seen`` every few seconds (``lms_plugin.jobs.heartbeat``); the
    admin's jobs page and ``/healthz`` read the newest one to say whether grades can leave
    the tool at all (issue 12: under ``make run`` no worker ran and nothing said so). Kept
    in the database rather than Redis so every configuration answers the same way.
    """

    __tablename__ = "worker_heartbeat"

    #: ``make_worker_id()``: host:pid:random, unique per process start.
    worker_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    #: ``embedded`` (beside ``lms-plugin run``), ``loop`` (``lms-plugin worker`` without
    #: Redis), ``rq`` (its dispatcher) or ``once`` (``lms-plugin worker --once``, e.g. cron).
    kind: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime]
    last_seen: Mapped[datetime] = mapped_column(index=True)
