"""Job kinds used by the tests, and a thread-safe record of every handler call."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import requests
from sqlalchemy import update

from lms_plugin.accounts.services import record_audit
from lms_plugin.extensions import db
from lms_plugin.jobs.models import OutboxJob
from lms_plugin.jobs.services import JobContext, PermanentFailure, RetryLater, job_handler

_lock = threading.Lock()
calls: Counter[int] = Counter()  # job id -> handler calls
workers: Counter[str] = Counter()  # worker id -> handler calls
seen: list[tuple[int, dict[str, Any], JobContext]] = []


def reset() -> None:
    with _lock:
        calls.clear()
        workers.clear()
        seen.clear()


@job_handler("test.record")
def record(payload: dict[str, Any], ctx: JobContext) -> None:
    """Records the call, then does what the payload says (succeed, retry, reject, crash)."""
    with _lock:
        calls[ctx.job_id] += 1
        workers[ctx.worker_id] += 1
        seen.append((ctx.job_id, payload, ctx))
    if payload.get("audit"):
        # A write in the handler's transaction: kept on success, rolled back otherwise.
        record_audit("test.handler_wrote", actor=None, organisation_id=ctx.organisation_id,
                     target=("outbox_job", ctx.job_id))
    outcome = payload.get("outcome", "ok")
    if outcome == "lose_lease":  # another worker took the job over while this one ran it
        db.session.execute(update(OutboxJob).where(OutboxJob.id == ctx.job_id)
                           .values(locked_by="w-other"))
    if outcome == "retry":
        raise RetryLater(payload.get("reason", "platform answered 503"),
                         after_seconds=payload.get("after"))
    if outcome == "reject":
        raise PermanentFailure(payload.get("reason", "platform answered 400"))
    if outcome == "crash":
        raise RuntimeError("handler bug")


@job_handler("test.noop")
def noop(payload: dict[str, Any], ctx: JobContext) -> None:
    """Does nothing: for jobs whose page or command is under test, not their sending."""


@job_handler("test.http_post")
def http_post(payload: dict[str, Any], ctx: JobContext) -> None:
    """POSTs the payload to a test platform, mapping answers as a real delivery kind would."""
    with _lock:
        calls[ctx.job_id] += 1
    try:
        response = requests.post(
            payload["url"],
            json={"user": payload["user"], "event": payload["event"], "score": payload["score"]},
            headers={"Idempotency-Key": ctx.idempotency_key},
            timeout=(0.5, payload.get("timeout", 0.05)),
        )
    except requests.RequestException as exc:
        raise RetryLater(f"network error: {type(exc).__name__}") from None
    if response.status_code == 429:
        raise RetryLater("429 Too Many Requests",
                         after_seconds=float(response.headers.get("Retry-After", "1")))
    if response.status_code >= 500:
        raise RetryLater(f"{response.status_code} from the platform")
    if response.status_code >= 400:
        raise PermanentFailure(f"{response.status_code}: {response.text[:200]}")
