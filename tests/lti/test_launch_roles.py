# ruff: noqa: F811  (pytest fixtures imported from tests.lti.ags_helpers)
"""LTI roles are scoped to their course and refreshed at every launch (issue 10 item 5).

An Instructor of course A authors course A only (its roster, its sync, its deep-linking
picker), not course B nor the organisation (no draft previews, no unlimited attempts); a
later Learner launch ends it, in every session; TeachingAssistant and Mentor never author;
only the registration's ``grant_org_roles`` makes launch roles organisation-wide.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from lms_plugin.accounts.models import RoleGrant, User
from lms_plugin.accounts.services import grant_role
from lms_plugin.extensions import db
from lms_plugin.jobs.models import OutboxJob
from lms_plugin.lti import nrps
from lms_plugin.lti.launch import course_rights, lti_rights
from lms_plugin.lti.models import LtiContext, LtiIdentity, LtiMembership
from tests.learning.builders import build_module
from tests.lti.ags_helpers import INSTRUCTOR, LEARNER, fake_lms, services  # noqa: F401
from tests.lti.platform import LIS

MENTOR = [LIS + "membership#Mentor"]
TA = [LIS + "membership/Instructor#TeachingAssistant"]
DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"


def _csrf(client, path: str = "/lti/courses") -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def _context(app, key: str) -> int:
    with app.app_context():
        return db.session.scalar(select(LtiContext.id).where(LtiContext.context_id == key))


def _grants(app, sub: str) -> dict[str, str]:
    """role -> source of the person's organisation-wide grants."""
    with app.app_context():
        rows = db.session.execute(
            select(RoleGrant.role, RoleGrant.source)
            .join(LtiIdentity, LtiIdentity.user_id == RoleGrant.user_id)
            .where(LtiIdentity.sub == sub)).all()
        db.session.remove()
        return dict(rows)


def _sync_jobs(app) -> list[int]:
    with app.app_context():
        jobs = db.session.scalars(select(OutboxJob).where(OutboxJob.kind == nrps.KIND)).all()
        db.session.remove()
        return sorted(j.payload["context_id"] for j in jobs)


def _deep_link_launch(launcher, client, platform, roles, context: str = "course-A"):
    return launcher.launch(client, platform, {
        "lti:message_type": "LtiDeepLinkingRequest",
        "lti:context": {"id": context, "title": f"Course {context}"},
        DL_SETTINGS: {"deep_link_return_url": "https://lms.example/return",
                      "accept_types": ["ltiResourceLink"],
                      "accept_presentation_document_targets": ["iframe", "window"]},
    }, drop=("lti:resource_link",), roles=roles)


def test_instructor_in_course_a_cannot_use_course_b(app, client, launcher, services):
    # Course B exists (another instructor launched it, offering NRPS).
    services.launch(launcher, app.test_client(), sub="teacher-b", module="m1",
                    context="course-B", roles=INSTRUCTOR, nrps=True)
    services.launch(launcher, client, sub="teacher-a", module="m1", context="course-A",
                    roles=INSTRUCTOR, nrps=True)
    a, b = _context(app, "course-A"), _context(app, "course-B")

    page = client.get("/lti/courses")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Course course-A" in html and "Course course-B" not in html

    token = _csrf(client)
    refused = client.post(f"/lti/courses/{b}/sync", data={"csrf_token": token})
    assert refused.status_code == 403
    assert _sync_jobs(app) == []  # nothing queued for B
    assert client.post(f"/lti/courses/{a}/sync", data={"csrf_token": token}).status_code == 302
    assert _sync_jobs(app) == [a]
    # Nothing organisation-wide came with it.
    assert _grants(app, "teacher-a") == {"learner": "lti"}


