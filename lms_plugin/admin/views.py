"""The admin home and a person's page."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from lms_plugin.accounts.forms import ActiveForm, LocalSigninForm, RoleForm
from lms_plugin.admin import services
from lms_plugin.authz import ROLES, allow
from lms_plugin.jobs import heartbeat, queries
from lms_plugin.lti import services as lti_services

bp = Blueprint("admin", __name__, template_folder="templates")


@bp.route("/admin")
@allow("admin")
def home():
    """Platforms, deliveries (jobs) and people at a glance, with the worker warning."""
    org_id = current_user.organisation_id
    return render_template(
        "admin/home.html", counts=services.home_counts(org_id),
        platforms=lti_services.list_platforms(org_id),
        last=lti_services.last_launches(org_id),
        jobs=queries.count_by_status(org_id, cap=queries.COUNT_CAP),
        cap=queries.COUNT_CAP, workers=heartbeat.status(org_id))


@bp.route("/admin/users/<int:user_id>")
@allow("admin")
def person(user_id: int):
    record = services.person_record(current_user.organisation_id, user_id)
    held = {g.role for g in record.grants}
    role_form = RoleForm()
    role_form.role.choices = [(r, r.capitalize()) for r in ROLES if r not in held]
    return render_template("admin/person.html", record=record, person=record.user,
                           role_form=role_form, button=ActiveForm(),
                           signin_form=LocalSigninForm(formdata=None))
