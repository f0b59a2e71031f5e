"""Table columns keep whole words: a page-wide ``overflow-wrap: anywhere`` let the browser
shrink every column to one letter's width, so the audit log's "Who" header read "Wh / o" and
a person's name broke into two-letter lines, on a desktop as on a phone."""

from __future__ import annotations

import pytest

from lms_plugin.accounts.models import User
from lms_plugin.accounts.services import record_audit
from lms_plugin.extensions import db
from tests.conftest import PASSWORD

ONE_LINE = """() => [...document.querySelectorAll('main table th')].map(th => {
    const range = document.createRange(); range.selectNodeContents(th);
    const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
    return [th.textContent.trim(), tops.size];
})"""


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 390])
def test_audit_log_headers_are_not_broken_inside_words(app, factory, server, chromium_page,
                                                        width):
    admin = factory.user("admin")
    with app.app_context():  # a report view with long filters, as the officer pages write
        record_audit("report.view", actor=db.session.get(User, admin),
                     target=("report", "competency_matrix"),
                     details={"filters": {"department": "Emergency department " * 8,
                                          "facility": "Main campus", "group": "department"}})
        db.session.commit()
    page = chromium_page
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(f"{server}/auth/login?next=/admin/audit")
    page.fill("#email", factory.email_of(admin))
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/admin/audit")
    headers = dict(page.evaluate(ONE_LINE))
    assert set(headers) >= {"When", "Who", "Action", "Target", "Changes"}
    assert {name: lines for name, lines in headers.items() if lines != 1} == {}
