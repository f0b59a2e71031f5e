"""Job handlers of the LTI package, imported by the worker's handler discovery."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from lms_plugin.jobs import schedule
from lms_plugin.jobs.services import JobContext, enqueue, job_handler, run_in_batches
from lms_plugin.lti import ags_jobs, nrps, store  # noqa: F401  (register "ags.score", "nrps.*")
from lms_plugin.lti.store import purge_expired

PURGE_KIND = "lti.purge_state"
PURGE_INTERVAL = timedelta(hours=1)
PURGE_BATCHES_PER_RUN = 5


@job_handler(PURGE_KIND)
def run_purge_state(payload: dict[str, Any], ctx: JobContext) -> None:
    """Delete expired LTI state and used nonces kept in the database (without Redis), a few
    batches per job; a continuation takes over when more remain."""
    _, finished = run_in_batches(lambda: purge_expired(ctx.now),
                                 batch_size=store.PURGE_BATCH,
                                 max_batches=PURGE_BATCHES_PER_RUN, commit=False)
    if not finished:
        enqueue(PURGE_KIND, {}, coalesce_key=f"schedule:{ctx.kind}", now=ctx.now)


schedule.every(PURGE_KIND, PURGE_INTERVAL)
