"""The admin's background-jobs page: failed and rejected deliveries, and retrying them."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from lms_plugin.authz import allow
from lms_plugin.errors import Conflict
from lms_plugin.extensions import db
from lms_plugin.jobs import heartbeat, queries, registry
from lms_plugin.jobs.models import RETRYABLE, STATUSES

bp = Blueprint("jobs", __name__, template_folder="templates")

#: The page opens on what needs a person: deliveries that failed or were refused.
ATTENTION = "attention"
PER_PAGE = 50


def _cursor(value: str | None) -> tuple[datetime, int] | None:
    """``before=<updated_at ISO>,<id>`` (the last row of the previous page) or 400."""
    if not value:
        return None
    stamp, _, ident = value.rpartition(",")
    try:
        cursor = datetime.fromisoformat(stamp), int(ident)
    except ValueError:
        abort(400, f"'before' must be '<time>,<job id>' as the page's Older link gives, "
                   f"not {value[:80]!r}.")
    if not 0 < cursor[1] < 2**63:
        abort(400, "'before' names a job id out of range.")
    if cursor[0].tzinfo is None:  # times are UTC
        cursor = cursor[0].replace(tzinfo=UTC), cursor[1]
    return cursor


@bp.route("/admin/jobs")
@allow("admin")
def job_list():
    status = request.args.get("status", ATTENTION) or ATTENTION
    if status != ATTENTION and status != "all" and status not in STATUSES:
        abort(400, f"Unknown status {status!r}; use one of {', '.join(STATUSES)} or all.")
    wanted = RETRYABLE if status == ATTENTION else None if status == "all" else status
    before = _cursor(request.args.get("before"))
    jobs = queries.list_jobs(current_user.organisation_id, wanted, limit=PER_PAGE + 1,
                              before=before)
    older = None
    if len(jobs) > PER_PAGE:
        jobs = jobs[:PER_PAGE]
        older = f"{jobs[-1].updated_at.isoformat()},{jobs[-1].id}"
    counts = queries.count_by_status(current_user.organisation_id)
    progress = queries.retry_all_progress(current_user.organisation_id)
    workers = heartbeat.status(current_user.organisation_id)
    return render_template("jobs/jobs.html", jobs=jobs, counts=counts, status=status,
                           statuses=STATUSES, retryable=RETRYABLE, older=older,
                           first_page=before is None, cap=queries.COUNT_CAP,
                           progress=progress, workers=workers,
                           descriptions=registry.describe_jobs(jobs))


@bp.route("/admin/jobs/<int:job_id>/retry", methods=["POST"])
@allow("admin")
def retry(job_id: int):
    # CSRF is checked by the app-wide CSRFProtect before the view runs (400 without it).
    job = queries.retry_job(job_id, current_user.organisation_id, actor=current_user)
    db.session.commit()
    flash(f"Job #{job.id} ({job.kind}) will be sent again shortly.", "info")
    return redirect(url_for("jobs.job_list", status=request.args.get("status") or None))


@bp.route("/admin/jobs/retry-failed", methods=["POST"])
@allow("admin")
def retry_failed():
    try:
        total = queries.request_retry_all_failed(current_user.organisation_id,
                                                  actor=current_user)
    except Conflict as exc:
        flash(exc.message, "info")
        return redirect(url_for("jobs.job_list"))
    db.session.commit()
    flash(f"{total} failed job(s) are being queued again in the background, paced per LMS; "
          "the progress shows on this page." if total
          else "There were no failed jobs to retry.", "info")
    return redirect(url_for("jobs.job_list"))
