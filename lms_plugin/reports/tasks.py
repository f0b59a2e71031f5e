"""The ``reports.export`` job: writes an export too large for the request (see exports)."""

from __future__ import annotations

from typing import Any

from lms_plugin.extensions import db
from lms_plugin.jobs.registry import JobContext, PermanentFailure, job_handler
from lms_plugin.reports import exports, matrix, records
from lms_plugin.reports.models import ReportExport


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
    try:
        exports.run_export(export.id, lambda org, filters: builder(org, filters, ctx.now),
                           ctx.now)
    except exports.ValidationFailed as exc:  # stored filters no longer valid
        export.status, export.error, export.finished_at = "failed", exc.message, ctx.now
        db.session.flush()
