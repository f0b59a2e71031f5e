"""Job handlers of the accounts package, imported by the worker's handler discovery.

``accounts.prune_expired`` deletes expired server-side session records (a no-op with Redis,
whose keys expire by themselves) and expired rate-limit events every 15 minutes. This
module is an edge like the CLI: the only place in ``accounts`` that knows the jobs package.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from lms_plugin.accounts import limits_storage, sessions
from lms_plugin.jobs import schedule
from lms_plugin.jobs.services import JobContext, job_handler

PRUNE_EXPIRED = "accounts.prune_expired"
PRUNE_INTERVAL = timedelta(minutes=15)


@job_handler(PRUNE_EXPIRED)
def prune_expired(payload: dict[str, Any], ctx: JobContext) -> None:
    """Delete session records past their idle timeout or absolute lifetime, and rate-limit
    events past their window (both at ``ctx.now``)."""
    sessions.prune(ctx.now)
    limits_storage.prune(ctx.now.timestamp())


schedule.every(PRUNE_EXPIRED, PRUNE_INTERVAL)
