"""Clinical sign-off in the browser (issue 17, ``/signoff``): the drafts waiting for the
signed-in reviewer, a read-only view of a draft's lessons and questions, and "Approve this
version".

Who: any signed-in person who is a required reviewer in their organisation (named on a
reviewer, or holding a reviewer role: ``catalog.signoff``). A reviewer is not an
organisation role, so the routes are ``@allow(AUTHENTICATED)`` and the view checks
``signoff.is_reviewer`` (403 otherwise); another organisation's version is a 404.

Approving goes through ``signoff.approve`` (the same code path as ``lms-plugin signoff
approve``; audited ``signoff.approve``). The form carries the content hash the reviewer read:
if the draft changed since, the approval is refused with 409 and nothing is written.
"""

from __future__ import annotations

import re

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import select
from wtforms import HiddenField
from wtforms.validators import InputRequired, Length

from lms_plugin.authz import AUTHENTICATED, allow
from lms_plugin.catalog import signoff
from lms_plugin.catalog.models import Module, ModuleVersion
from lms_plugin.errors import Forbidden, NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.markdown import render_markdown

bp = Blueprint("signoff", __name__, template_folder="templates", url_prefix="/signoff")

PREVIEWERS = frozenset({"author", "officer", "admin"})  # learning's preview (learning/views.py)


class ApproveForm(FlaskForm):
    """CSRF, the content hash the reviewer read, and the reviewer role they sign as."""

    content_hash = HiddenField(validators=[InputRequired(), Length(max=64)])
    role = HiddenField(validators=[Length(max=signoff.ROLE_NAME_MAX)])


def _demoted(html: Markup, by: int = 3) -> Markup:
    """Sanitized lesson HTML with its headings moved ``by`` levels down (at most h6), so a
    lesson's own "# Title" sits under the page's "Lessons" heading (h2) and the lesson's
    h3. Only tag names change: the markup was sanitized by ``render_markdown``."""
    demoted = re.sub(r"<(/?)h([1-6])\b",
                     lambda m: f"<{m.group(1)}h{min(int(m.group(2)) + by, 6)}", str(html))
    return Markup(demoted)  # noqa: S704  (render_markdown's sanitized HTML, tag names only)


def _require_reviewer() -> None:
    if not signoff.is_reviewer(current_user):
        raise Forbidden("Only the clinical reviewers your organisation names can sign off "
                        "modules. An admin names them (lms-plugin signoff reviewers set).")


def _version(version_id: int) -> ModuleVersion:
    """A version of the signed-in person's organisation (404 otherwise)."""
    version = db.session.scalar(
        select(ModuleVersion).join(Module, Module.id == ModuleVersion.module_id)
        .where(ModuleVersion.id == version_id,
               Module.organisation_id == current_user.organisation_id))
    if version is None:
        raise NotFound("no such module version in your organisation")
    return version


@bp.get("")
@allow(AUTHENTICATED)
def waiting():
    _require_reviewer()
    items = signoff.drafts(current_user.organisation_id, current_user)
    return render_template("signoff/waiting.html", mine=[d for d in items if d.mine],
                           can_preview=bool(current_user.role_names & PREVIEWERS))


def _render_review(version: ModuleVersion, status: int = 200, error: str | None = None):
    states = signoff.status(version)
    holds = signoff.held_roles(version.module.organisation_id, current_user.id)
    mine = [s for s in states if s.approval is None
            and signoff.stands_for(s.reviewer, current_user.id, holds)]
    forms = [ApproveForm(formdata=None, content_hash=version.content_hash,
                         role=s.reviewer.role_name) for s in mine]
    # Localisation markers highlighted, as authors see them: local policy is what a
    # hospital's reviewers check.
    lessons = [(lesson, _demoted(render_markdown(lesson.body_markdown, version.module_id,
                                                 highlight_local=True)))
               for lesson in version.lessons]
    return render_template("signoff/review.html", version=version, states=states,
                           mine=list(zip(mine, forms, strict=True)), lessons=lessons,
                           error=error,
                           can_preview=bool(current_user.role_names & PREVIEWERS)), status


@bp.get("/<int:version_id>")
@allow(AUTHENTICATED)
def review(version_id: int):
    version = _version(version_id)
    _require_reviewer()
    return _render_review(version)


@bp.post("/<int:version_id>/approve")
@allow(AUTHENTICATED)
def approve(version_id: int):
    version = _version(version_id)
    _require_reviewer()
    form = ApproveForm()
    if not form.validate_on_submit():
        return _render_review(version, 422, "The form was incomplete or expired: "
                              "reload the page and approve again.")
    try:
        approval = signoff.approve(version, current_user, role=form.role.data or None,
                                   expected_hash=form.content_hash.data)
    except ValidationFailed as exc:
        db.session.rollback()
        return _render_review(version, 422, exc.message)
    db.session.commit()
    flash(f"You approved {version.title} version {version.number} as "
          f"{approval.role_name}.", "info")
    return redirect(url_for("signoff.waiting"))
