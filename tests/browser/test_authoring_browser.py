"""An author builds a module in the browser (a lesson with an uploaded image, two questions
of different types), previews and publishes it; then a learner takes it and the quiz grades.

Drives Debian's Chromium (``/usr/bin/chromium``) through Playwright against the real app on
127.0.0.1, like test_learner_keyboard.py. Screenshots of the module editor, the question
editor and the version diff at 1280x800 and 390x844 are written to
``instance/screenshots/authoring/`` for a person to look at.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select

from lms_plugin.catalog.models import ModuleVersion
from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion
from tests.browser.test_learner_keyboard import CHROMIUM, CHROMIUM_ARGS, server  # noqa: F401
from tests.catalog.authoring_helpers import SOURCES, make_system
from tests.catalog.test_authoring_forms import PNG
from tests.conftest import PASSWORD

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SHOTS = Path(__file__).resolve().parents[2] / "instance" / "screenshots" / "authoring"


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _page(browser, viewport):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(20000)
    return page


def _sign_in(page, base: str, email: str, target: str) -> None:
    page.goto(f"{base}/auth/login?next={quote(target, safe='/')}")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{target}")


def _fits(page) -> None:
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px"


def _shoot(browser, base: str, email: str, name: str, path: str) -> None:
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = _page(browser, viewport)
        _sign_in(page, base, email, path)
        if label == "phone":
            _fits(page)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
        page.context.close()


@pytest.mark.browser
def test_author_builds_publishes_and_a_learner_passes(app, factory, server, browser,  # noqa: F811
                                                      tmp_path):
    make_system(app)
    author = factory.email_of(factory.user("author"))
    learner = factory.email_of(factory.user("learner"))
    page = _page(browser, DESKTOP)
    _sign_in(page, server, author, "/author/modules")

    page.click("text=New module")
    page.fill("#title", "Barcode scanning at the bedside")
    page.fill("#slug", "bedside-scan")
    page.select_option("#system_id", label="Electronic health record")
    page.click("button:has-text('Create module')")
    page.wait_for_url(f"{server}/author/modules/bedside-scan")

    # A lesson with an uploaded image: upload, paste the line it gives, preview, save.
    page.click("text=Add a lesson")
    image = tmp_path / "wristband.png"
    image.write_bytes(PNG)
    page.set_input_files("#img-image", str(image))
    page.fill("#img-alt", "A scanned wristband")
    page.click("button:has-text('Upload image')")
    line = re.search(r"!\[A scanned wristband\]\(images/[a-z0-9-]+\.png\)",
                     page.locator(".flashes").inner_text()).group(0)
    # The field's hint tells the author that a lesson ends with its sources (issue 17).
    assert "## Sources" in page.locator("#body-hint").inner_text()
    page.fill("#body", f"# Scan first\n\nAlways scan the **wristband**.\n\n{line}\n{SOURCES}")
    page.click("button:has-text('Preview')")
    preview = page.locator(".lesson-preview")
    assert preview.locator("strong").inner_text() == "wristband"
    assert preview.locator("img").evaluate("img => img.complete && img.naturalWidth") == 1
    page.click("button:has-text('Save lesson')")
    page.wait_for_url(f"{server}/author/modules/bedside-scan")

    # Two questions of different types; the type's fields show once it is chosen.
    page.click("text=Add a question")
    page.fill("#key", "scan-what")
    page.fill("#prompt", "What do you scan first?")
    assert page.is_visible("#options") and not page.is_visible("#accepted")
    page.fill("#options", "a | The wristband | Yes: the patient first\nb | The drug")
    page.fill("#answer", "a")
    page.click("button:has-text('Save question')")
    page.wait_for_url(f"{server}/author/modules/bedside-scan")
    page.click("text=Add a question")
    page.select_option("#type", "true_false")
    assert not page.is_visible("#options") and page.is_visible("#feedback_true")
    page.fill("#key", "override")
    page.fill("#prompt", "An override needs a documented reason.")
    page.fill("#answer", "true")
    page.click("button:has-text('Save question')")
    page.wait_for_url(f"{server}/author/modules/bedside-scan")
    assert page.locator(".editable-list li").count() == 3
    # Reorder with the row buttons.
    page.click("form[action$='/questions/1/move'] button:has-text('Move down')")
    page.wait_for_url(f"{server}/author/modules/bedside-scan")
    keys = page.locator(".editable-list li > a").all_inner_texts()
    assert keys == ["Scan first", "override", "scan-what"], keys
    page.click("form[action$='/questions/2/move'] button:has-text('Move up')")
    page.wait_for_url(f"{server}/author/modules/bedside-scan")
    assert page.locator(".editable-list li > a").all_inner_texts()[1] == "scan-what"

    # Preview as learner, then publish.
    page.click("text=Preview as learner")
    page.wait_for_url(re.compile(r".*/modules/bedside-scan\?preview=1"))
    assert "Barcode scanning at the bedside" in page.locator("h1").inner_text()
    page.goto(f"{server}/author/modules/bedside-scan/publish")
    page.fill("#change_notes", "First version")
    page.click("button:has-text('Publish version 1')")
    page.wait_for_url(f"{server}/author/modules/bedside-scan")
    assert "Version 1 is published" in page.content()

    # A second version for the diff: change the lesson, publish it.
    page.click("button:has-text('Start a new draft')")
    page.click("a:has-text('Scan first')")
    page.fill("#body", f"# Scan first\n\nAlways scan the **wristband**, then the drug.\n\n"
                       f"{line}\n{SOURCES}")
    page.click("button:has-text('Save lesson')")
    page.goto(f"{server}/author/modules/bedside-scan/publish")
    page.fill("#change_notes", "Scan the drug too")
    page.click("button:has-text('Publish version 2')")
    page.wait_for_url(f"{server}/author/modules/bedside-scan")
    page.context.close()
    with app.app_context():
        assert [v.status for v in db.session.scalars(
            select(ModuleVersion).order_by(ModuleVersion.number))] == ["published", "published"]

    # The learner takes the published module and the quiz grades.
    page = _page(browser, PHONE)
    _sign_in(page, server, learner, "/modules/bedside-scan")
    page.click("text=Start the lessons")
    assert page.locator("main img").evaluate("img => img.complete && img.naturalWidth") == 1
    _fits(page)
    page.goto(f"{server}/modules/bedside-scan")
    page.click("button:has-text('Start the quiz')")
    page.wait_for_url(re.compile(r".*/modules/bedside-scan/quiz"))
    page.check("label:has-text('The wristband')")
    page.check("label:has-text('True')")
    page.click("button:has-text('Submit answers')")
    page.wait_for_url(re.compile(r".*/result\?attempt=.*"))
    result = page.locator("main").inner_text()
    assert "100%" in result and "passed" in result
    page.context.close()
    with app.app_context():
        assert db.session.scalars(select(Completion)).one().score == 100.0

    # Screenshots for review at desktop and phone widths.
    _shoot(browser, server, author, "module-page", "/author/modules/bedside-scan")
    _shoot(browser, server, author, "diff", "/author/modules/bedside-scan/diff?old=1&new=2")
    page = _page(browser, DESKTOP)
    _sign_in(page, server, author, "/author/modules/bedside-scan")
    page.click("button:has-text('Start a new draft')")
    page.context.close()
    _shoot(browser, server, author, "module-draft", "/author/modules/bedside-scan")
    _shoot(browser, server, author, "module-editor", "/author/modules/bedside-scan/edit")
    _shoot(browser, server, author, "question-editor",
           "/author/modules/bedside-scan/questions/1")
    _shoot(browser, server, author, "lesson-editor", "/author/modules/bedside-scan/lessons/1")
    _shoot(browser, server, author, "module-list", "/author/modules")
