"""Outbox rules: enqueue in the caller's transaction, coalesce, claim, run, retry, give up.

Services flush and never commit, except the worker functions (``run_due_jobs``,
``run_job``): the worker is an edge like a view, and each job needs its own transaction.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import pkgutil
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import (
    and_,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.orm import aliased

from lms_plugin.accounts.models import User
from lms_plugin.accounts.services import record_audit
from lms_plugin.config import ConfigError
from lms_plugin.db import utcnow
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.jobs.models import (
    FAILED,
    PENDING,
    REJECTED,
    RETRYABLE,
    RUNNING,
    STATUSES,
    SUCCEEDED,
    SUPERSEDED,
    OutboxJob,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- settings

#: (config/environment name, default seconds). Read when used, never at import time.
SETTINGS: dict[str, tuple[float, str]] = {
    "LMS_JOB_GIVE_UP_AFTER": (24 * 3600, "age after which a job that keeps failing is failed"),
    "LMS_JOB_BACKOFF_BASE": (2, "first retry delay ceiling; doubles each attempt (full jitter)"),
    "LMS_JOB_BACKOFF_CAP": (15 * 60, "largest retry delay ceiling"),
    "LMS_JOB_LEASE": (5 * 60, "a running job whose worker is silent this long is reclaimed"),
    "LMS_JOB_POLL_INTERVAL": (1, "how long an idle worker sleeps between polls"),
    "LMS_JOB_KEEP": (30 * 86400, "succeeded and superseded jobs older than this are deleted"),
}
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90"``, ``"15m"``, ``"24h"`` or ``"2d"`` (operators write all)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(f"{value!r} is not a duration (use seconds or 30s, 15m, 24h, 2d)")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise ConfigError(f"{value!r} is negative; durations must be zero or more")
    return seconds


def setting(name: str) -> float:
    """A job setting in seconds: app config first (tests, factory overrides), then environment."""
    default, _ = SETTINGS[name]
    value = current_app.config.get(name)
    if value is None:
        value = os.environ.get(name, "").strip() or None
    if value is None:
        return float(default)
    try:
        return parse_duration(value)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None


# --------------------------------------------------------------------------- handlers


class RetryLater(Exception):  # noqa: N818  (an outcome, not an error)
    """Transient failure (network error, 5xx, 429): try again later.

    ``after_seconds`` is the far end's own wish (``Retry-After``); otherwise exponential
    backoff with full jitter decides.
    """

    def __init__(self, reason: str, after_seconds: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after_seconds = after_seconds


class PermanentFailure(Exception):  # noqa: N818
    """A definitive answer retrying cannot change (a 4xx): the job becomes ``rejected``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Superseded(Exception):  # noqa: N818
    """The far end already holds something newer: the job ends ``superseded``, not failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class JobContext:
    """What a handler may know about the job beyond its payload."""

    job_id: int
    kind: str
    organisation_id: int | None
    attempt: int  # 1 on the first try
    event_at: datetime
    now: datetime  # the worker's clock (injected in tests)
    worker_id: str

    @property
    def idempotency_key(self) -> str:
        """Same across retries of one job: send it so the far end can drop duplicates."""
        return f"outbox-{self.job_id}"


Handler = Callable[[dict[str, Any], JobContext], None]
_HANDLERS: dict[str, Handler] = {}
_discovered = False


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that performs jobs of ``kind``.

    It returns on success, raises :class:`RetryLater` for transient trouble and
    :class:`PermanentFailure` for a definitive refusal. Any other exception is treated as
    transient (a bug fixed by a deploy should not lose the job) and logged.
    """

    def decorator(func: Handler) -> Handler:
        existing = _HANDLERS.get(kind)
        if existing is not None and (existing.__module__, existing.__qualname__) != (
                func.__module__, func.__qualname__):
            raise ValueError(f"job kind {kind!r} already has a handler: {existing.__qualname__}")
        _HANDLERS[kind] = func
        return func

    return decorator


