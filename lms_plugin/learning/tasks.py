"""Job handlers of the learning package (imported by the worker's handler discovery).

``assignments.evaluate``: re-evaluate one organisation's assignment rules (set-based,
:func:`learning.assignments.evaluate`), enqueued when a version is published
(``events.version_published``). ``assignments.evaluate_all``: the nightly run over every
organisation, so people whose rule starts to apply by the calendar are picked up.

``learning.reminders`` runs every :data:`REMINDER_INTERVAL` and fans out one
``learning.reminders_org`` job per organisation with open assignments (coalesced per
organisation, so a slow run is never stacked); each sends that organisation's due
reminders and weekly manager digests (:func:`lms_plugin.learning.reminders.send_reminders`,
idempotent through its ledger).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from lms_plugin.accounts.models import Organisation
from lms_plugin.extensions import db
from lms_plugin.jobs import schedule
from lms_plugin.jobs.outbox import enqueue
from lms_plugin.jobs.services import JobContext, job_handler
from lms_plugin.learning import assignments, reminders
from lms_plugin.learning.models import Assignment

EVALUATE = "assignments.evaluate"
EVALUATE_ALL = "assignments.evaluate_all"
NIGHTLY = timedelta(hours=24)
REMINDERS = "learning.reminders"
REMINDERS_ORG = "learning.reminders_org"
#: Thresholds are in days; four looks a day send each reminder within hours of its day.
REMINDER_INTERVAL = timedelta(hours=6)


@job_handler(EVALUATE)
def run_evaluate(payload: dict[str, Any], ctx: JobContext) -> None:
    """Evaluate the rules of ``payload["organisation_id"]`` at ``ctx.now``."""
    assignments.evaluate(int(payload["organisation_id"]), ctx.now)


@job_handler(EVALUATE_ALL)
def run_evaluate_all(payload: dict[str, Any], ctx: JobContext) -> None:
    """Evaluate every organisation's rules (two statements each)."""
    for organisation_id in db.session.scalars(select(Organisation.id)).all():
        assignments.evaluate(organisation_id, ctx.now)


def enqueue_evaluation(sender: Any, *, event: Any) -> None:
    """Receiver of ``events.version_published``: queue the organisation's evaluation in the
    publishing transaction (one pending job per organisation: coalesced)."""
    enqueue(EVALUATE, {"organisation_id": event.organisation_id},
            organisation_id=event.organisation_id,
            coalesce_key=f"{EVALUATE}:{event.organisation_id}", now=event.when)


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


schedule.every(EVALUATE_ALL, NIGHTLY)
schedule.every(REMINDERS, REMINDER_INTERVAL)
