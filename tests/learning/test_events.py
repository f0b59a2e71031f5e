"""Domain events of a submission (issue 11 item 1): sent in the grading transaction."""

from __future__ import annotations

from sqlalchemy import func, select

from lms_plugin import events
from lms_plugin.extensions import db
from lms_plugin.jobs import services as jobs
from lms_plugin.jobs.models import OutboxJob
from lms_plugin.learning.models import Completion
from lms_plugin.quizzes.models import Attempt, AttemptAnswer
from tests.learning.builders import build_module
from tests.learning.test_pages import correct_form, quiz_form, start


class SubscriberFailed(RuntimeError):
    pass


def _counts(app) -> dict[str, int]:
    with app.app_context():
        return {model.__name__: db.session.scalar(select(func.count()).select_from(model))
                for model in (AttemptAnswer, Completion, OutboxJob)}


def test_a_subscriber_exception_rolls_back_the_whole_submission(app, client, login_as):
    """A receiver of ``completion_recorded`` (the last step) fails: the grade, the answers,
    the completion and anything an earlier receiver queued all go; the attempt stays open
    and can be submitted again once the subscriber works."""
    content = build_module(app)
    login_as("learner")
    start(client)
    fields = quiz_form(client)
    seen: list[events.AttemptGraded | events.CompletionRecorded] = []

    def queue_something(sender, event):
        seen.append(event)
        jobs.enqueue("test.event", {"attempt": event.attempt_id}, now=event.when)

    def fail(sender, event):
        seen.append(event)
        raise SubscriberFailed("the subscriber broke")

    events.attempt_graded.connect(queue_something, sender=app)
    events.completion_recorded.connect(fail, sender=app)
    try:
        failed = client.post("/modules/cpoe-basics/quiz/submit",
                             data={**fields, **correct_form(content)})
    finally:
        events.attempt_graded.disconnect(queue_something, sender=app)
        events.completion_recorded.disconnect(fail, sender=app)

    assert failed.status_code == 500  # a server fault, logged; the error page rolls back
    graded, completed = seen
    assert isinstance(graded, events.AttemptGraded) and graded.score == 100.0 and graded.passed
    assert isinstance(completed, events.CompletionRecorded)
    assert completed.attempt_id == graded.attempt_id
    assert _counts(app) == {"AttemptAnswer": 0, "Completion": 0, "OutboxJob": 0}
    with app.app_context():
        attempt = db.session.get(Attempt, graded.attempt_id)
        assert (attempt.status, attempt.score, attempt.submitted_at) == ("in_progress", None,
                                                                          None)

    response = client.post("/modules/cpoe-basics/quiz/submit",
                           data={**fields, **correct_form(content)})
    assert response.status_code in (200, 302, 303)
    assert _counts(app)["Completion"] == 1