def registered_kinds() -> list[str]:
    return sorted(_HANDLERS)


def discover_handlers() -> None:
    """Import every ``lms_plugin.<package>.tasks`` module so its handlers register.

    Handlers live beside the domain they serve (``lti/tasks.py`` for AGS scores…); the worker
    calls this once, so nothing has to list them here.
    """
    global _discovered
    if _discovered:
        return
    import lms_plugin

    for info in pkgutil.iter_modules(lms_plugin.__path__):
        if info.ispkg and importlib.util.find_spec(f"lms_plugin.{info.name}.tasks"):
            importlib.import_module(f"lms_plugin.{info.name}.tasks")
    _discovered = True


# --------------------------------------------------------------------------- enqueue


def enqueue(kind: str, payload: dict[str, Any], *, organisation_id: int | None = None,
            coalesce_key: str | None = None, event_at: datetime | None = None,
            now: datetime | None = None, not_before: datetime | None = None) -> OutboxJob:
    """Add a job in the caller's transaction (flush, no commit).

    The job therefore exists iff the caller's data commits. With a ``coalesce_key`` only the
    newest event matters: older pending jobs of that key are superseded, and a job whose
    event is older than one already known is stored as superseded at once (an older score
    never overwrites a newer one, even when it arrives later). Equal ``event_at``: the later
    enqueue wins. ``not_before`` delays the first attempt (spreading a fan-out over time);
    the give-up window starts then.
    """
    kind = (kind or "").strip()
    if not kind or len(kind) > 100:
        raise ValidationFailed("a job needs a kind of 1 to 100 characters", field="kind")
    if not isinstance(payload, dict):
        raise ValidationFailed("a job payload must be a JSON object", field="payload")
    try:
        payload = json.loads(json.dumps(payload))
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"job payload is not JSON-serialisable: {exc}",
                               field="payload") from None
    if coalesce_key is not None and not (0 < len(coalesce_key) <= 255):
        raise ValidationFailed("coalesce_key must be 1 to 255 characters", field="coalesce_key")
    now = now or utcnow()
    event_at = event_at or now
    if now.tzinfo is None or event_at.tzinfo is None:
        raise ValidationFailed("job times must be timezone-aware (use lms_plugin.db.utcnow)",
                               field="event_at")
    first_at = max(now, not_before) if not_before is not None else now
    job = OutboxJob(
        organisation_id=organisation_id, kind=kind, payload=payload, coalesce_key=coalesce_key,
        event_at=event_at, status=PENDING, attempts=0, next_attempt_at=first_at,
        created_at=now, updated_at=now, give_up_at=first_at + timedelta(
            seconds=setting("LMS_JOB_GIVE_UP_AFTER")),
    )
    if coalesce_key is not None:
        newer = db.session.scalar(
            select(OutboxJob.id).where(
                OutboxJob.coalesce_key == coalesce_key,
                OutboxJob.status != SUPERSEDED,
                OutboxJob.event_at > event_at,
            ).limit(1)
        )
        if newer is not None:
            job.status = SUPERSEDED
            job.finished_at = now
            job.last_error = f"superseded: job #{newer} carries a newer event"
        else:
            db.session.add(job)
            db.session.flush()
            # Conditional on still pending: a job a worker already claimed is left alone
            # (the claim runs jobs of one key one at a time, so the newer one follows it).
            db.session.execute(
                update(OutboxJob)
                .where(OutboxJob.coalesce_key == coalesce_key, OutboxJob.status == PENDING,
                       OutboxJob.id != job.id, OutboxJob.event_at <= event_at)
                .values(status=SUPERSEDED, finished_at=now, updated_at=now,
                        last_error=f"superseded: job #{job.id} carries a newer event"),
                execution_options={"synchronize_session": "fetch"},
            )
    db.session.add(job)
    db.session.flush()
    return job


# --------------------------------------------------------------------------- worker side


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


