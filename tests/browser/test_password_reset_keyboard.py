"""A locked-out admin resets their password by mail with the keyboard only, on a phone:
"Forgot your password?" on the sign-in page, the link from the mail (delivered by the worker
to a loopback SMTP server), the new password typed twice, then sign in with it."""

from __future__ import annotations

import re

import pytest

from lms_plugin.extensions import db
from lms_plugin.jobs import services as jobs
from tests.browser.test_learner_keyboard import assert_fits_phone, control, link, tab_to
from tests.smtp_server import parts, smtp_backend

NEW = "a brand new passphrase"
SUBMIT = "el.tagName === 'BUTTON' && el.textContent.trim() === {!r}"


@pytest.mark.browser
def test_password_reset_by_mail_with_the_keyboard_on_a_phone(app, factory, server,
                                                             chromium_page):
    factory.user("admin", email="ada@example.org")
    page = chromium_page
    with smtp_backend(app) as inbox:
        page.goto(f"{server}/auth/login")
        assert_fits_phone(page)
        tab_to(page, link("Forgot your password?"), "the forgot-password link")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{server}/auth/forgot")
        assert_fits_phone(page)
        tab_to(page, control("email"), "the email field")
        page.keyboard.type("ada@example.org")
        tab_to(page, SUBMIT.format("Send the link"), "the send button")
        page.keyboard.press("Enter")
        page.wait_for_selector("[role=status]")
        assert "is on its way" in page.locator("[role=status]").inner_text()

        with app.app_context():
            jobs.run_due_jobs("browser-test")  # looks the address up
            jobs.run_due_jobs("browser-test")  # delivers the mail
            db.session.remove()
        text, _ = parts(inbox.messages[-1])
        url = re.search(r"http://tool\.test(/auth/reset/\S+)", text).group(1)

        page.goto(f"{server}{url}")
        assert page.locator("h1").inner_text() == "Choose a new password"
        assert_fits_phone(page)
        tab_to(page, control("new_password"), "the new password field")
        page.keyboard.type(NEW)
        tab_to(page, control("confirm_password"), "the repeat field")
        page.keyboard.type(NEW + " typo")
        page.keyboard.press("Enter")
        error = page.locator("#confirm_password-error")
        assert "not the same" in error.inner_text()
        assert page.locator("#confirm_password").get_attribute("aria-invalid") == "true"
        tab_to(page, control("new_password"), "the new password field")
        page.keyboard.type(NEW)
        tab_to(page, control("confirm_password"), "the repeat field")
        page.keyboard.type(NEW)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{server}/auth/login")
        assert "Sign in with the new password" in page.content()

    tab_to(page, control("email"), "the email field")
    page.keyboard.type("ada@example.org")
    tab_to(page, control("password"), "the password field")
    page.keyboard.type(NEW)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"{re.escape(server)}/(?!auth/login).*"))
