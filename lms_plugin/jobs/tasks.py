"""The outbox's own jobs: hourly pruning of finished jobs, "retry all failed" in the
background, and ``mail.send`` (one mail to deliver). Imported by the worker's handler discovery."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from lms_plugin.jobs import mail_jobs, queries, schedule
from lms_plugin.jobs.outbox import enqueue
from lms_plugin.jobs.registry import JobContext, job_handler

PRUNE_INTERVAL = timedelta(hours=1)
#: Batches one prune job deletes (in its one transaction) before a continuation takes over.
PRUNE_BATCHES_PER_RUN = 5


@job_handler(queries.PRUNE_KIND)
def run_prune(payload: dict[str, Any], ctx: JobContext) -> None:
    """Delete finished jobs older than ``LMS_JOB_KEEP``, a few batches per job."""
    _, finished = queries.run_in_batches(lambda: queries.prune_batch(ctx.now),
                                          batch_size=queries.PRUNE_BATCH,
                                          max_batches=PRUNE_BATCHES_PER_RUN, commit=False)
    if not finished:
        enqueue(queries.PRUNE_KIND, {}, coalesce_key=f"schedule:{ctx.kind}",
                         now=ctx.now)


@job_handler(queries.RETRY_ALL_KIND)
def run_retry_all(payload: dict[str, Any], ctx: JobContext) -> None:
    """One stretch of an organisation's "retry all failed" (see the service)."""
    queries.continue_retry_all(payload, ctx.now)


@job_handler(mail_jobs.MAIL_KIND)
def run_mail_send(payload: dict[str, Any], ctx: JobContext) -> None:
    """Deliver one mail (``jobs.mail_jobs.send``): retried while the server is away."""
    mail_jobs.send(payload, ctx)


schedule.every(queries.PRUNE_KIND, PRUNE_INTERVAL)