def _is_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _claim(worker_id: str, limit: int, now: datetime, job_id: int | None = None) -> list[int]:
    """Move up to ``limit`` due jobs to running for this worker, atomically; their ids.

    PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` inside the UPDATE, so concurrent workers
    take disjoint rows without waiting. SQLite serialises writers; the UPDATE's own
    ``status`` condition makes the claim atomic there. A job left running by a dead worker
    is due again once its lease has expired. Jobs of one coalesce key run one at a time.
    """
    lease_cutoff = now - timedelta(seconds=setting("LMS_JOB_LEASE"))
    job = OutboxJob
    other = aliased(OutboxJob)
    due = or_(
        and_(job.status == PENDING, job.next_attempt_at <= now),
        and_(job.status == RUNNING, job.locked_at < lease_cutoff),
    )
    key_busy = exists().where(
        other.coalesce_key == job.coalesce_key, other.id != job.id,
        other.status == RUNNING, other.locked_at >= lease_cutoff,
    )
    candidates = select(job.id).where(due, ~key_busy)
    if job_id is not None:
        candidates = candidates.where(job.id == job_id)
    candidates = candidates.order_by(job.next_attempt_at, job.id).limit(limit)
    if _is_postgres():
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


def _newer_job(job: OutboxJob) -> int | None:
    other = aliased(OutboxJob)
    return db.session.scalar(
        select(other.id).where(
            other.coalesce_key == job.coalesce_key, other.id != job.id,
            other.status != SUPERSEDED,
            or_(other.event_at > job.event_at,
                and_(other.event_at == job.event_at, other.id > job.id)),
        ).limit(1)
    )


def _execute(job_id: int, worker_id: str, now: datetime, rng: random.Random | None) -> str:
    """Run one claimed job in its own transaction and record the outcome; the new status."""
    job = db.session.get(OutboxJob, job_id, populate_existing=True)
    if job is None or job.status != RUNNING or job.locked_by != worker_id:
        db.session.rollback()
        return "lost"
    if job.coalesce_key is not None:
        newer = _newer_job(job)
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
    lease_cutoff = now - timedelta(seconds=setting("LMS_JOB_LEASE"))
    rows = db.session.execute(
        select(OutboxJob.id, OutboxJob.updated_at).where(or_(
            and_(OutboxJob.status == PENDING, OutboxJob.next_attempt_at <= now),
            and_(OutboxJob.status == RUNNING, OutboxJob.locked_at < lease_cutoff),
        )).order_by(OutboxJob.next_attempt_at, OutboxJob.id).limit(limit)
    ).all()
    db.session.rollback()
    return [(row.id, f"{row.updated_at.timestamp():.6f}") for row in rows]


# --------------------------------------------------------------------------- people's side

#: Pass as ``organisation_id`` from the command line: the operator sees every organisation.
ALL_ORGANISATIONS = object()


def _scope(stmt, organisation_id: Any):
    if organisation_id is ALL_ORGANISATIONS:
        return stmt
    return stmt.where(OutboxJob.organisation_id == organisation_id)


def _check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise ValidationFailed(
            f"unknown status {status!r}; use one of {', '.join(STATUSES)}", field="status")


#: Counts on the admin page stop here ("10,000+"): a count never scans a million rows.
COUNT_CAP = 10_000


def list_jobs(organisation_id: Any, status: str | tuple[str, ...] | None = None,
              limit: int = 200, before: tuple[datetime, int] | None = None) -> list[OutboxJob]:
    """An organisation's jobs, most recently changed first, of one or several statuses.

    Keyset pagination: ``before`` is the (updated_at, id) of the last row of the previous
    page, and the next page starts after it (an index on (organisation_id, [status,]
    updated_at, id) serves every page the same, however deep). Raises ValidationFailed for
    an unknown status.
    """
    statuses = (status,) if isinstance(status, str) else status
    for one in statuses or ():
        _check_status(one)
    stmt = _scope(select(OutboxJob), organisation_id)
    if statuses is not None:
        stmt = stmt.where(OutboxJob.status.in_(statuses))
    if before is not None:
        stmt = stmt.where(tuple_(OutboxJob.updated_at, OutboxJob.id) < tuple_(*before))
    return list(db.session.scalars(
        stmt.order_by(OutboxJob.updated_at.desc(), OutboxJob.id.desc()).limit(limit)))


