"""Job handlers of the accounts package, imported by the worker's handler discovery.

``accounts.prune_sessions`` deletes expired server-side session records every 15 minutes
(a no-op with Redis, whose keys expire by themselves). This module is an edge like the CLI:
it is the only place in ``accounts`` that knows the jobs package.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from lms_plugin.accounts import sessions
from lms_plugin.jobs import schedule
from lms_plugin.jobs.services import JobContext, job_handler

PRUNE_SESSIONS = "accounts.prune_sessions"
PRUNE_INTERVAL = timedelta(minutes=15)


@job_handler(PRUNE_SESSIONS)
def prune_sessions(payload: dict[str, Any], ctx: JobContext) -> None:
    """Delete session records past their idle timeout or absolute lifetime (at ``ctx.now``)."""
    sessions.prune(ctx.now)


schedule.every(PRUNE_SESSIONS, PRUNE_INTERVAL)
