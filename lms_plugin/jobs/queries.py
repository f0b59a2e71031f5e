"""The people's side of the outbox: list and count jobs (the admin page), retry one or
all failed jobs, and prune finished ones. Services flush; the view, command or job commits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, literal, select, tuple_, union_all, update

from lms_plugin.accounts.models import User
from lms_plugin.accounts.services import record_audit
from lms_plugin.db import utcnow
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.jobs.models import (
    FAILED,
    PENDING,
    RETRYABLE,
    RUNNING,
    STATUSES,
    SUCCEEDED,
    SUPERSEDED,
    OutboxJob,
)
from lms_plugin.jobs.outbox import enqueue, is_postgres, setting

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
    if is_postgres():
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

