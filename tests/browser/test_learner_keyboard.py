"""A learner works through a module and passes its quiz with the keyboard only, on a phone.

Drives Debian's Chromium (``/usr/bin/chromium``) through Playwright against the real app served
by a werkzeug server on 127.0.0.1. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion, LessonProgress
from tests.conftest import PASSWORD
from tests.learning.builders import build_module

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}

# Answers reachable with Tab and Space alone: the right option comes first (no shuffling).
QUESTIONS = [
    {"key": "verify-patient", "type": "single_choice",
     "prompt": "Before signing an order, what must you confirm first?",
     "explanation": "Two identifiers prevent wrong-patient orders.",
     "data": {"options": [{"id": "a", "text": "The patient's identity with two identifiers"},
                          {"id": "b", "text": "The bed number"}], "answer": "a"}},
    {"key": "read-back", "type": "true_false", "prompt": "Verbal orders must be read back.",
     "data": {"answer": True}},
    {"key": "high-alert", "type": "multiple_response",
     "prompt": "Select every high-alert medication.",
     "data": {"options": [{"id": "a", "text": "Insulin"}, {"id": "b", "text": "Heparin"},
                          {"id": "c", "text": "Acetaminophen"}], "answer": ["a", "b"]}},
    {"key": "heparin-rate", "type": "numeric",
     "prompt": "Heparin 25,000 units in 250 mL; order 1,000 units/hour. Rate in mL/hour?",
     "data": {"answer": 10, "tolerance": 0.1, "units": "mL/hour"}},
    {"key": "name-the-form", "type": "short_text",
     "prompt": "Which paper form is used for medication orders during downtime?",
     "data": {"accepted": ["paper MAR"]}},
]


@pytest.fixture
def server(app) -> Iterator[str]:
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def chromium_page():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package "
                    "(apt-get install chromium); this test never downloads a browser.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        page = context.new_page()
        page.set_default_timeout(15000)
        yield page
        context.close()
        browser.close()


def tab_to(page, predicate: str, what: str, limit: int = 80) -> None:
    """Press Tab until the focused element satisfies the JS ``predicate`` (on ``el``)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => {{ const el = document.activeElement; "
                         f"return !!el && ({predicate}); }}"):
            return
    pytest.fail(f"could not reach {what} with the Tab key on {page.url}")


def link(text: str) -> str:
    return f"el.tagName === 'A' && el.textContent.trim() === {text!r}"


def control(control_id: str) -> str:
    return f"el.id === {control_id!r}"


def assert_fits_phone(page) -> None:
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at 390px wide"


@pytest.mark.browser
def test_learner_completes_a_module_with_the_keyboard_on_a_phone(app, factory, server,
                                                                 chromium_page):
    content = build_module(app, questions=QUESTIONS)
    user_id = factory.user("learner")
    email = factory.email_of(user_id)
    q = content["questions"]
    page = chromium_page

    page.goto(f"{server}/auth/login?next=/modules/cpoe-basics")
    tab_to(page, "el.name === 'email'", "the email field")
    page.keyboard.type(email)
    tab_to(page, "el.name === 'password'", "the password field")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/modules/cpoe-basics")
    assert page.locator("h1").inner_text() == "EHR order entry (CPOE): safe ordering basics"
    assert "Pass mark: 80%" in page.content()
    assert_fits_phone(page)

    tab_to(page, link("Start the lessons"), "the start-lessons link")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/modules/cpoe-basics/lessons/1")
    assert_fits_phone(page)
    tab_to(page, link("Next lesson"), "the next-lesson link")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/modules/cpoe-basics/lessons/2")
    assert_fits_phone(page)
    tab_to(page, link("Go to the quiz"), "the go-to-quiz link")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/modules/cpoe-basics#quiz")
    assert "2 of 2 lessons viewed" in page.content()

    tab_to(page, "el.tagName === 'BUTTON' && el.textContent.trim() === 'Start the quiz'",
           "the start-quiz button")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/modules/cpoe-basics/quiz")
    assert_fits_phone(page)

    tab_to(page, control(f"q{q['verify-patient']}-a"), "the first option of question 1")
    page.keyboard.press("Space")
    tab_to(page, control(f"q{q['read-back']}-true"), "True in question 2")
    page.keyboard.press("Space")
    tab_to(page, control(f"q{q['high-alert']}-a"), "Insulin in question 3")
    page.keyboard.press("Space")
    tab_to(page, control(f"q{q['high-alert']}-b"), "Heparin in question 3")
    page.keyboard.press("Space")
    tab_to(page, control(f"q{q['heparin-rate']}"), "the numeric answer")
    page.keyboard.type("10.05")
    tab_to(page, control(f"q{q['name-the-form']}"), "the text answer")
    page.keyboard.type("  Paper MAR ")
    assert page.is_checked(f"#q{q['verify-patient']}-a")
    assert page.is_checked(f"#q{q['high-alert']}-b")
    assert not page.is_checked(f"#q{q['high-alert']}-c")
    tab_to(page, "el.tagName === 'BUTTON' && el.textContent.trim() === 'Submit answers'",
           "the submit button")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/modules/cpoe-basics/result?attempt=*")
    result = page.locator("main").inner_text()
    assert "100%" in result and "passed" in result
    assert "Your completion is recorded" in result
    assert_fits_phone(page)

    with app.app_context():
        completion = db.session.scalars(select(Completion)).one()
        assert completion.user_id == user_id and completion.score == 100.0
        progress = db.session.scalars(select(LessonProgress)).one()
        assert progress.viewed_positions == [1, 2]
