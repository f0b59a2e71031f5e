"""A time-limited quiz counts down in the page and, when the time runs out, submits what was
answered (issue 12.8; static/learning/quiz-timer.js under the CSP)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.quizzes.models import Attempt
from tests.browser.test_learner_keyboard import chromium_page, server  # noqa: F401
from tests.conftest import PASSWORD
from tests.learning.builders import build_module


@pytest.mark.browser
def test_the_countdown_submits_the_answers_given_when_time_runs_out(
        app, factory, server, chromium_page):  # noqa: F811
    content = build_module(app, time_limit_minutes=10)
    email = factory.email_of(factory.user("learner"))
    page = chromium_page
    page.goto(f"{server}/auth/login?next=/modules/cpoe-basics")
    page.fill('input[name="email"]', email)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button:has-text("Sign in")')
    page.wait_for_url(f"{server}/modules/cpoe-basics")
    page.click('button:has-text("Start the quiz")')
    page.wait_for_url(f"{server}/modules/cpoe-basics/quiz")
    assert re.search(r"Time remaining: (9|10):\d\d", page.locator("#quiz-timer").inner_text())

    with app.app_context():  # four seconds left
        attempt = db.session.scalar(select(Attempt))
        attempt.deadline_at = utcnow() + timedelta(seconds=4)
        db.session.commit()
    page.reload()
    page.check(f"#q{content['questions']['verify-patient']}-a")
    page.wait_for_url(re.compile(r".*/result\?attempt=\d+"), timeout=15000)
    assert "not passed" in page.locator("main").inner_text()  # one answer of seven
    with app.app_context():
        attempt = db.session.scalar(select(Attempt))
        assert attempt.status == "submitted"
        assert [a.response for a in attempt.answers
                if a.question_id == content["questions"]["verify-patient"]] == ["a"]
