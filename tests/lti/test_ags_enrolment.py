# ruff: noqa: F811  (pytest fixtures imported from tests.lti.ags_helpers)
"""Grades go only to the courses the learner is enrolled in (issue 11 item 10).

A module placed in several courses of one platform has a resource link (and a gradebook
column) in each. A graded attempt queues a score for the links of the courses where the
learner has an *active* membership: never for a course they were never in, nor for one the
roster sync says they have left (the platform would refuse it, Moodle with a 400, and the
refusal would sit on /admin/jobs); a new launch from that course enrols them again.

Through the public surface: LTI launches, the roster sync against the fake LMS, quiz
attempts through the learning services, the worker, and the fake LMS gradebook.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from lms_plugin.extensions import db
from lms_plugin.jobs import services as jobs
from lms_plugin.jobs.models import OutboxJob
from lms_plugin.learning import services as learning
from lms_plugin.lti import nrps
from lms_plugin.lti.models import LtiContext, LtiIdentity, LtiMembership, LtiResourceLink
from tests.learning.builders import CORRECT, build_module
from tests.lti.ags_helpers import INSTRUCTOR, fake_lms, services  # noqa: F401 (fixtures)
from tests.lti.test_nrps import member

NOW = datetime.now(UTC).replace(microsecond=0)
COURSES = ("course-1", "course-2", "course-3")


def _sit(app, content, user_id: int, at: datetime) -> None:
    with app.app_context():
        attempt = learning.start_quiz(user_id, content["version_id"], at)
        learning.submit_quiz(attempt.id, user_id, {content["questions"][key]: value
                                                   for key, value in CORRECT.items()}, at)
        db.session.commit()
        db.session.remove()


def _queued_links(app) -> list[str]:
    """The resource link of every pending score job, by its LMS id."""
    with app.app_context():
        link_ids = [job.payload["link_id"] for job in db.session.scalars(
            select(OutboxJob).where(OutboxJob.kind == "ags.score",
                                    OutboxJob.status == "pending"))]
        names = sorted(db.session.get(LtiResourceLink, i).resource_link_id for i in link_ids)
        db.session.remove()
        return names


def _send(app) -> None:
    with app.app_context():
        jobs.run_due_jobs("w", limit=50, now=datetime.now(UTC) + timedelta(hours=1))
        db.session.remove()


def test_scores_go_only_to_courses_with_an_active_membership(app, client, launcher,
                                                             services):
    content = build_module(app, slug="cpoe-basics")
    lms = services.lms
    items = {}
    for n, course in enumerate(COURSES, start=1):
        items[course] = lms.add_lineitem(course, "cpoe-basics", resource_link_id=f"link-{n}")

    def launch(sub: str, course: str, **kw) -> None:
        n = COURSES.index(course) + 1
        services.launch(launcher, client, sub=sub, module="cpoe-basics", link=f"link-{n}",
                        context=course, lineitem=lms.lineitem_url(items[course]), **kw)

    # The module is placed in three courses. nurse-1 is enrolled in the first two; the third
    # course's link exists (its teacher launched it) but nurse-1 was never in it.
    launch("nurse-1", "course-1")
    launch("nurse-1", "course-2", nrps=True)
    launch("teacher-2", "course-2", roles=INSTRUCTOR, nrps=True)
    launch("teacher-3", "course-3", roles=INSTRUCTOR)
    with app.app_context():
        user_id = db.session.scalar(select(LtiIdentity.user_id).where(
            LtiIdentity.sub == "nurse-1"))

    # Then nurse-1 leaves course 2: the roster lists them as inactive.
    lms.members["course-2"] = [member("teacher-2", role="Instructor"),
                               member("nurse-1", status="Inactive")]
    with app.app_context():
        course_2 = db.session.scalar(select(LtiContext.id).where(
            LtiContext.context_id == "course-2"))
        assert nrps.sync_context(course_2).deactivated == 1
        db.session.commit()
        assert db.session.scalar(select(LtiMembership.active).where(
            LtiMembership.user_id == user_id, LtiMembership.context_id == course_2)) is False

    _sit(app, content, user_id, NOW - timedelta(minutes=10))
    assert _queued_links(app) == ["link-1"]  # course 1 only
    _send(app)
    assert lms.gradebook(items["course-1"], "nurse-1") == 100
    assert lms.scores.get((items["course-2"], "nurse-1")) is None
    assert lms.scores.get((items["course-3"], "nurse-1")) is None

    # Launching from course 2 again enrols them again: the next grade goes there too.
    launch("nurse-1", "course-2", nrps=True)
    _sit(app, content, user_id, NOW - timedelta(minutes=5))
    assert _queued_links(app) == ["link-1", "link-2"]
    _send(app)
    assert lms.gradebook(items["course-2"], "nurse-1") == 100
    assert lms.scores.get((items["course-3"], "nurse-1")) is None