def count_by_status(organisation_id: Any, cap: int | None = None) -> dict[str, int]:
    """Jobs per status, each counted up to ``cap + 1`` (default :data:`COUNT_CAP`; a value
    above ``cap`` means "more than ``cap``"): one statement of bounded index-only reads,
    whatever the table holds."""
    cap = COUNT_CAP if cap is None else cap
    parts = []
    for status in STATUSES:
        capped = _scope(select(literal(1).label("one")).where(OutboxJob.status == status),
                        organisation_id).limit(cap + 1).subquery()
        parts.append(select(literal(status).label("status"),
                            select(func.count()).select_from(capped).scalar_subquery()
                            .label("n")))
    counts = dict.fromkeys(STATUSES, 0)
    for status, n in db.session.execute(union_all(*parts)).all():
        counts[status] = int(n)
    return counts


def get_job(job_id: int, organisation_id: Any) -> OutboxJob:
    job = db.session.get(OutboxJob, job_id)
    if job is None or (organisation_id is not ALL_ORGANISATIONS
                       and job.organisation_id != organisation_id):
        raise NotFound(f"no job #{job_id} in your organisation")
    return job


def _requeue(job: OutboxJob, now: datetime) -> None:
    job.status = PENDING
    job.next_attempt_at = now
    job.give_up_at = now + timedelta(seconds=setting("LMS_JOB_GIVE_UP_AFTER"))
    job.finished_at = None
    job.locked_by = None
    job.locked_at = None
    job.updated_at = now


def retry_job(job_id: int, organisation_id: Any, *, actor: User | None = None,
              now: datetime | None = None) -> OutboxJob:
    """Send a failed or rejected job again, now, with a fresh give-up window; audited."""
    now = now or utcnow()
    job = get_job(job_id, organisation_id)
    if job.status not in RETRYABLE:
        raise Conflict(f"job #{job.id} is {job.status}; only failed or rejected jobs can be "
                       "retried")
    previous = job.status
    _requeue(job, now)
    db.session.flush()
    record_audit("job.retry", actor=actor, organisation_id=job.organisation_id,
                 target=("outbox_job", job.id),
                 details={"kind": job.kind, "previous_status": previous,
                          "last_error": job.last_error})
    return job


# --------------------------------------------------------------------------- retry all failed

#: The background job that re-queues an organisation's failed jobs in batches.
RETRY_ALL_KIND = "outbox.retry_failed"
RETRY_BATCH = 500
RETRY_BATCHES_PER_RUN = 4  # then the job hands over to a continuation (short transactions)
#: Re-queued jobs are spread so that each platform receives at most this many per second:
#: an LMS that was down is not flooded with every failed grade the moment it is back.
RETRY_PER_SECOND = 10


def pace_group(organisation_id: int | None, payload: Any) -> str:
    """Whom a job talks to, for pacing: jobs that call a platform carry ``platform_id`` in
    their payload (AGS scores, roster syncs); others are paced per organisation."""
    platform_id = payload.get("platform_id") if isinstance(payload, dict) else None
    if platform_id is not None:
        return f"platform:{platform_id}"
    return f"organisation:{organisation_id}"