def test_instructor_rights_follow_the_launchs_course(app, client, launcher, services):
    """The same person launched from course B as a learner: course A's rights do not come
    along (the course is the session's), so neither roster nor picker is theirs."""
    services.launch(launcher, client, sub="teacher-a", module="m1", context="course-A",
                    roles=INSTRUCTOR, nrps=True)
    assert client.get("/lti/courses").status_code == 200
    services.launch(launcher, client, sub="teacher-a", module="m1", context="course-B",
                    roles=LEARNER, nrps=True)
    assert client.get("/lti/courses").status_code == 403
    assert client.get("/lti/deep-link").status_code == 403
    a = _context(app, "course-A")
    # A POST to course A's sync from the course-B session is refused too (policy first).
    assert client.post(f"/lti/courses/{a}/sync").status_code in (400, 403)
    assert _sync_jobs(app) == []


def test_learner_launch_removes_instructor_rights_in_every_session(app, launcher, services):
    teacher = app.test_client()
    services.launch(launcher, teacher, sub="p-1", module="m1", context="course-A",
                    roles=INSTRUCTOR, nrps=True)
    assert teacher.get("/lti/courses").status_code == 200
    # The LMS now says this person is a learner in course A (another browser, same course).
    other = app.test_client()
    services.launch(launcher, other, sub="p-1", module="m1", context="course-A",
                    roles=LEARNER, nrps=True)
    assert other.get("/lti/courses").status_code == 403
    assert teacher.get("/lti/courses").status_code == 403  # the older session lost it too
    with app.app_context():
        membership = db.session.scalars(select(LtiMembership)).one()
        assert membership.roles == LEARNER
        assert course_rights(membership.roles) == frozenset()
    assert _grants(app, "p-1") == {"learner": "lti"}


@pytest.mark.parametrize("roles", [MENTOR, TA, ["TeachingAssistant"], ["Mentor"],
                                   ["urn:lti:role:ims/lis/TeachingAssistant"]],
                         ids=["mentor", "ta-uri", "ta", "mentor-short", "ta-urn"])
def test_mentor_and_teaching_assistant_do_not_author(app, client, moodle, launcher, roles):
    assert launcher.launch(client, moodle, roles=roles).status_code == 302
    assert _grants(app, "user-1") == {"learner": "lti"}
    assert client.get("/lti/courses").status_code == 403
    assert client.get("/lti/deep-link").status_code == 403
    # Nor may they place content: the deep-linking launch is refused, nothing signed in.
    browser = app.test_client()
    assert _deep_link_launch(launcher, browser, moodle, roles).status_code == 403
    assert lti_rights(roles).course == frozenset()


def test_instructor_gets_no_draft_previews_nor_preview_attempts(app, client, moodle,
                                                                 launcher):
    """Previews (drafts, attempts that never count) are for organisation-wide authors."""
    build_module(app, slug="draft-module", status="draft")
    build_module(app, slug="live-module")
    assert launcher.launch(client, moodle, roles=INSTRUCTOR).status_code == 302
    assert client.get("/modules/draft-module?preview=1").status_code == 403
    assert client.get("/modules/live-module?preview=1").status_code == 403
    assert client.get("/modules/draft-module").status_code == 404
    assert client.get("/modules/live-module").status_code == 200  # as the learner they are
    home = client.get("/home").get_data(as_text=True)
    assert "draft-module" not in home


def test_course_author_uses_the_picker_of_their_own_deep_linking_launch(app, client, moodle,
                                                                        launcher):
    build_module(app, slug="live-module")
    response = _deep_link_launch(launcher, client, moodle, INSTRUCTOR)
    assert response.status_code == 302 and response.headers["Location"] == "/lti/deep-link"
    assert client.get("/lti/deep-link").status_code == 200
    assert _grants(app, "user-1") == {"learner": "lti"}


