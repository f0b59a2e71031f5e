"""The first hour, end to end in a browser (issue 12, acceptance): from a fresh database, the
setup command (`lms-plugin run --setup`, what `make run` runs), the admin signs in with the
one-time password, the demo LMS launches a nurse who passes a quiz, the worker delivers the
grade and the demo gradebook shows it, and the instructor adds a module through the picker.

Served by werkzeug on 127.0.0.1 with the embedded outbox worker, driven by Debian's Chromium
through Playwright (never a downloaded browser). Every page this issue touched is
photographed at 1280x800 and 390x844 (``LMS_TEST_SCREENSHOTS`` names a folder to keep them;
otherwise they go to pytest's tmp_path) and checked not to scroll sideways on the phone.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select
from werkzeug.serving import make_server

from lms_plugin import create_app, serve
from lms_plugin.catalog.models import Question
from lms_plugin.cli import cli
from lms_plugin.demo.models import DemoScore
from lms_plugin.extensions import db
from lms_plugin.jobs import worker
from lms_plugin.quizzes.models import Attempt
from tests.browser.test_learner_keyboard import CHROMIUM, CHROMIUM_ARGS

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
NEW_PASSWORD = "a new admin password 2026"


@pytest.fixture
def live(tmp_path) -> Iterator[tuple]:
    """A fresh database, a demo-enabled app bound to a loopback port, not yet serving."""
    app = create_app({
        "TESTING": True, "LMS_ENV": "testing", "LMS_DEMO": True,
        "SECRET_KEY": "test-secret-key-that-is-long-enough-for-tests",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'first-hour.db'}",
        "LTI_REGISTRATION_CACHE_SECONDS": 0.0, "LMS_JOB_POLL_INTERVAL": 0.2,
        "RATELIMIT_STORAGE_URI": "memory://",
    })
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{httpd.server_port}"
    app.config["LMS_BASE_URL"] = url
    yield app, httpd, url
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("LMS_TEST_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def photograph(page, shots: Path, name: str) -> None:
    """Full-page screenshots at both sizes; the phone size must not scroll sideways."""
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(shots / f"{name}-{label}.png"), full_page=True)
        if label == "phone":
            overflow = page.evaluate("() => document.documentElement.scrollWidth"
                                     " - document.documentElement.clientWidth")
            assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at 390px"
    page.set_viewport_size(DESKTOP)


def answer_correctly(page, app) -> None:
    """Fill the quiz form on ``page`` with full-credit answers read from the database."""
    with app.app_context():
        attempt = db.session.scalars(select(Attempt).order_by(Attempt.id.desc())).first()
        questions = db.session.scalars(select(Question).where(
            Question.id.in_(attempt.question_ids))).all()
    for q in questions:
        name, data = f"q{q.id}", q.data
        if q.type in ("single_choice",):
            page.check(f'input[name="{name}"][value="{data["answer"]}"]')
        elif q.type == "true_false":
            page.check(f'input[name="{name}"][value="{str(data["answer"]).lower()}"]')
        elif q.type == "multiple_response":
            for option in data["answer"]:
                page.check(f'input[name="{name}"][value="{option}"]')
        elif q.type == "ordering":
            for position, item in enumerate(data["answer"], start=1):
                page.select_option(f'select[name="{name}-{position}"]', item)
        elif q.type == "matching":
            for pair in data["pairs"]:
                page.select_option(f'select[name="{name}-{pair["id"]}"]', pair["match"])
        elif q.type == "numeric":
            page.fill(f'input[name="{name}"]', str(data["answer"]))
        else:
            page.fill(f'input[name="{name}"]', data["accepted"][0])


@pytest.mark.browser
def test_the_first_hour(live, shots, monkeypatch):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package")
    from playwright.sync_api import sync_playwright

    app, httpd, url = live
    # 1. The setup command `make run` runs (serving is ours: the bound server below).
    monkeypatch.setattr(serve, "serve", lambda *a, ready, **k: ready())
    setup = CliRunner().invoke(cli, ["run", "--setup", "--no-worker", "--first-step", "2"],
                               obj=ScriptInfo(create_app=lambda: app),
                               catch_exceptions=False)
    assert setup.exit_code == 0, setup.output
    password = re.search(r"One-time password  (\S+)", setup.output).group(1)
    assert f"Try it now         {url}/demo/" in setup.output

    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    embedded = worker.start_embedded(app, poll_interval=0.2)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=CHROMIUM_ARGS)
            try:
                _walk(browser, app, url, password, shots)
            finally:
                browser.close()
    finally:
        embedded.stop()
        httpd.shutdown()
        thread.join(timeout=10)


def _walk(browser, app, url: str, password: str, shots: Path) -> None:
    # 2. The admin signs in with the one-time password and chooses their own.
    admin = browser.new_context(viewport=DESKTOP).new_page()
    admin.set_default_timeout(20000)
    admin.goto(f"{url}/auth/login")
    admin.fill('input[name="email"]', "admin@example.org")
    admin.fill('input[name="password"]', password)
    admin.click('button:has-text("Sign in")')
    admin.wait_for_load_state()
    fields = admin.locator('input[type="password"]')
    if fields.count():  # the one-time password must be changed first
        fields.nth(0).fill(password)
        for n in range(1, fields.count()):
            fields.nth(n).fill(NEW_PASSWORD)
        admin.click('button[type="submit"]:not(.link-button)')
        admin.wait_for_load_state()
    assert "/auth/login" not in admin.url

    # Pages that explain themselves (12.10).
    for path, name in (("/lti/register", "lti-register-direct"),
                       ("/lti/login", "lti-login-direct")):
        admin.goto(url + path)
        assert admin.locator("h1").count() == 1
        photograph(admin, shots, name)

    # 3. The demo LMS launches the nurse (a real LTI 1.3 launch) into the first module.
    learner = browser.new_context(viewport=DESKTOP).new_page()
    learner.set_default_timeout(20000)
    learner.goto(f"{url}/demo/")
    assert "Demo LMS, built into the training tool" in learner.content()
    photograph(learner, shots, "demo-course-empty")
    learner.click('a:has-text("as Nia Okafor")')
    learner.wait_for_url(re.compile(r".*/modules/bcma-medication-administration$"))
    photograph(learner, shots, "nurse-module")
    learner.click('button:has-text("Start the quiz")')
    learner.wait_for_url(re.compile(r".*/quiz$"))
    assert "Time remaining" in learner.locator("#quiz-timer").inner_text()

    # Submitting with nothing answered asks first (12.8), and keeps the page.
    learner.click('button:has-text("Submit answers")')
    learner.wait_for_selector("#confirm-unanswered")
    assert "questions are not answered" in learner.locator("#confirm-unanswered").inner_text()
    # Focus moves to the question asked (keyboard and screen-reader users start there).
    assert learner.evaluate("document.activeElement.id") == "confirm-unanswered"
    photograph(learner, shots, "quiz-confirm-unanswered")
    answer_correctly(learner, app)
    photograph(learner, shots, "quiz-answered")
    learner.click('button:has-text("Submit answers")')
    learner.wait_for_url(re.compile(r".*/result\?attempt=\d+"))
    assert "passed" in learner.locator("main").inner_text()
    photograph(learner, shots, "quiz-result")

    # 4. The worker delivers the grade; the demo gradebook shows it.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with app.app_context():
            if db.session.scalar(select(DemoScore.id)) is not None:
                break
        time.sleep(0.3)
    learner.goto(f"{url}/demo/")
    gradebook = learner.locator("#gradebook + p + div table").inner_text()
    assert "100 / 100" in gradebook, gradebook
    photograph(learner, shots, "demo-gradebook")

    # (The hospital admin's /admin/jobs does not list it: the demo's jobs belong to the
    # demo organisation. tests/lti/test_jobs_page_descriptions.py covers that page.)

    # 5. The instructor adds a module through the picker.
    learner.goto(f"{url}/demo/")
    learner.click('a:has-text("Add training to the course")')
    learner.wait_for_url(re.compile(r".*/lti/deep-link$"))
    photograph(learner, shots, "picker")
    learner.click('button:has-text("Add to course")')  # nothing chosen: a message
    learner.wait_for_selector("#module-error")
    photograph(learner, shots, "picker-nothing-chosen")
    learner.check("#module-cpoe-safe-ordering")
    learner.click('button:has-text("Add to course")')
    learner.wait_for_url(f"{url}/demo/")
    page_text = learner.locator("main").inner_text()
    assert "Added to the demo course" in page_text
    assert learner.locator('a:has-text("as Nia Okafor")').count() == 2
    photograph(learner, shots, "demo-course-after-picker")
    # The picker's address opened again, with no selection in progress, explains itself.
    learner.goto(f"{url}/lti/deep-link")
    assert "No content selection in progress" in learner.locator("main").inner_text()
    photograph(learner, shots, "lti-deep-link-direct")
