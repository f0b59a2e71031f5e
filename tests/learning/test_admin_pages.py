"""The admin pages of issue 14: assignment rules and the staff roster upload. Bad input
re-renders with the message on its field (422) and writes nothing; changes are audited."""

from __future__ import annotations

import io

from sqlalchemy import select

from lms_plugin.accounts.models import AuditEvent, User
from lms_plugin.extensions import db
from lms_plugin.learning.models import Assignment, AssignmentRule
from tests.conftest import csrf_token
from tests.learning.builders import build_module


def _count(app, model) -> int:
    with app.app_context():
        return len(db.session.scalars(select(model)).all())


def test_add_and_remove_a_rule(app, client, login_as, factory):
    build_module(app)
    login_as("admin")
    learner = factory.user("learner")
    page = client.get("/admin/assignments")
    assert page.status_code == 200 and "No rules yet" in page.get_data(as_text=True)
    token = csrf_token(client, "/admin/assignments")
    response = client.post("/admin/assignments", data={
        "csrf_token": token, "module": "cpoe-basics", "due_days": "30",
        "recurrence_months": "12", "job_roles": "", "reopen_on_retraining": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        rule = db.session.scalar(select(AssignmentRule))
        assigned = set(db.session.scalars(select(Assignment.user_id)))
        assert (rule.due_days, rule.recurrence_months) == (30, 12)
        assert learner in assigned
        audit = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "assignment_rule.add"))
        assert audit.details["after"]["recurrence_months"] == 12 and audit.actor_id
    html = client.get("/admin/assignments").get_data(as_text=True)
    assert "every 12 months" in html and "Everyone" in html
    removed = client.post(f"/admin/assignments/{rule.id}/remove",
                          data={"csrf_token": csrf_token(client, "/admin/assignments")})
    assert removed.status_code == 302
    with app.app_context():
        assert set(db.session.scalars(select(Assignment.closed_reason))) == {"rule_removed"}


def test_bad_rule_reshows_the_form_with_field_messages(app, client, login_as):
    build_module(app)
    login_as("admin")
    token = csrf_token(client, "/admin/assignments")
    for data, message in [
            ({"module": "cpoe-basics", "job_roles": "Nurse RN", "due_days": "3"},
             "Unknown job role(s): Nurse RN"),
            ({"module": "cpoe-basics"}, "Give either a number of days or a fixed due date"),
            ({"module": "cpoe-basics", "due_days": "-1"}, "Number must be between"),
            ({"module": "not-a-module", "due_days": "3"}, "Not a valid choice")]:
        response = client.post("/admin/assignments", data={"csrf_token": token, **data})
        html = response.get_data(as_text=True)
        assert response.status_code == 422 and message in html, html
        assert 'aria-invalid="true"' in html
    assert _count(app, AssignmentRule) == 0 and _count(app, AuditEvent) == 1  # the login


def test_roster_upload(app, client, login_as):
    build_module(app)
    login_as("admin")
    assert client.get("/admin/staff/import").status_code == 200
    bad = (b"email,name,job_role\r\nnope,Ann,nurse\r\nb@example.org,Bob,Nurse RN\r\n"
           b"c@example.org,Cy,nurse\r\n")
    response = client.post("/admin/staff/import", data={
        "csrf_token": csrf_token(client, "/admin/staff/import"),
        "roster": (io.BytesIO(b"\xef\xbb\xbf" + bad), "roster.csv")},
        content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Row 2, email:" in html and "Row 3, job_role:" in html
    assert "2 bad row(s); nothing was imported" in html
    assert _count(app, User) == 1  # the admin only
    good = b"email,name,job_role\nc@example.org,Cy,nurse\n"
    response = client.post("/admin/staff/import", data={
        "csrf_token": csrf_token(client, "/admin/staff/import"),
        "roster": (io.BytesIO(good), "roster.csv")}, content_type="multipart/form-data")
    assert response.status_code == 302
    assert "1 created" in client.get("/admin/staff/import").get_data(as_text=True)
    response = client.post("/admin/staff/import", data={
        "csrf_token": csrf_token(client, "/admin/staff/import"),
        "roster": (io.BytesIO(b"x"), "roster.pdf")}, content_type="multipart/form-data")
    assert response.status_code == 422 and ".csv or .xlsx" in response.get_data(as_text=True)


def test_with_no_published_module_the_rule_form_says_why_the_list_is_empty(app, client,
                                                                         login_as):
    """A fresh install imports the shipped modules as drafts (issue 17): the Module list is
    empty until one is published, and the page says so instead of an empty select."""
    login_as("admin")
    html = client.get("/admin/assignments").get_data(as_text=True)
    assert "No module is published yet" in html and "lms-plugin content publish" in html
    token = csrf_token(client, "/admin/assignments")
    response = client.post("/admin/assignments", data={"csrf_token": token, "due_days": "3"})
    assert response.status_code == 422
    assert "No module is published yet" in response.get_data(as_text=True)
    assert _count(app, AssignmentRule) == 0


def test_a_double_submitted_rule_is_added_once(app, client, login_as, factory):
    """A double click on "Add rule" (or a resubmitted form) must not leave two identical
    current rules; the second answer names the rule that exists."""
    build_module(app)
    login_as("admin")
    factory.user("learner")
    data = {"module": "cpoe-basics", "due_days": "30", "recurrence_months": "12",
            "job_roles": "", "reopen_on_retraining": "y"}
    token = csrf_token(client, "/admin/assignments")
    first = client.post("/admin/assignments", data={"csrf_token": token, **data})
    assert first.status_code == 302
    again = client.post("/admin/assignments", data={"csrf_token": token, **data})
    html = again.get_data(as_text=True)
    assert again.status_code == 422, html
    assert "The same rule exists already (rule" in html and 'aria-invalid="true"' in html
    assert _count(app, AssignmentRule) == 1
    other = client.post("/admin/assignments", data={"csrf_token": token, **data,
                                                    "due_days": "60"})
    assert other.status_code == 302 and _count(app, AssignmentRule) == 2
def test_a_published_module_with_a_draft_open_can_still_be_assigned(app, client, login_as):
    """Revising a module (a new draft beside the published version) must not take it out of
    the rule form: staff are assigned the published version meanwhile."""
    build_module(app)
    login_as("admin")
    opened = client.post("/author/modules/cpoe-basics/draft", data={
        "csrf_token": csrf_token(client, "/author/modules/cpoe-basics"), "from_number": "1"})
    assert opened.status_code == 302, opened.get_data(as_text=True)
    page = client.get("/admin/assignments").get_data(as_text=True)
    assert 'value="cpoe-basics"' in page
    response = client.post("/admin/assignments", data={
        "csrf_token": csrf_token(client, "/admin/assignments"), "module": "cpoe-basics",
        "due_days": "30"})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert _count(app, AssignmentRule) == 1
