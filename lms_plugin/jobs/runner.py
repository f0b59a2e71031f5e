"""The runner: the committing edge of the outbox (like a view), built on one "due job" rule.

It claims due jobs with row locking, runs each registered handler in its own transaction and
records the outcome (succeeded, retry with backoff, rejected, superseded, failed). Used by
the in-process worker loop and by RQ (``jobs.worker``).
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.orm import aliased

from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.jobs.models import (
    FAILED,
    PENDING,
    REJECTED,
    RUNNING,
    SUCCEEDED,
    SUPERSEDED,
    OutboxJob,
)
from lms_plugin.jobs.outbox import is_postgres, newer_job_id, setting
from lms_plugin.jobs.registry import (
    _HANDLERS,
    JobContext,
    PermanentFailure,
    RetryLater,
    Superseded,
    discover_handlers,
)

log = logging.getLogger(__name__)


def lease_cutoff(now: datetime) -> datetime:
    """A running job claimed before this time has lost its lease (``LMS_JOB_LEASE``)."""
    return now - timedelta(seconds=setting("LMS_JOB_LEASE"))


def due_rule(now: datetime) -> ColumnElement[bool]:
    """The one "due job" rule, used by the claim and by the RQ dispatcher: pending with its
    next attempt at or before ``now``, or running under an expired lease (its worker died,
    see :func:`lease_cutoff`)."""
    return or_(
        and_(OutboxJob.status == PENDING, OutboxJob.next_attempt_at <= now),
        and_(OutboxJob.status == RUNNING, OutboxJob.locked_at < lease_cutoff(now)),
    )


@dataclass
class RunReport:
    """What one ``run_due_jobs`` pass did: claimed count and outcome per status."""

    claimed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    job_ids: list[int] = field(default_factory=list)


def backoff_delay(attempts: int, *, rng: random.Random | None = None,
                  base: float | None = None, cap: float | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(n-1))].

    Full jitter spreads the retries of many jobs failing together (a platform outage) so
    they do not return as one wave.
    """
    base = setting("LMS_JOB_BACKOFF_BASE") if base is None else base
    cap = setting("LMS_JOB_BACKOFF_CAP") if cap is None else cap
    ceiling = min(cap, base * (2 ** max(attempts - 1, 0)))
    return (rng or random).uniform(0, ceiling)


def _claim(worker_id: str, limit: int, now: datetime, job_id: int | None = None) -> list[int]:
    """Move up to ``limit`` due jobs to running for this worker, atomically; their ids.

    PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` inside the UPDATE, so concurrent workers
    take disjoint rows without waiting. SQLite serialises writers; the UPDATE's own
    ``status`` condition makes the claim atomic there. A job left running by a dead worker
    is due again once its lease has expired. Jobs of one coalesce key run one at a time.
    """
    job = OutboxJob
    other = aliased(OutboxJob)
    due = due_rule(now)
    key_busy = exists().where(
        other.coalesce_key == job.coalesce_key, other.id != job.id,
        other.status == RUNNING, other.locked_at >= lease_cutoff(now),
    )
    candidates = select(job.id).where(due, ~key_busy)
    if job_id is not None:
        candidates = candidates.where(job.id == job_id)
    candidates = candidates.order_by(job.next_attempt_at, job.id).limit(limit)
    if is_postgres():
        # Lock first, in its own statement: inside ``UPDATE … WHERE id IN (subquery)`` the
        # planner may rescan the subquery per row, and its LIMIT then no longer limits.
        ids = list(db.session.scalars(candidates.with_for_update(skip_locked=True, of=job)))
        if not ids:
            db.session.commit()
            return []
        chosen = job.id.in_(ids)
    else:
        chosen = job.id.in_(candidates.scalar_subquery())
    claimed = db.session.execute(
        update(job)
        .where(chosen, due)
        .values(status=RUNNING, locked_by=worker_id, locked_at=now,
                attempts=job.attempts + 1, updated_at=now)
        .returning(job.id),
        execution_options={"synchronize_session": False},
    ).scalars().all()
    db.session.commit()
    return sorted(claimed)


def _settle(job_id: int, worker_id: str, now: datetime, **values: Any) -> bool:
    """Record an outcome if this worker still holds the job (its lease was not taken over)."""
    # RETURNING, not ``rowcount`` (a driver may report -1): did this UPDATE change the row?
    settled = db.session.execute(
        update(OutboxJob)
        .where(OutboxJob.id == job_id, OutboxJob.status == RUNNING,
               OutboxJob.locked_by == worker_id)
        .values(updated_at=now, **values)
        .returning(OutboxJob.id),
        execution_options={"synchronize_session": False},
    ).first()
    if settled is None:
        log.warning("job #%s: lease lost before its outcome was recorded (%s)", job_id, values)
        return False
    return True


