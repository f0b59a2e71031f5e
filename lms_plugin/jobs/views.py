"""The admin's background-jobs page: failed and rejected deliveries, and retrying them."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from lms_plugin.authz import allow
from lms_plugin.extensions import db
from lms_plugin.jobs import services
from lms_plugin.jobs.models import RETRYABLE, STATUSES

bp = Blueprint("jobs", __name__, template_folder="templates")

#: The page opens on what needs a person: deliveries that failed or were refused.
ATTENTION = "attention"


@bp.route("/admin/jobs")
@allow("admin")
def job_list():
    status = request.args.get("status", ATTENTION) or ATTENTION
    if status != ATTENTION and status != "all" and status not in STATUSES:
        abort(400, f"Unknown status {status!r}; use one of {', '.join(STATUSES)} or all.")
    wanted = RETRYABLE if status == ATTENTION else None if status == "all" else status
    jobs = services.list_jobs(current_user.organisation_id, wanted)
    counts = services.count_by_status(current_user.organisation_id)
    return render_template("jobs/jobs.html", jobs=jobs, counts=counts, status=status,
                           statuses=STATUSES, retryable=RETRYABLE)


@bp.route("/admin/jobs/<int:job_id>/retry", methods=["POST"])
@allow("admin")
def retry(job_id: int):
    # CSRF is checked by the app-wide CSRFProtect before the view runs (400 without it).
    job = services.retry_job(job_id, current_user.organisation_id, actor=current_user)
    db.session.commit()
    flash(f"Job #{job.id} ({job.kind}) will be sent again shortly.", "info")
    return redirect(url_for("jobs.job_list", status=request.args.get("status") or None))


@bp.route("/admin/jobs/retry-failed", methods=["POST"])
@allow("admin")
def retry_failed():
    ids = services.retry_all_failed(current_user.organisation_id, actor=current_user)
    db.session.commit()
    flash(f"{len(ids)} failed job(s) will be sent again shortly." if ids
          else "There were no failed jobs to retry.", "info")
    return redirect(url_for("jobs.job_list"))