def test_registration_setting_grants_and_refreshes_org_roles(app, client, make_platform,
                                                             launcher):
    platform = make_platform(grant_org_roles=True)
    assert launcher.launch(client, platform, roles=INSTRUCTOR).status_code == 302
    assert _grants(app, "user-1") == {"author": "lti", "learner": "lti"}
    # The returning person's next launch as a learner removes the role (a removed role is a
    # change, also for the returning-learner fast path).
    assert launcher.launch(client, platform, roles=LEARNER).status_code == 302
    assert _grants(app, "user-1") == {"learner": "lti"}
    assert client.get("/lti/courses").status_code == 403
    # And back again.
    assert launcher.launch(client, platform, roles=INSTRUCTOR).status_code == 302
    assert _grants(app, "user-1") == {"author": "lti", "learner": "lti"}


def test_setting_off_by_default_even_with_a_role_mapping(app, client, make_platform,
                                                         launcher):
    platform = make_platform(role_mapping={"Mentor": ["officer"]})
    assert launcher.launch(client, platform, roles=MENTOR + INSTRUCTOR).status_code == 302
    assert _grants(app, "user-1") == {"learner": "lti"}


def test_local_grants_survive_launches(app, client, moodle, launcher):
    """An admin's grant (source local) is not the launch's to remove."""
    assert launcher.launch(client, moodle, roles=LEARNER).status_code == 302
    with app.app_context():
        user = db.session.scalar(select(User).join(
            LtiIdentity, LtiIdentity.user_id == User.id).where(LtiIdentity.sub == "user-1"))
        grant_role(user, "officer")
        db.session.commit()
    assert launcher.launch(client, moodle, roles=LEARNER).status_code == 302
    assert _grants(app, "user-1") == {"learner": "lti", "officer": "local"}


def test_roster_sync_grants_no_organisation_roles(app, client, launcher, services):
    services.lms.members["course-1"] = [
        {"user_id": "teacher-1", "status": "Active", "roles": INSTRUCTOR},
        {"user_id": "teacher-2", "status": "Active", "roles": INSTRUCTOR, "name": "T Two"},
    ]
    services.launch(launcher, client, sub="teacher-1", module="m1", roles=INSTRUCTOR,
                    nrps=True)
    context_id = _context(app, "course-1")
    response = client.post(f"/lti/courses/{context_id}/sync",
                           data={"csrf_token": _csrf(client)})
    assert response.status_code == 302
    with app.app_context():
        from lms_plugin.jobs import services as jobs

        jobs.run_due_jobs("w", limit=10)
        db.session.commit()
        db.session.remove()
    assert _grants(app, "teacher-2") == {"learner": "lti"}


def test_cli_turns_the_registration_setting_on_and_off(app, client, moodle, launcher):
    from lms_plugin.lti.models import LtiPlatform

    runner = app.test_cli_runner()
    result = runner.invoke(args=["platform", "org-roles", str(moodle.platform_id), "on"])
    assert result.exit_code == 0, result.output
    assert "grant organisation-wide roles" in result.output
    assert launcher.launch(client, moodle, roles=INSTRUCTOR).status_code == 302
    assert _grants(app, "user-1") == {"author": "lti", "learner": "lti"}
    result = runner.invoke(args=["platform", "org-roles", str(moodle.platform_id), "off"])
    assert result.exit_code == 0 and "stay in their course" in result.output
    # The next launch (same roles) removes what the setting had given.
    assert launcher.launch(client, moodle, roles=INSTRUCTOR).status_code == 302
    assert _grants(app, "user-1") == {"learner": "lti"}
    with app.app_context():
        assert db.session.get(LtiPlatform, moodle.platform_id).grant_org_roles is False
    bad = runner.invoke(args=["platform", "org-roles", "999999", "on"])
    assert bad.exit_code != 0


def test_courses_link_shown_to_the_course_author_only(app, client, moodle, launcher):
    assert launcher.launch(client, moodle, roles=INSTRUCTOR).status_code == 302
    assert 'href="/lti/courses"' in client.get("/home").get_data(as_text=True)
    learner = app.test_client()
    assert launcher.launch(learner, moodle, roles=LEARNER, sub="l-1").status_code == 302
    assert 'href="/lti/courses"' not in learner.get("/home").get_data(as_text=True)