def _execute(job_id: int, worker_id: str, now: datetime, rng: random.Random | None) -> str:
    """Run one claimed job in its own transaction and record the outcome; the new status."""
    job = db.session.get(OutboxJob, job_id, populate_existing=True)
    if job is None or job.status != RUNNING or job.locked_by != worker_id:
        db.session.rollback()
        return "lost"
    if job.coalesce_key is not None:
        newer = newer_job_id(job)
        if newer is not None:
            settled = _settle(job_id, worker_id, now, status=SUPERSEDED, finished_at=now,
                              locked_by=None, locked_at=None,
                              last_error=f"superseded: job #{newer} carries a newer event")
            db.session.commit()
            return SUPERSEDED if settled else "lost"
    context = JobContext(job_id=job.id, kind=job.kind, organisation_id=job.organisation_id,
                         attempt=job.attempts, event_at=job.event_at, now=now,
                         worker_id=worker_id)
    payload = json.loads(json.dumps(job.payload))  # the handler cannot mutate the row
    attempts, give_up_at, kind = job.attempts, job.give_up_at, job.kind
    handler = _HANDLERS.get(kind)
    retry: RetryLater | None = None
    try:
        if handler is None:
            raise RetryLater(f"no handler is registered for job kind {kind!r}")
        handler(payload, context)
    except RetryLater as exc:
        retry = exc
    except (Superseded, PermanentFailure) as exc:
        # Final outcomes decided by the handler: undo its writes, record why, never retry.
        status = SUPERSEDED if isinstance(exc, Superseded) else REJECTED
        db.session.rollback()
        settled = _settle(job_id, worker_id, now, status=status, finished_at=now,
                          locked_by=None, locked_at=None,
                          last_error=_trim(f"{status}: {exc.reason}"))
        db.session.commit()
        return status if settled else "lost"
    except Exception as exc:
        log.exception("job #%s (%s) raised; it will be retried", job_id, kind)
        retry = RetryLater(f"{type(exc).__name__}: {exc}")
    else:
        if not _settle(job_id, worker_id, now, status=SUCCEEDED, finished_at=now,
                       locked_by=None, locked_at=None, last_error=None):
            # Another worker holds the job now and will run it: its run's writes count,
            # not these (they would be applied twice).
            db.session.rollback()
            return "lost"
        db.session.commit()
        return SUCCEEDED

    db.session.rollback()  # nothing the handler wrote survives a failed attempt
    if now >= give_up_at:
        settled = _settle(job_id, worker_id, now, status=FAILED, finished_at=now,
                          locked_by=None, locked_at=None,
                          last_error=_trim(f"gave up after {attempts} attempts: {retry.reason}"))
        db.session.commit()
        return FAILED if settled else "lost"
    if retry.after_seconds is not None:
        delay = max(float(retry.after_seconds), 0.0)
    else:
        delay = backoff_delay(attempts, rng=rng)
    # The last try happens at the give-up time rather than never.
    next_at = min(now + timedelta(seconds=delay), give_up_at)
    settled = _settle(job_id, worker_id, now, status=PENDING, next_attempt_at=next_at,
                      locked_by=None, locked_at=None, last_error=_trim(retry.reason))
    db.session.commit()
    return PENDING if settled else "lost"


def _trim(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_due_jobs(worker_id: str, limit: int = 50, now: datetime | None = None, *,
                 rng: random.Random | None = None) -> RunReport:
    """Claim up to ``limit`` due jobs and run each in its own transaction.

    Commits (it is an edge, like a view). Safe to call from many workers at once: a job is
    claimed by exactly one of them.
    """
    discover_handlers()
    now = now or utcnow()
    report = RunReport()
    db.session.rollback()  # start from a clean transaction: the claim must see fresh rows
    ids = _claim(worker_id, limit, now)
    report.claimed = len(ids)
    report.job_ids = ids
    for job_id in ids:
        report.outcomes[_execute(job_id, worker_id, now, rng)] += 1
    return report


def run_job(job_id: int, worker_id: str, now: datetime | None = None, *,
            rng: random.Random | None = None) -> str | None:
    """Claim and run one job by id (the RQ path); ``None`` when it is not due or taken.

    The same claim as ``run_due_jobs``, so an id queued twice still runs once.
    """
    discover_handlers()
    now = now or utcnow()
    db.session.rollback()
    if not _claim(worker_id, 1, now, job_id=job_id):
        return None
    return _execute(job_id, worker_id, now, rng)


def due_job_ids(now: datetime | None = None, limit: int = 500) -> list[tuple[int, str]]:
    """(id, version) of due jobs without claiming them: what the RQ dispatcher hands out.

    The version (the row's last change) names one state of the job, so a marker kept for
    it never matches a later retry, nor a new job that reuses the id in a fresh database.
    """
    now = now or utcnow()
    rows = db.session.execute(
        select(OutboxJob.id, OutboxJob.updated_at).where(due_rule(now))
        .order_by(OutboxJob.next_attempt_at, OutboxJob.id).limit(limit)
    ).all()
    db.session.rollback()
    return [(row.id, f"{row.updated_at.timestamp():.6f}") for row in rows]

