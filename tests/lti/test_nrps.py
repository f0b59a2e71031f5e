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


def _csrf(client, path="/auth/login"):
    # Inside an LMS launch there is no sign-out form (issue 12.6): any page with a form.
    from tests.conftest import csrf_token

    return csrf_token(client, path)


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


# --------------------------------------------------------------------------- scale (issue 18)


def _course(services, launcher, client, name: str) -> int:
    services.launch(launcher, client, sub=f"teacher-{name}", module="m1", roles=INSTRUCTOR,
                    nrps=True, context=name, link=f"link-{name}")
    with client.application.app_context():
        return db.session.scalar(select(LtiContext.id).where(LtiContext.context_id == name))


def _sync_counted(app, context_id: int) -> int:
    from tests.statements import counted

    with app.app_context():
        with counted() as seen:
            nrps.sync_context(context_id, C0)
        db.session.commit()
        db.session.remove()
    return len(seen)


def test_roster_sync_runs_a_constant_number_of_statements_per_page(app, client, launcher,
                                                                  services):
    """100, 600 and 5,000 members over the fake LMS on loopback (500 per page): the
    statements grow by the same constant per page, never per member (was ~3 per member)."""
    lms = services.lms
    lms.page_size = nrps.CHUNK
    lms.members["warm-up"] = [member("w-1")]  # the first sync also fetches and caches a token
    _sync_counted(app, _course(services, launcher, app.test_client(), "warm-up"))
    sizes = {"small": 100, "two-pages": 600, "big": 5000}
    counts = {}
    for name, size in sizes.items():
        lms.members[name] = [member(f"{name}-{i}", role="Instructor" if i % 50 == 0
                                    else "Learner") for i in range(size)]
        context_id = _course(services, launcher, app.test_client(), name)
        counts[name] = _sync_counted(app, context_id)
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(LtiMembership).where(
                LtiMembership.context_id == context_id,
                LtiMembership.active.is_(True))) == size  # the teacher is not listed
    per_page = counts["two-pages"] - counts["small"]
    assert per_page <= 8, counts
    assert counts["big"] == counts["small"] + 9 * per_page, counts
    # A second sync of the big course (nothing new, nothing changed) stays bounded too.
    with app.app_context():
        big = db.session.scalar(select(LtiContext.id).where(LtiContext.context_id == "big"))
    assert _sync_counted(app, big) <= counts["small"] + 9 * per_page
    with app.app_context():
        # Listed Instructors who never launched get no organisation-wide author rights.
        person = db.session.scalar(select(LtiIdentity.user_id).where(
            LtiIdentity.sub == "big-50"))
        assert set(db.session.scalars(select(RoleGrant.role).where(
            RoleGrant.user_id == person))) == {"learner"}
        assert db.session.scalar(select(func.count()).select_from(User)) == 5701 + 4


def test_an_empty_or_truncated_roster_removes_nobody_and_says_so(app, client, launcher,
                                                                 services, factory):
    lms = services.lms
    lms.members["course-1"] = ROSTER
    context_id = _launch_teacher(services, launcher, client)
    assert _sync_counted(app, context_id)
    assert [a for a, _ in _memberships(app).values()] == [True] * 4

    lms.members["course-1"] = []  # a platform hiccup
    _sync_counted(app, context_id)
    assert [a for a, _ in _memberships(app).values()] == [True] * 4
    lms.members["course-1"] = [ROSTER[1]]  # truncated: 1 of 4 < 0.5
    _sync_counted(app, context_id)
    assert [a for a, _ in _memberships(app).values()] == [True] * 4
    with app.app_context():
        warning = db.session.get(LtiContext, context_id).roster_warning
        assert "listed 1 active member(s) of the 4 known" in warning
        org_name = db.session.get(LtiContext, context_id).platform.organisation.name
    admin = app.test_client()
    login(admin, factory.email_of(factory.user("admin", org=org_name)))
    page = admin.get("/lti/courses").get_data(as_text=True)
    assert "Roster looked incomplete" in page and "nobody was removed" in page

    # A platform offering "differences": a doubtful roster is not a base for changes.
    lms.differences = {"course-1": []}
    _sync_counted(app, context_id)
    with app.app_context():
        assert db.session.get(LtiContext, context_id).roster_differences_url is None
    lms.differences = None

    # With the share lowered, the same roster is believed; a full one clears the warning.
    app.config["LMS_ROSTER_MIN_SHARE"] = 0.2
    try:
        _sync_counted(app, context_id)
    finally:
        app.config["LMS_ROSTER_MIN_SHARE"] = 0.5
    assert sum(a for a, _ in _memberships(app).values()) == 1
    lms.members["course-1"] = ROSTER
    _sync_counted(app, context_id)
    with app.app_context():
        assert db.session.get(LtiContext, context_id).roster_warning is None
    assert "Roster looked incomplete" not in admin.get("/lti/courses").get_data(as_text=True)


def test_the_periodic_fan_out_spreads_course_syncs_over_time(app, client, launcher,
                                                           services):
    for name in ("c1", "c2", "c3", "c4"):
        _course(services, launcher, app.test_client(), name)
    with app.app_context():
        assert nrps.enqueue_all(C0) == 4
        db.session.commit()
        starts = sorted(db.session.scalars(select(OutboxJob.next_attempt_at).where(
            OutboxJob.kind == "nrps.sync")))
    starts = [s.replace(tzinfo=UTC) if s.tzinfo is None else s for s in starts]
    assert starts == [C0 + nrps.SYNC_SPREAD * i / 4 for i in range(4)]
    # Only the first is due now: a worker's first poll does not start every course at once.
    report = _run(app, C0)
    assert report.claimed == 1
