"""A pharmacist (a learner, not an author) signs off a draft in the browser on a phone and on
a desktop: the page fits 390 px without sideways scrolling, the approve button is reached
with the keyboard, and the approval is recorded. Set ``SIGNOFF_SCREENSHOTS`` to a directory
to keep screenshots of the pages (1280x800 and 390x844)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select

from lms_plugin.catalog.models import SignoffApproval
from lms_plugin.extensions import db
from tests.browser.test_learner_keyboard import (  # noqa: F401 (fixture)
    CHROMIUM,
    CHROMIUM_ARGS,
    assert_fits_phone,
    server,
    tab_to,
)
from tests.catalog.test_signoff_pages import two_reviewers
from tests.conftest import PASSWORD

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.mark.browser
def test_a_reviewer_signs_off_with_the_keyboard(app, factory, server):  # noqa: F811
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    two_reviewers(app, factory)
    shots = os.environ.get("SIGNOFF_SCREENSHOTS")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        for name, size in SIZES.items():
            context = browser.new_context(viewport=size, is_mobile=name == "phone",
                                          has_touch=name == "phone")
            page = context.new_page()
            page.set_default_timeout(15000)
            page.goto(f"{server}/auth/login?next=/signoff")
            page.fill("input[name=email]", "pharm@example.org")
            page.fill("input[name=password]", PASSWORD)
            page.keyboard.press("Enter")
            page.wait_for_url(f"{server}/signoff")
            assert page.locator("h1").inner_text() == "Clinical sign-off"
            assert_fits_phone(page)
            if shots:
                page.screenshot(path=f"{shots}/signoff-{name}.png", full_page=True)
            page.locator("a.button").first.click()
            page.wait_for_url(f"{server}/signoff/*")
            assert_fits_phone(page)
            if shots:
                page.screenshot(path=f"{shots}/review-{name}.png", full_page=True)
            tab_to(page, "el.tagName === 'BUTTON' && "
                   "el.textContent.startsWith('Approve this version')", "the approve button")
            page.keyboard.press("Enter")
            page.wait_for_url(f"{server}/signoff")
            assert "You approved" in page.content()
            if shots:
                page.screenshot(path=f"{shots}/approved-{name}.png", full_page=True)
            context.close()
        browser.close()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SignoffApproval)) == 2