def requeue_failed_batch(organisation_id: Any, after_id: int, slots: dict[str, datetime],
                         now: datetime, limit: int | None = None
                         ) -> tuple[Counter[int | None], int | None]:
    """Re-queue up to ``limit`` (default :data:`RETRY_BATCH`) failed jobs with ids above
    ``after_id`` (flush, no commit): two statements (a keyed read, an executemany UPDATE
    by primary key).

    Each job's first new attempt is the next free slot of its pace group (``slots`` holds
    each group's next free time and is advanced in place, ``1 / RETRY_PER_SECOND`` seconds
    per job). Returns (jobs re-queued per organisation, the last id seen or None when there
    were none).
    """
    rows = db.session.execute(
        _scope(select(OutboxJob.id, OutboxJob.organisation_id, OutboxJob.payload)
               .where(OutboxJob.status == FAILED, OutboxJob.id > after_id), organisation_id)
        .order_by(OutboxJob.id).limit(limit or RETRY_BATCH)).all()
    give_up = timedelta(seconds=setting("LMS_JOB_GIVE_UP_AFTER"))
    step = timedelta(seconds=1 / RETRY_PER_SECOND)
    values = []
    per_org: Counter[int | None] = Counter()
    for row in rows:
        group = pace_group(row.organisation_id, row.payload)
        slot = max(slots.get(group, now), now)
        slots[group] = slot + step
        per_org[row.organisation_id] += 1
        values.append({"id": row.id, "status": PENDING, "next_attempt_at": slot,
                       "give_up_at": slot + give_up, "finished_at": None, "locked_by": None,
                       "locked_at": None, "updated_at": now})
    if values:
        db.session.execute(update(OutboxJob), values,
                           execution_options={"synchronize_session": False})
    return per_org, (rows[-1].id if rows else None)


