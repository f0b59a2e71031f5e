# ruff: noqa: F811  (pytest fixtures imported from tests.lti.ags_helpers)
"""Course rosters (NRPS): paging, never-launched people, removals, differences, schedule."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from lms_plugin.accounts.models import RoleGrant, User
from lms_plugin.extensions import db
from lms_plugin.jobs import schedule
from lms_plugin.jobs import services as jobs
from lms_plugin.jobs.models import OutboxJob
from lms_plugin.lti import nrps
from lms_plugin.lti.models import LtiContext, LtiIdentity, LtiMembership
from tests.conftest import login
from tests.lti.ags_helpers import INSTRUCTOR, LEARNER, fake_lms, services  # noqa: F401
from tests.lti.platform import LIS

C0 = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)


def member(sub: str, status: str = "Active", role: str = "Learner", **extra):
    return {"user_id": sub, "status": status, "roles": [LIS + f"membership#{role}"],
            "name": f"Person {sub}", "email": f"{sub}@example.org", **extra}


ROSTER = [member("teacher-1", role="Instructor"), member("nurse-a"), member("nurse-b"),
          member("nurse-c"), member("gone", status="Inactive")]


def _csrf(client, path="/lti/courses"):
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _run(app, now=C0):
    with app.app_context():
        report = jobs.run_due_jobs("w", limit=50, now=now)
        db.session.remove()
        return report


def _memberships(app) -> dict[str, tuple[bool, bool]]:
    """sub -> (active, never launched)."""
    with app.app_context():
        rows = db.session.execute(
            select(LtiIdentity.sub, LtiMembership.active, LtiMembership.last_launch_at)
            .join(LtiMembership, LtiMembership.user_id == LtiIdentity.user_id)).all()
        db.session.remove()
        return {sub: (active, last is None) for sub, active, last in rows}


def _launch_teacher(services, launcher, client):
    services.launch(launcher, client, sub="teacher-1", module="m1", roles=INSTRUCTOR,
                    nrps=True)
    with client.application.app_context():
        return db.session.scalar(select(LtiContext.id))


def test_button_sync_creates_never_launched_members_over_pages(app, client, launcher,
                                                               services):
    lms = services.lms
    lms.members["course-1"] = ROSTER
    context_id = _launch_teacher(services, launcher, client)

    response = client.post(f"/lti/courses/{context_id}/sync",
                           data={"csrf_token": _csrf(client)})
    assert response.status_code == 302
    assert _run(app).outcomes["succeeded"] == 1
    assert lms.requests["GET memberships"] == 3  # five members, two per page

    assert _memberships(app) == {"teacher-1": (True, False), "nurse-a": (True, True),
                                 "nurse-b": (True, True), "nurse-c": (True, True)}
    with app.app_context():
        person = db.session.scalar(select(User).join(
            LtiIdentity, LtiIdentity.user_id == User.id).where(LtiIdentity.sub == "nurse-a"))
        assert person.name == "Person nurse-a" and person.email == "nurse-a@example.org"
        assert person.last_login_at is None
        assert person.organisation_id == db.session.get(LtiContext, context_id).platform \
            .organisation_id
        assert {g.role for g in db.session.scalars(
            select(RoleGrant).where(RoleGrant.user_id == person.id))} == {"learner"}
        assert db.session.scalar(select(func.count()).select_from(LtiIdentity).where(
            LtiIdentity.sub == "gone")) == 0  # inactive and unknown: not created
        assert db.session.get(LtiContext, context_id).roster_synced_at is not None

    page = client.get("/lti/courses").get_data(as_text=True)
    row = re.sub(r"\s+", " ", page)
    assert "<td>4</td> <td>3</td> <td>0</td>" in row

    # A member who never launched launches now: the same person, not a second one.
    services.launch(launcher, app.test_client(), sub="nurse-a", module="m1")
    assert _memberships(app)["nurse-a"] == (True, False)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LtiIdentity).where(
            LtiIdentity.sub == "nurse-a")) == 1


def test_removed_members_become_inactive_and_come_back(app, client, launcher, services):
    lms = services.lms
    lms.members["course-1"] = ROSTER
    context_id = _launch_teacher(services, launcher, client)
    with app.app_context():
        nrps.request_sync(context_id, db.session.get(LtiContext, context_id).platform
                          .organisation_id)
        db.session.commit()
    _run(app)
    lms.members["course-1"] = [ROSTER[0], ROSTER[1], member("nurse-c", status="Inactive")]
    with app.app_context():
        org = db.session.get(LtiContext, context_id).platform.organisation_id
        nrps.request_sync(context_id, org, now=C0 + timedelta(minutes=1))
        db.session.commit()
    _run(app, C0 + timedelta(minutes=1))
    state = _memberships(app)
    assert state["nurse-b"][0] is False and state["nurse-c"][0] is False
    assert state["nurse-a"][0] is True and state["teacher-1"][0] is True
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LtiIdentity)) == 4
        removed = db.session.scalar(select(LtiMembership).join(
            LtiIdentity, LtiIdentity.user_id == LtiMembership.user_id)
            .where(LtiIdentity.sub == "nurse-b"))
        assert removed.removed_at is not None
    # Back in the course: a launch reactivates the enrolment.
    services.launch(launcher, app.test_client(), sub="nurse-b", module="m1")
    assert _memberships(app)["nurse-b"] == (True, False)


def test_differences_link_is_used_on_the_next_sync(app, client, launcher, services):
    lms = services.lms
    lms.members["course-1"] = ROSTER
    lms.differences = {"course-1": [member("nurse-a", status="Deleted"), member("nurse-d")]}
    context_id = _launch_teacher(services, launcher, client)
    with app.app_context():
        org = db.session.get(LtiContext, context_id).platform.organisation_id
        nrps.request_sync(context_id, org)
        db.session.commit()
    _run(app)
    with app.app_context():
        assert db.session.get(LtiContext, context_id).roster_differences_url.endswith(
            "since=1")
        nrps.request_sync(context_id, org, now=C0 + timedelta(minutes=1))
        db.session.commit()
    _run(app, C0 + timedelta(minutes=1))
    state = _memberships(app)
    assert state["nurse-a"][0] is False  # listed as deleted
    assert state["nurse-d"] == (True, True)  # new in the course
    assert state["nurse-b"][0] is True  # not in the differences: unchanged
    with app.app_context():
        assert db.session.get(LtiContext, context_id).roster_differences_url.endswith(
            "since=2")


def test_failures_retry_and_refusals_are_recorded(app, client, launcher, services):
    lms = services.lms
    lms.members["course-1"] = ROSTER
    context_id = _launch_teacher(services, launcher, client)
    with app.app_context():
        org = db.session.get(LtiContext, context_id).platform.organisation_id
        job_id = nrps.request_sync(context_id, org).id
        db.session.commit()
    lms.forced = ["ok", "500"]  # the token, then the second page fails
    _run(app)
    with app.app_context():
        job = db.session.get(OutboxJob, job_id)
        assert job.status == "pending" and "HTTP 500" in job.last_error
        assert db.session.scalar(select(func.count()).select_from(LtiMembership)) == 1
    _run(app, C0 + timedelta(hours=1))
    assert len(_memberships(app)) == 4

    lms.tokens.clear()
    lms.client_id = "someone-else"  # the platform no longer knows our registration
    with app.app_context():
        job_id = nrps.request_sync(context_id, org, now=C0 + timedelta(hours=2)).id
        db.session.commit()
    _run(app, C0 + timedelta(hours=2))
    with app.app_context():
        job = db.session.get(OutboxJob, job_id)
        assert job.status == "rejected" and "HTTP 400" in job.last_error


def test_schedule_fans_out_one_sync_per_nrps_course(app, client, launcher, services):
    lms = services.lms
    lms.members["course-1"] = ROSTER[:2]
    _launch_teacher(services, launcher, client)
    services.launch(launcher, app.test_client(), sub="x", module="m1", context="no-nrps")
    with app.app_context():
        assert "nrps.sync_all" in schedule.enqueue_due(C0)
    _run(app)  # the fan-out enqueues one sync (only course-1 offered NRPS)…
    _run(app, C0 + timedelta(seconds=1))  # …which then runs
    with app.app_context():
        syncs = db.session.scalars(select(OutboxJob).where(OutboxJob.kind == "nrps.sync")).all()
        assert [j.status for j in syncs] == ["succeeded"]
    assert set(_memberships(app)) == {"teacher-1", "nurse-a", "x"}


def test_sync_button_refuses_courses_without_roster_and_learners(app, client, launcher,
                                                                services, factory):
    services.launch(launcher, client, sub="teacher-1", module="m1", roles=INSTRUCTOR)
    with app.app_context():
        context_id = db.session.scalar(select(LtiContext.id))
    response = client.post(f"/lti/courses/{context_id}/sync",
                           data={"csrf_token": _csrf(client)})
    assert response.status_code == 422
    learner = app.test_client()
    services.launch(launcher, learner, sub="nurse-z", module="m1", roles=LEARNER)
    assert learner.get("/lti/courses").status_code == 403
    admin = app.test_client()
    with app.app_context():
        org_name = db.session.get(LtiContext, context_id).platform.organisation.name
    login(admin, factory.email_of(factory.user("admin", org=org_name)))
    assert "Course course-1" in admin.get("/lti/courses").get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxJob)) == 0
