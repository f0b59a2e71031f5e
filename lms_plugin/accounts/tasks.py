"""Job handlers of the accounts package, imported by the worker's handler discovery.

``accounts.prune_expired`` deletes expired server-side session records (a no-op with Redis,
whose keys expire by themselves) and expired rate-limit events every 15 minutes.
``accounts.password_reset`` looks up the address a "Forgot your password?" named and mails a
reset link when it is an account. This
module is an edge like the CLI: the only place in ``accounts`` that knows the jobs package.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app

from lms_plugin.accounts import limits_storage, password_reset, sessions
from lms_plugin.jobs import schedule
from lms_plugin.jobs.services import JobContext, enqueue, job_handler

PRUNE_EXPIRED = "accounts.prune_expired"
PRUNE_INTERVAL = timedelta(minutes=15)
RESET_REQUEST = "accounts.password_reset"


@job_handler(PRUNE_EXPIRED)
def prune_expired(payload: dict[str, Any], ctx: JobContext) -> None:
    """Delete session records past their idle timeout or absolute lifetime, and rate-limit
    events past their window (both at ``ctx.now``)."""
    sessions.prune(ctx.now)
    limits_storage.prune(ctx.now.timestamp())


schedule.every(PRUNE_EXPIRED, PRUNE_INTERVAL)


def queue_reset_request(email: str) -> None:
    """"Forgot your password?" from the sign-in page: an ``accounts.password_reset`` job
    carrying only the address asked about (flushed; the view commits).

    The request does exactly this whatever the address, so neither the answer nor its
    timing tells whether an account exists (the OWASP Forgot Password Cheat Sheet asks for
    a consistent response time); the worker looks the account up."""
    enqueue(RESET_REQUEST, {"email": (email or "").strip().lower()[:320]})


@job_handler(RESET_REQUEST)
def run_password_reset(payload: dict[str, Any], ctx: JobContext) -> None:
    """Mail a reset link when the address is an active local account (a ``mail.send`` job
    follows in this transaction); nothing otherwise."""
    password_reset.request_reset(payload["email"], current_app.config["LMS_BASE_URL"], ctx.now)
