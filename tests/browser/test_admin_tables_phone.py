"""Admin tables on a phone (390 px): a wide table scrolls inside its own keyboard-reachable
region, and nothing in it (a visually hidden header label included) widens the page."""

from __future__ import annotations

import pytest

from tests.browser.test_learner_keyboard import assert_fits_phone
from tests.conftest import PASSWORD, csrf_token
from tests.learning.builders import build_module


@pytest.mark.browser
def test_assignment_rules_table_fits_a_phone(app, client, login_as, factory, server,
                                              chromium_page):
    build_module(app)
    login_as("admin")
    response = client.post("/admin/assignments", data={
        "csrf_token": csrf_token(client, "/admin/assignments"), "module": "cpoe-basics",
        "due_days": "30", "recurrence_months": "12", "departments": "Emergency department",
        "job_roles": "nurse", "reopen_on_retraining": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)
    admin = factory.user("admin")
    page = chromium_page
    page.goto(f"{server}/auth/login?next=/admin/assignments")
    page.fill("#email", factory.email_of(admin))
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/admin/assignments")
    assert page.locator("table").count() == 1
    assert_fits_phone(page)
    region = page.locator(".table-scroll")
    assert region.get_attribute("tabindex") == "0" and region.get_attribute("role") == "region"
    assert region.get_attribute("aria-label")
