"""The outbox's own jobs: hourly pruning of finished jobs, and "retry all failed" in the
background. Imported by the worker's handler discovery."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from lms_plugin.jobs import schedule, services
from lms_plugin.jobs.services import JobContext, job_handler

PRUNE_INTERVAL = timedelta(hours=1)
#: Batches one prune job deletes (in its one transaction) before a continuation takes over.
PRUNE_BATCHES_PER_RUN = 5


@job_handler(services.PRUNE_KIND)
def run_prune(payload: dict[str, Any], ctx: JobContext) -> None:
    """Delete finished jobs older than ``LMS_JOB_KEEP``, a few batches per job."""
    _, finished = services.run_in_batches(lambda: services.prune_batch(ctx.now),
                                          batch_size=services.PRUNE_BATCH,
                                          max_batches=PRUNE_BATCHES_PER_RUN, commit=False)
    if not finished:
        services.enqueue(services.PRUNE_KIND, {}, coalesce_key=f"schedule:{ctx.kind}",
                         now=ctx.now)


@job_handler(services.RETRY_ALL_KIND)
def run_retry_all(payload: dict[str, Any], ctx: JobContext) -> None:
    """One stretch of an organisation's "retry all failed" (see the service)."""
    services.continue_retry_all(payload, ctx.now)


schedule.every(services.PRUNE_KIND, PRUNE_INTERVAL)
