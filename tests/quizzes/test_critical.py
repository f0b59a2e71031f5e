"""Issue 17: a critical question answered wrong fails the attempt whatever the score, and
the learner is told which question and why (grading in quizzes, shown by learning)."""

from __future__ import annotations

from sqlalchemy import select, update

from lms_plugin.catalog.models import Question
from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion
from lms_plugin.quizzes import services
from lms_plugin.quizzes.models import Attempt
from tests.learning.builders import build_module
from tests.learning.test_pages import quiz_form, start, text_of

# 20 single-choice items, one point each: one wrong answer scores 95%.
QUESTIONS = [{"key": f"q{n:02d}", "type": "single_choice",
              "prompt": f"Scenario {n}: pick the safe action.",
              "explanation": f"Why item {n} matters.",
              "data": {"options": [{"id": "a", "text": "Safe"}, {"id": "b", "text": "Unsafe"}],
                       "answer": "a", "points": 1}} for n in range(1, 21)]
QUESTIONS[6].update(prompt="A heparin rate is 28.8 mL/hour. Which pump setting is right?",
                    explanation="A tenfold heparin error can cause fatal bleeding.")


def critical_module(app):
    content = build_module(app, questions=QUESTIONS, pass_mark=80)
    with app.app_context():
        db.session.execute(update(Question).where(Question.key == "q07").values(critical=True))
        db.session.commit()
    return content


def answers(content, wrong: str) -> dict[str, str]:
    return {f"q{qid}": ("b" if key == wrong else "a")
            for key, qid in content["questions"].items()}


def test_a_critical_question_wrong_fails_at_95_percent_and_says_which_and_why(
        app, client, login_as):
    content = critical_module(app)
    login_as("learner")
    start(client)
    response = client.post("/modules/cpoe-basics/quiz/submit",
                           data={**quiz_form(client), **answers(content, wrong="q07")},
                           follow_redirects=True)
    html = text_of(response)
    assert response.status_code == 200
    assert "<strong>95%</strong>" in html and "not passed" in html
    assert "Why this attempt did not pass" in html
    section = html.split('id="critical-missed-heading"')[1].split("</section>")[0]
    assert "A heparin rate is 28.8 mL/hour." in section
    assert "A tenfold heparin error can cause fatal bleeding." in section
    assert "Scenario 1:" not in section  # only the critical miss is listed
    with app.app_context():
        attempt = db.session.scalars(select(Attempt)).one()
        assert (attempt.score, attempt.passed) == (95.0, False)
        assert db.session.scalars(select(Completion)).all() == []


def test_a_non_critical_question_wrong_still_passes_at_95_percent(app, client, login_as):
    content = critical_module(app)
    login_as("learner")
    start(client)
    html = text_of(client.post("/modules/cpoe-basics/quiz/submit",
                               data={**quiz_form(client), **answers(content, wrong="q01")},
                               follow_redirects=True))
    assert "<strong>95%</strong>" in html and "Why this attempt did not pass" not in html
    with app.app_context():
        assert db.session.scalars(select(Attempt)).one().passed is True
        assert len(db.session.scalars(select(Completion)).all()) == 1


def test_the_attempt_page_marks_critical_questions_before_submission(app, client, login_as):
    critical_module(app)
    login_as("learner")
    module_page = text_of(client.get("/modules/cpoe-basics"))
    assert "the attempt passes only if every critical question" in module_page
    start(client)
    html = text_of(client.get("/modules/cpoe-basics/quiz"))
    assert html.count("Critical: must be right to pass") == 1


def test_attempt_passes_rule():
    assert services.attempt_passes(100.0, 80, []) is True
    assert services.attempt_passes(95.0, 80, [object()]) is False
    assert services.attempt_passes(79.99, 80, []) is False
