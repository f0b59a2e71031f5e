"""A launch's profile custom parameters (job_role, department, facility, hire_date) fill the
staff profile and re-evaluate the person's assignment rules (issue 14)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from lms_plugin.accounts.models import User
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.learning import assignments
from lms_plugin.learning.assignments import RuleSpec
from lms_plugin.learning.models import Assignment
from tests.learning.builders import build_module


def test_profile_from_custom_parameters_assigns_rules(app, client, moodle, launcher):
    org = build_module(app)["organisation_id"]
    with app.app_context():
        assignments.add_rule(org, RuleSpec("cpoe-basics", due_days=30, departments=["ICU"]),
                             actor=None, now=utcnow())
        db.session.commit()
    first = launcher.launch(client, moodle, {"lti:custom": {"department": "ED"}})
    assert first.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Assignment.id)) is None
    # A returning learner (the fast path) whose department and hire date changed
    again = launcher.launch(client, moodle, {"lti:custom": {
        "department": "ICU", "job_role": "nurse", "hire_date": "2026-02-01"}})
    assert again.status_code == 302
    with app.app_context():
        user = db.session.scalars(select(User)).one()
        assert (user.department, user.hire_date) == ("ICU", date(2026, 2, 1))
        assert db.session.scalar(select(Assignment.user_id).where(
            Assignment.closed_at.is_(None))) == user.id
    # A bad hire date is ignored, never a refused launch; moving away closes the assignment
    moved = launcher.launch(client, moodle, {"lti:custom": {
        "department": "ED", "hire_date": "soon"}})
    assert moved.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Assignment.closed_reason)) == "audience"
        assert db.session.scalars(select(User)).one().hire_date == date(2026, 2, 1)
