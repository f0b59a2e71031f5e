"""LMS courses and their rosters (NRPS): counts, "never launched", and a sync button."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from lms_plugin.authz import COURSE_AUTHOR, allow
from lms_plugin.extensions import db
from lms_plugin.lti import course_scope

bp = Blueprint("lti_roster", __name__, url_prefix="/lti", template_folder="templates")


@bp.route("/courses")
@allow("author", "admin", COURSE_AUTHOR)
def courses():
    return render_template("lti/courses.html", courses=course_scope.roster_courses(
        current_user, course_scope.session_course()))


@bp.route("/courses/<int:context_id>/sync", methods=["POST"])
@allow("author", "admin", COURSE_AUTHOR)
def sync(context_id: int):
    course_scope.request_roster_sync(current_user, context_id, course_scope.session_course())
    db.session.commit()
    flash("The roster will be fetched from the LMS shortly.", "info")
    return redirect(url_for("lti_roster.courses"))
