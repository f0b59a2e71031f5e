"""The quiz asks before grading a partly answered attempt and says how many attempts remain;
a time-limited quiz counts down and submits what was answered; after a pass a new attempt is
labelled optional (issue 12.8)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.quizzes.models import Attempt
from tests.learning.builders import build_module
from tests.learning.test_pages import correct_form, quiz_form, start, text_of


def _form_without_confirmation(client) -> dict[str, str]:
    form = quiz_form(client)
    del form["confirm_unanswered"]
    return form


def test_unanswered_questions_ask_for_confirmation_and_keep_the_answers(app, client,
                                                                        login_as):
    content = build_module(app, attempt_limit=3)
    login_as("learner")
    start(client)
    q = content["questions"]
    form = _form_without_confirmation(client)
    form.update({f"q{q['verify-patient']}": "a", f"q{q['heparin-rate']}": "10",
                 f"q{q['high-alert']}": ["a", "b"]})
    asked = client.post("/modules/cpoe-basics/quiz/submit", data=form)
    html = text_of(asked)
    assert asked.status_code == 200
    assert "4 of 7 questions are not answered" in html
    assert "This is attempt 1 of 3; after it you have 2 attempts left." in html
    assert 'name="confirm_unanswered" value="1">Submit anyway' in html
    assert f'href="#q{q["read-back"]}-title">question 3</a>' in html
    # What was given is still on the page.
    assert f'id="q{q["verify-patient"]}-a" value="a" checked' in html
    assert f'id="q{q["high-alert"]}-b" value="b" checked' in html
    assert 'value="10"' in html
    with app.app_context():
        attempt = db.session.scalar(select(Attempt))
        assert attempt.status == "in_progress" and attempt.score is None  # nothing graded

    form["confirm_unanswered"] = "1"
    graded = client.post("/modules/cpoe-basics/quiz/submit", data=form)
    assert graded.status_code == 302 and "/result" in graded.headers["Location"]


def test_a_fully_answered_quiz_is_graded_without_a_question(app, client, login_as):
    content = build_module(app)
    login_as("learner")
    start(client)
    form = _form_without_confirmation(client)
    form.update(correct_form(content))
    response = client.post("/modules/cpoe-basics/quiz/submit", data=form)
    assert response.status_code == 302


def test_when_the_time_is_up_there_is_nothing_to_ask(app, client, login_as):
    build_module(app, time_limit_minutes=10)
    login_as("learner")
    start(client)
    page = text_of(client.get("/modules/cpoe-basics/quiz"))
    assert 'src="/static/learning/quiz-timer.js"' in page
    assert 'data-seconds-left="' in page and 'id="quiz-timer-announce"' in page
    form = _form_without_confirmation(client)
    with app.app_context():  # the deadline passed a moment ago (inside the grace period)
        attempt = db.session.scalar(select(Attempt))
        attempt.deadline_at = utcnow() - timedelta(seconds=5)
        attempt.started_at = attempt.deadline_at - timedelta(minutes=10)
        db.session.commit()
    response = client.post("/modules/cpoe-basics/quiz/submit", data=form)
    assert response.status_code in (302, 409)  # graded (grace) or refused: never asked
    assert "not answered" not in text_of(response)


def test_after_a_pass_a_new_attempt_is_optional(app, client, login_as):
    content = build_module(app)
    login_as("learner")
    start(client)
    form = quiz_form(client)
    form.update(correct_form(content))
    client.post("/modules/cpoe-basics/quiz/submit", data=form)
    page = text_of(client.get("/modules/cpoe-basics"))
    assert "Start an optional new attempt" in page
    assert "A new attempt is optional" in page and "can only raise that grade" in page
