"""The ``reports.export`` job: writes an export too large for the request (see exports)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from lms_plugin.extensions import db
from lms_plugin.jobs import schedule
from lms_plugin.jobs.registry import JobContext, PermanentFailure, job_handler
from lms_plugin.reports import exports, holdings, matrix, records
from lms_plugin.reports.models import CompetencyFramework, ReportExport

log = logging.getLogger(__name__)


def build(report: str):
    builder = {**matrix.TABLES, "completions": records.completions_table}.get(report)
    if builder is None:
        raise PermanentFailure(f"unknown report {report!r}")
    return builder


@job_handler("reports.export")
def run_export(payload: dict[str, Any], ctx: JobContext) -> None:
    """Write the export's file; a failure is recorded on the export (the page says it)."""
    export = db.session.get(ReportExport, payload.get("export_id"))
    if export is None:
        raise PermanentFailure(f"export {payload.get('export_id')!r} no longer exists")
    builder = build(export.report)
    export_id = export.id
    try:
        exports.run_export(export_id, lambda org, filters: builder(org, filters, ctx.now),
                           ctx.now)
    except Exception as exc:  # noqa: BLE001  (any failure is shown on the export's page)
        # The page must not say "waiting" for ever: record the failure (the person asks
        # again) instead of leaving the job to retry into the same error.
        log.exception("export #%s failed", export_id)
        db.session.rollback()
        export = db.session.get(ReportExport, export_id)
        message = exc.message if isinstance(exc, exports.ValidationFailed) else (
            f"{type(exc).__name__}: {str(exc)[:300]}")
        export.status, export.error, export.finished_at = "failed", message, ctx.now
        exports.discard_files(export)
        db.session.flush()


HOLDINGS_KIND = "reports.holdings"
#: How often the precomputed holdings take in new completions (pages stay exact meanwhile:
#: the people with newer completions are computed live).
HOLDINGS_INTERVAL = timedelta(minutes=10)


@job_handler(HOLDINGS_KIND)
def run_holdings(payload: dict[str, Any], ctx: JobContext) -> None:
    """Fold new completions into one framework's holdings (``framework_id``) or every
    framework's; rebuild those whose retraining fingerprint changed or were never built."""
    framework_ids = ([payload["framework_id"]] if payload.get("framework_id") else
                     list(db.session.scalars(select(CompetencyFramework.id))))
    for framework_id in framework_ids:
        if db.session.get(CompetencyFramework, framework_id) is not None:
            holdings.fold(framework_id, ctx.now)


schedule.every(HOLDINGS_KIND, HOLDINGS_INTERVAL)
