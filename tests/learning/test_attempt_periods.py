"""Attempt limits count per validity period (issue 18 item 7), and a learner who has passed
is told what a new, optional attempt can change under the grade policy (issue 9 item 2).

Pages through the test client with a frozen clock (time-machine); earlier periods' history is
written through the learning services at its own time.
"""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine
from sqlalchemy import func, select

from lms_plugin.accounts import services as accounts
from lms_plugin.extensions import db
from lms_plugin.learning import services as learning
from lms_plugin.learning.models import Completion
from lms_plugin.quizzes.models import Attempt
from tests.conftest import login
from tests.learning.builders import build_module
from tests.learning.test_pages import quiz_form, start, text_of

EIGHT = [{"key": f"q{i}", "type": "single_choice", "prompt": f"Question {i}?",
          "data": {"options": [{"id": "a", "text": "Right"}, {"id": "b", "text": "Wrong"}],
                   "answer": "a"}} for i in range(8)]
JAN_2025 = datetime(2025, 1, 10, 9, tzinfo=UTC)
JUN_2025 = datetime(2025, 6, 10, 9, tzinfo=UTC)
FEB_2026 = datetime(2026, 2, 1, 9, tzinfo=UTC)  # the January 2025 completion expired 10 Jan
AUG_2026 = datetime(2026, 8, 1, 9, tzinfo=UTC)


def _sit(app, content, user_id, right: int, at: datetime) -> None:
    with app.app_context():
        attempt = learning.start_quiz(user_id, content["version_id"], at)
        responses = {qid: ("a" if n < right else "b")
                     for n, qid in enumerate(content["questions"].values())}
        learning.submit_quiz(attempt.id, user_id, responses, at)
        db.session.commit()


def _answers(content, client, right: int) -> dict[str, str]:
    form = quiz_form(client)
    for n, qid in enumerate(content["questions"].values()):
        form[f"q{qid}"] = "a" if n < right else "b"
    return form


def _count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_the_attempt_limit_resets_in_a_new_validity_period(app, client, login_as, factory):
    content = build_module(app, questions=EIGHT, attempt_limit=3, validity_months=12)
    with time_machine.travel(JAN_2025, tick=False):
        user_id = login_as("learner")
        for right in (3, 3, 8):  # two fails, then a pass: all three attempts used
            _sit(app, content, user_id, right, JAN_2025)
        page = text_of(client.get("/modules/cpoe-basics"))
        assert "Attempts left: 0 of 3" in page and "You have passed this module" in page
        assert "A new attempt is optional" not in page  # none is left in this period
        assert start(client).status_code == 409
    with time_machine.travel(FEB_2026, tick=False):  # the completion has expired
        login(client, factory.email_of(user_id))  # a year later: a new sign-in
        html = text_of(client.get("/modules/cpoe-basics"))
        assert "Expired" in html and "Attempts left: 3 of 3" in html
        assert start(client).status_code == 302
        graded = client.post("/modules/cpoe-basics/quiz/submit",
                             data=_answers(content, client, 8), follow_redirects=True)
        assert graded.status_code == 200 and "100%" in text_of(graded)
    assert _count(app, Attempt, Attempt.status == "submitted") == 4
    assert _count(app, Completion) == 2  # recertified in the new period


def test_the_new_period_has_its_own_limit(app, client, login_as):
    content = build_module(app, questions=EIGHT, attempt_limit=2, validity_months=12)
    with time_machine.travel(FEB_2026, tick=False):
        user_id = login_as("learner")
    _sit(app, content, user_id, 8, JAN_2025)
    _sit(app, content, user_id, 3, JAN_2025)
    with time_machine.travel(FEB_2026, tick=False):
        for _ in range(2):
            assert start(client).status_code == 302
            client.post("/modules/cpoe-basics/quiz/submit", data=_answers(content, client, 3))
        refused = start(client)
        assert refused.status_code == 409 and "used all 2 attempts" in text_of(refused)
    assert _count(app, Attempt) == 4


def test_a_pass_while_still_valid_extends_the_period(app, client, login_as, factory):
    """A re-sit passed before the completion expired continues the same period: attempts
    keep counting until the *renewed* completion expires."""
    content = build_module(app, questions=EIGHT, attempt_limit=3, validity_months=12)
    with time_machine.travel(FEB_2026, tick=False):
        user_id = login_as("learner")
    _sit(app, content, user_id, 8, JAN_2025)
    _sit(app, content, user_id, 8, JUN_2025)  # renewed to June 2026
    with app.app_context():
        module_id = content["module_id"]
        assert learning.validity_period_start(user_id, module_id, FEB_2026) is None
        assert learning.validity_period_start(user_id, module_id, AUG_2026) == datetime(
            2026, 6, 10, 9, tzinfo=UTC)
    with time_machine.travel(FEB_2026, tick=False):
        assert "Attempts left: 1 of 3" in text_of(client.get("/modules/cpoe-basics"))
    with time_machine.travel(AUG_2026, tick=False):
        login(client, factory.email_of(user_id))
        assert "Attempts left: 3 of 3" in text_of(client.get("/modules/cpoe-basics"))


def test_a_learner_who_passed_is_told_a_new_attempt_is_optional(app, client, login_as):
    content = build_module(app, questions=EIGHT, attempt_limit=3, validity_months=12)
    login_as("learner")
    start(client)
    client.post("/modules/cpoe-basics/quiz/submit", data=_answers(content, client, 8))
    page = text_of(client.get("/modules/cpoe-basics"))
    assert "A new attempt is optional" in page and "highest" in page
    assert "never lower it" in page and "(now 100%)" in page
    start(client)
    result = client.post("/modules/cpoe-basics/quiz/submit",
                         data=_answers(content, client, 3), follow_redirects=True)
    html = text_of(result)
    assert "37.5%" in html and "A new attempt is optional" in html
    assert "(now 100%)" in html and "try again" not in html


def test_under_most_recent_the_learner_is_told_a_lower_score_replaces_the_grade(
        app, client, login_as):
    content = build_module(app, questions=EIGHT, validity_months=12)
    with app.app_context():
        accounts.set_grade_policy("General Hospital", "most_recent")
        db.session.commit()
    login_as("learner")
    start(client)
    client.post("/modules/cpoe-basics/quiz/submit", data=_answers(content, client, 8))
    page = text_of(client.get("/modules/cpoe-basics"))
    assert "A new attempt is optional" in page and "most recent" in page
    assert "even if it is lower" in page


def test_no_note_before_a_pass(app, client, login_as):
    content = build_module(app, questions=EIGHT, attempt_limit=3)
    login_as("learner")
    start(client)
    result = client.post("/modules/cpoe-basics/quiz/submit",
                         data=_answers(content, client, 3), follow_redirects=True)
    assert "A new attempt is optional" not in text_of(result)
    assert "try again" in text_of(result)
