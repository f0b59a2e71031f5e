"""LMS courses and their rosters (NRPS): counts, "never launched", and a sync button."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from lms_plugin.authz import allow
from lms_plugin.extensions import db
from lms_plugin.lti import nrps

bp = Blueprint("lti_roster", __name__, url_prefix="/lti", template_folder="templates")


@bp.route("/courses")
@allow("author", "admin")
def courses():
    return render_template("lti/courses.html",
                           courses=nrps.list_courses(current_user.organisation_id))


@bp.route("/courses/<int:context_id>/sync", methods=["POST"])
@allow("author", "admin")
def sync(context_id: int):
    nrps.request_sync(context_id, current_user.organisation_id)
    db.session.commit()
    flash("The roster will be fetched from the LMS shortly.", "info")
    return redirect(url_for("lti_roster.courses"))
