# ruff: noqa: F811  (pytest fixtures imported from tests.lti.ags_helpers)
"""The learning hook: a graded quiz attempt queues its score in the grading transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from lms_plugin.extensions import db
from lms_plugin.jobs import services as jobs
from lms_plugin.jobs.models import OutboxJob
from lms_plugin.learning import services as learning
from lms_plugin.lti.models import LtiIdentity
from lms_plugin.quizzes import services as quizzes
from tests.learning.builders import CORRECT, build_module
from tests.lti.ags_helpers import fake_lms, services  # noqa: F401 (fixtures)

NOW = datetime.now(UTC).replace(microsecond=123456)


def _count_jobs() -> int:
    return db.session.scalar(select(func.count()).select_from(OutboxJob)
                             .where(OutboxJob.kind == "ags.score"))


def test_a_launched_learner_passing_a_quiz_sends_the_grade(app, client, launcher, services):
    content = build_module(app, slug="cpoe-basics")
    lms = services.lms
    item = lms.add_lineitem("course-1", "cpoe-basics")
    services.launch(launcher, client, sub="nurse-1", module="cpoe-basics",
                    lineitem=lms.lineitem_url(item))
    responses = {content["questions"][key]: value for key, value in CORRECT.items()}
    with app.app_context():
        user_id = db.session.scalar(select(LtiIdentity.user_id))
        attempt = quizzes.start_attempt(user_id, content["version_id"], NOW)
        db.session.commit()
        learning.submit_quiz(attempt.id, user_id, responses, NOW)
        assert _count_jobs() == 1  # written in the grading transaction…
        db.session.rollback()
        assert _count_jobs() == 0  # …so it exists only if the grade does
        learning.submit_quiz(attempt.id, user_id, responses, NOW)
        db.session.commit()
        assert _count_jobs() == 1
        jobs.run_due_jobs("w", now=datetime.now(UTC) + timedelta(hours=1))
        db.session.remove()
    accepted = lms.final(item, "nurse-1")
    assert accepted.score_given == 100.0
    assert accepted.raw["activityProgress"] == "Completed"
    assert accepted.raw["gradingProgress"] == "FullyGraded"
    assert "passed" in accepted.raw["comment"]


def test_a_failed_attempt_is_final_and_a_preview_sends_nothing(app, client, launcher,
                                                               services):
    content = build_module(app, slug="cpoe-basics")
    lms = services.lms
    item = lms.add_lineitem("course-1", "cpoe-basics")
    services.launch(launcher, client, sub="nurse-2", module="cpoe-basics",
                    lineitem=lms.lineitem_url(item))
    with app.app_context():
        user_id = db.session.scalar(select(LtiIdentity.user_id))
        preview = quizzes.start_attempt(user_id, content["version_id"], NOW, preview=True)
        learning.submit_quiz(preview.id, user_id, {}, NOW)
        db.session.commit()
        assert _count_jobs() == 0
        attempt = quizzes.start_attempt(user_id, content["version_id"], NOW)
        learning.submit_quiz(attempt.id, user_id, {}, NOW)
        db.session.commit()
        jobs.run_due_jobs("w", now=datetime.now(UTC) + timedelta(hours=1))
        db.session.remove()
    accepted = lms.scores[(item, "nurse-2")][-1]
    assert accepted.raw["scoreGiven"] == 0 and accepted.raw["scoreMaximum"] == 100
    assert accepted.raw["activityProgress"] == "Completed"
    assert accepted.raw["gradingProgress"] == "FullyGraded"
    assert lms.gradebook(item, "nurse-2") == 0


def test_grading_with_no_subscriber_records_everything_and_queues_nothing(app, client, launcher,
                                                                          services):
    """Grading knows no LMS (issue 11 item 1): with LTI's receiver disconnected, the attempt
    and completion are recorded as before and no outbox row is written; connected again,
    the same grading queues the score (so the first half is not vacuous)."""
    from lms_plugin import events
    from lms_plugin.learning.models import Completion
    from lms_plugin.lti import ags_jobs
    from lms_plugin.quizzes.models import Attempt

    content = build_module(app, slug="cpoe-basics")
    lms = services.lms
    item = lms.add_lineitem("course-1", "cpoe-basics")
    services.launch(launcher, client, sub="nurse-3", module="cpoe-basics",
                    lineitem=lms.lineitem_url(item))
    responses = {content["questions"][key]: value for key, value in CORRECT.items()}
    with app.app_context():
        user_id = db.session.scalar(select(LtiIdentity.user_id))
        events.attempt_graded.disconnect(ags_jobs.enqueue_attempt_score, sender=app)
        try:
            first = learning.start_quiz(user_id, content["version_id"], NOW)
            outcome = learning.submit_quiz(first.id, user_id, responses, NOW)
            db.session.commit()
        finally:
            events.attempt_graded.connect(ags_jobs.enqueue_attempt_score, sender=app)
        assert not outcome.already_graded
        graded = db.session.get(Attempt, first.id)
        assert (graded.status, graded.score, graded.passed) == ("submitted", 100.0, True)
        completion = db.session.scalars(select(Completion)).one()
        assert completion.attempt_id == first.id
        assert _count_jobs() == 0

        second = learning.start_quiz(user_id, content["version_id"], NOW)
        learning.submit_quiz(second.id, user_id, responses, NOW)
        db.session.commit()
        assert _count_jobs() == 1