def retry_all_failed(organisation_id: Any, *, actor: User | None = None,
                     now: datetime | None = None) -> int:
    """Re-queue every failed job now, in batches, paced per platform (not rejected ones:
    those need a person to look at each); one audit line per organisation with the count.
    Flushes; the operator's command commits. The admin page uses
    :func:`request_retry_all_failed` instead, which does this in the background."""
    now = now or utcnow()
    slots: dict[str, datetime] = {}
    totals: Counter[int | None] = Counter()
    after = 0
    while True:
        per_org, last = requeue_failed_batch(organisation_id, after, slots, now)
        if last is None:
            break
        totals.update(per_org)
        after = last
    for org_id, count in sorted(totals.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        record_audit("job.retry_all_failed", actor=actor, organisation_id=org_id,
                     details={"count": count})
    return sum(totals.values())


@dataclass(frozen=True)
class RetryProgress:
    """A "retry all failed" under way: jobs re-queued so far of those failed when asked."""

    requeued: int
    total: int


def retry_all_progress(organisation_id: int) -> RetryProgress | None:
    """The organisation's "retry all failed" still running, or None (one indexed read)."""
    job = db.session.scalar(
        select(OutboxJob).where(OutboxJob.coalesce_key == f"{RETRY_ALL_KIND}:{organisation_id}",
                                OutboxJob.status.in_((PENDING, RUNNING)))
        .order_by(OutboxJob.id.desc()).limit(1))
    if job is None:
        return None
    return RetryProgress(int(job.payload.get("requeued", 0)), int(job.payload.get("total", 0)))


def request_retry_all_failed(organisation_id: int, *, actor: User | None = None,
                             now: datetime | None = None) -> int:
    """Start re-queuing the organisation's failed jobs in the background (the admin page's
    button); the number of failed jobs it will re-queue (0: nothing was started).

    Raises Conflict while an earlier request is still running. The background job writes
    one audit line with the count when it finishes.
    """
    if retry_all_progress(organisation_id) is not None:
        raise Conflict("failed jobs are already being re-queued; see the progress above")
    total = db.session.scalar(select(func.count()).select_from(OutboxJob).where(
        OutboxJob.organisation_id == organisation_id, OutboxJob.status == FAILED)) or 0
    if total:
        enqueue(RETRY_ALL_KIND, {"organisation_id": organisation_id,
                                 "actor_id": actor.id if actor is not None else None,
                                 "after_id": 0, "requeued": 0, "total": total, "slots": {}},
                organisation_id=organisation_id,
                coalesce_key=f"{RETRY_ALL_KIND}:{organisation_id}", now=now)
    return total


def continue_retry_all(payload: dict[str, Any], now: datetime) -> None:
    """One run of the background "retry all failed": up to ``RETRY_BATCHES_PER_RUN``
    batches, then a continuation job (progress in its payload) or, at the end, the audit
    line with the count."""
    organisation_id = int(payload["organisation_id"])
    slots = {group: datetime.fromisoformat(at) for group, at in
             (payload.get("slots") or {}).items()}
    after, requeued = int(payload.get("after_id") or 0), int(payload.get("requeued") or 0)
    for _ in range(RETRY_BATCHES_PER_RUN):
        per_org, last = requeue_failed_batch(organisation_id, after, slots, now)
        if last is None:
            break
        after, requeued = last, requeued + sum(per_org.values())
    else:
        enqueue(RETRY_ALL_KIND, {**payload, "after_id": after, "requeued": requeued,
                                 "slots": {g: at.isoformat() for g, at in slots.items()}},
                organisation_id=organisation_id,
                coalesce_key=f"{RETRY_ALL_KIND}:{organisation_id}", now=now)
        return
    actor_id = payload.get("actor_id")
    actor = db.session.get(User, actor_id) if actor_id is not None else None
    record_audit("job.retry_all_failed", actor=actor, organisation_id=organisation_id,
                 details={"count": requeued})


# --------------------------------------------------------------------------- pruning

#: Final states that need nobody: deleted after ``LMS_JOB_KEEP``. Failed and rejected jobs
#: stay until a person retries them.
PRUNABLE = (SUCCEEDED, SUPERSEDED)
PRUNE_BATCH = 1000
PRUNE_KIND = "outbox.prune"


def prune_batch(now: datetime | None = None, *, keep_seconds: float | None = None,
                limit: int | None = None) -> int:
    """Delete up to ``limit`` (default :data:`PRUNE_BATCH`) succeeded or superseded jobs
    that finished more than ``keep_seconds`` (default ``LMS_JOB_KEEP``) ago; how many
    (flush, no commit).

    Rows are chosen by an index on (status, finished_at) and deleted by primary key, so a
    batch locks only its own rows (on PostgreSQL rows another transaction holds are
    skipped): the table stays writable while it is pruned. Call it until it returns 0,
    committing in between.
    """
    now = now or utcnow()
    keep = setting("LMS_JOB_KEEP") if keep_seconds is None else keep_seconds
    chosen = (select(OutboxJob.id)
              .where(OutboxJob.status.in_(PRUNABLE),
                     OutboxJob.finished_at < now - timedelta(seconds=keep))
              .limit(limit or PRUNE_BATCH))
    if _is_postgres():
        chosen = chosen.with_for_update(skip_locked=True)
    ids = list(db.session.scalars(chosen))
    if not ids:
        return 0
    # RETURNING, not rowcount: some drivers report -1 for a DELETE's row count.
    deleted = db.session.execute(
        delete(OutboxJob).where(OutboxJob.id.in_(ids)).returning(OutboxJob.id),
        execution_options={"synchronize_session": False}).scalars().all()
    return len(deleted)


def run_in_batches(step: Callable[[], int], *, batch_size: int | None = None,
                   max_batches: int | None = None, commit: bool = True) -> tuple[int, bool]:
    """Call ``step`` (one batch, returning how many rows it handled) until it handles none
    (or fewer than ``batch_size``), committing after each batch when ``commit``;
    (total, finished). With ``max_batches`` it stops early and says it did not finish (a
    job then hands over to a continuation)."""
    total = batches = 0
    while max_batches is None or batches < max_batches:
        done = step()
        batches += 1
        total += done
        if commit:
            db.session.commit()
        if done == 0 or (batch_size is not None and done < batch_size):
            return total, True
    return total, False
