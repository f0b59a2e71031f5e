"""Admin pages of issue 14: assignment rules (``/admin/assignments``) and the staff roster
upload (``/admin/staff/import``). Thin: validate the form, one edge call, render; every
change is audited by the services and committed once here."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from lms_plugin.authz import allow
from lms_plugin.db import utcnow
from lms_plugin.errors import DomainError
from lms_plugin.extensions import db
from lms_plugin.learning import assignments, services
from lms_plugin.learning.admin_forms import RemoveRuleForm, RosterForm, RuleForm
from lms_plugin.learning.cli import import_roster_file

bp = Blueprint("learning_admin", __name__, template_folder="templates")

#: Which form field a service's ``field`` names (the rest go on the module select).
_FIELDS = {"due": "due_days", "due_days": "due_days", "recurrence_months": "recurrence_months",
           "job_roles": "job_roles", "module": "module"}


def _split(text: str | None) -> list[str]:
    return [v.strip() for v in (text or "").split(",") if v.strip()]


def _rules_page(form: RuleForm, status: int = 200):
    org_id = current_user.organisation_id
    return render_template(
        "learning/admin_rules.html", form=form, remove_form=RemoveRuleForm(),
        rules=assignments.list_rules(org_id),
        job_roles=sorted(assignments.known_job_roles(org_id))), status


def _rule_form() -> RuleForm:
    form = RuleForm()
    form.module.choices = [(m.slug, f"{v.title} ({m.slug})") for m, v in
                           services.organisation_modules(current_user.organisation_id,
                                                         published=True)]
    return form


@bp.get("/admin/assignments")
@allow("admin")
def rules():
    return _rules_page(_rule_form())


@bp.post("/admin/assignments")
@allow("admin")
def add_rule():
    form = _rule_form()
    if form.validate_on_submit():
        spec = assignments.RuleSpec(
            module_slug=form.module.data, name=form.name.data or "",
            due_days=form.due_days.data, due_on=form.due_on.data,
            recurrence_months=form.recurrence_months.data,
            facilities=_split(form.facilities.data), departments=_split(form.departments.data),
            job_roles=_split(form.job_roles.data),
            reopen_on_retraining=bool(form.reopen_on_retraining.data))
        try:
            rule = assignments.add_rule(current_user.organisation_id, spec, actor=current_user,
                                        now=utcnow())
        except DomainError as exc:
            db.session.rollback()
            getattr(form, _FIELDS.get(exc.field or "", "module")).errors.append(exc.message)
        else:
            db.session.commit()
            flash(f"Rule {rule.id} added and evaluated.", "info")
            return redirect(url_for("learning_admin.rules"))
    return _rules_page(form, 422)


@bp.post("/admin/assignments/<int:rule_id>/remove")
@allow("admin")
def remove_rule(rule_id: int):
    if not RemoveRuleForm().validate_on_submit():
        return _rules_page(_rule_form(), 400)
    assignments.remove_rule(current_user.organisation_id, rule_id, actor=current_user,
                            now=utcnow())
    db.session.commit()
    flash(f"Rule {rule_id} removed; its open assignments are closed.", "info")
    return redirect(url_for("learning_admin.rules"))


@bp.route("/admin/staff/import", methods=["GET", "POST"])
@allow("admin")
def staff_import():
    form = RosterForm()
    problems = []
    if form.validate_on_submit():
        upload = form.roster.data
        try:
            result = import_roster_file(current_user.organisation_id,
                                        upload.filename or "roster", upload.read(),
                                        leavers=bool(form.leavers.data), actor=current_user)
        except DomainError as exc:
            db.session.rollback()
            form.roster.errors.append(exc.message)
        else:
            if result.ok:
                db.session.commit()
                flash(f"Roster imported: {result.line()}.", "info")
                return redirect(url_for("learning_admin.staff_import"))
            db.session.rollback()
            problems = result.problems
            form.roster.errors.append(f"{len(problems)} bad row(s); nothing was imported "
                                      "(listed below).")
    status = 422 if form.is_submitted() else 200
    return render_template("learning/admin_staff_import.html", form=form,
                           problems=problems[:500], more=max(0, len(problems) - 500)), status
