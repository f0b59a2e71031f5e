"""The outbox's shared rules: job settings, enqueue in the caller's transaction (with
coalescing), and "a newer job of the same key exists".

Services here flush and never commit: the caller's transaction decides whether the job
exists.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import aliased

from lms_plugin.config import job_seconds
from lms_plugin.db import utcnow
from lms_plugin.errors import ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.jobs.models import PENDING, SUPERSEDED, OutboxJob


def setting(name: str) -> float:
    """A background-job setting in seconds (``lms_plugin.config.JOB_SETTINGS``), as
    ``load_config`` parsed it from the environment; a factory override (tests pass ``"1m"``
    or ``90``) goes through the same parser. Raises ConfigError naming the setting."""
    return job_seconds(name, current_app.config.get(name))


def is_postgres() -> bool:
    """Whether the session's database is PostgreSQL (row locking with SKIP LOCKED)."""
    return db.session.get_bind().dialect.name == "postgresql"


def _checked_kind(kind: str) -> str:
    kind = (kind or "").strip()
    if not kind or len(kind) > 100:
        raise ValidationFailed("a job needs a kind of 1 to 100 characters", field="kind")
    return kind


def _json_payloads(payloads: list[Any]) -> list[dict[str, Any]]:
    """Copies of ``payloads`` as JSON stores them; ValidationFailed unless each is a
    JSON-serialisable object."""
    if not all(isinstance(p, dict) for p in payloads):
        raise ValidationFailed("a job payload must be a JSON object", field="payload")
    try:
        return json.loads(json.dumps(payloads))
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"job payload is not JSON-serialisable: {exc}",
                               field="payload") from None


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
    kind = _checked_kind(kind)
    [payload] = _json_payloads([payload])
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


def enqueue_many(kind: str, payloads: list[dict[str, Any]], *,
                 organisation_id: int | None = None, now: datetime | None = None) -> int:
    """Add one job of ``kind`` per payload in one statement (an executemany), in the
    caller's transaction; how many. For fan-outs of independent jobs (a reminder run's
    mails): no coalescing, each job due at once. Raises ValidationFailed like
    :func:`enqueue` for a bad kind or a payload that is not a JSON object."""
    kind = _checked_kind(kind)
    if not payloads:
        return 0
    payloads = _json_payloads(payloads)
    now = now or utcnow()
    give_up_at = now + timedelta(seconds=setting("LMS_JOB_GIVE_UP_AFTER"))
    db.session.execute(insert(OutboxJob), [
        {"organisation_id": organisation_id, "kind": kind, "payload": payload,
         "coalesce_key": None, "event_at": now, "status": PENDING, "attempts": 0,
         "next_attempt_at": now, "created_at": now, "updated_at": now,
         "give_up_at": give_up_at} for payload in payloads])
    return len(payloads)


def newer_job_id(job: OutboxJob) -> int | None:
    """The id of a job of the same coalesce key carrying a newer event than ``job`` (later
    ``event_at``, or the same ``event_at`` enqueued later), not itself superseded; else None.

    The one rule of "newer" for coalesced jobs: the runner supersedes a claimed job with it,
    and a handler asks it (through :func:`newer_job_exists`) before a retry that would
    overwrite something newer at the far end.
    """
    if job.coalesce_key is None:
        return None
    other = aliased(OutboxJob)
    return db.session.scalar(
        select(other.id).where(
            other.coalesce_key == job.coalesce_key, other.id != job.id,
            other.status != SUPERSEDED,
            or_(other.event_at > job.event_at,
                and_(other.event_at == job.event_at, other.id > job.id)),
        ).limit(1)
    )


def newer_job_exists(job_id: int) -> bool:
    """Whether a newer job of the same coalesce key than job ``job_id`` was queued (see
    :func:`newer_job_id`); False for an unknown job or one without a coalesce key."""
    job = db.session.get(OutboxJob, job_id)
    return job is not None and newer_job_id(job) is not None
