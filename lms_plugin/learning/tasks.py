"""Job handlers of the learning package, imported by the worker's handler discovery.

``learning.reminders`` runs every :data:`REMINDER_INTERVAL` and fans out one
``learning.reminders_org`` job per organisation with open assignments (coalesced per
organisation, so a slow run is never stacked); each sends that organisation's due
reminders and weekly manager digests (:func:`lms_plugin.learning.reminders.send_reminders`,
idempotent through its ledger). This module is an edge like the CLI: the only place in
``learning`` that knows the jobs package.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from lms_plugin.extensions import db
from lms_plugin.jobs import schedule
from lms_plugin.jobs.services import JobContext, enqueue, job_handler
from lms_plugin.learning import reminders
from lms_plugin.learning.models import Assignment

REMINDERS = "learning.reminders"
REMINDERS_ORG = "learning.reminders_org"
#: Thresholds are in days; four looks a day send each reminder within hours of its day.
REMINDER_INTERVAL = timedelta(hours=6)


@job_handler(REMINDERS)
def fan_out_reminders(payload: dict[str, Any], ctx: JobContext) -> None:
    """One ``learning.reminders_org`` job per organisation with an open assignment."""
    org_ids = db.session.scalars(select(Assignment.organisation_id).where(
        Assignment.closed_at.is_(None)).distinct().order_by(Assignment.organisation_id))
    for org_id in org_ids:
        enqueue(REMINDERS_ORG, {"organisation_id": org_id}, organisation_id=org_id,
                coalesce_key=f"reminders:{org_id}", now=ctx.now)


@job_handler(REMINDERS_ORG)
def send_organisation_reminders(payload: dict[str, Any], ctx: JobContext) -> None:
    """Queue one organisation's reminders and digests at ``ctx.now`` (mail jobs follow)."""
    reminders.send_reminders(int(payload["organisation_id"]), ctx.now)


schedule.every(REMINDERS, REMINDER_INTERVAL)
