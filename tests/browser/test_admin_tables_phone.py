"""Admin tables on a phone (issue 12.9): a wide table scrolls inside its own container and
the page itself never scrolls sideways at 390 px, hidden column labels included (an
absolutely positioned ``visually-hidden`` label must not escape its scroll container)."""

from __future__ import annotations

import pytest

from tests.browser.test_learner_keyboard import assert_fits_phone
from tests.conftest import PASSWORD, csrf_token
from tests.learning.builders import build_module


def _signed_in_admin(factory, server: str, page):
    """An admin of General Hospital, signed in through the sign-in page."""
    factory.user("admin", email="ada@example.org")
    page.goto(f"{server}/auth/login")
    page.fill('input[name="email"]', "ada@example.org")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button:has-text("Sign in")')
    page.wait_for_load_state()
    return page


@pytest.mark.browser
@pytest.mark.parametrize("path", ["/admin/users", "/admin/audit", "/admin/jobs"])
def test_admin_tables_scroll_inside_their_container_on_a_phone(app, factory, server,
                                                                chromium_page, path):
    factory.user("learner", email="a.very.long.address.for.a.nurse@example.org")
    page = _signed_in_admin(factory, server, chromium_page)
    page.goto(server + path)
    assert page.locator("table").count() == 1
    assert page.locator(".table-scroll table").count() == 1
    assert_fits_phone(page)


@pytest.mark.browser
@pytest.mark.parametrize("path, box", [("/admin/assignments", "#reopen_on_retraining"),
                                       ("/admin/staff/import", "#leavers")])
def test_a_checkbox_sits_beside_its_label_on_a_phone(app, factory, server, chromium_page,
                                                     path, box):
    """``input { width: 100% }`` stretched checkboxes across the form, centred on a line of
    their own above the label."""
    page = _signed_in_admin(factory, server, chromium_page)
    page.goto(server + path)
    check = page.locator(box).bounding_box()
    label = page.locator(f'label[for="{box[1:]}"]').bounding_box()
    assert check["width"] <= 32, check
    assert label["x"] > check["x"] + check["width"] - 1, (check, label)
    assert abs(label["y"] - check["y"]) < 16, (check, label)
    assert_fits_phone(page)


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
