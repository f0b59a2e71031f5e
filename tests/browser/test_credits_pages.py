"""CE pages in Chromium at desktop and phone widths (320 px): no sideways scrolling, the
claim form usable, screenshots kept in pytest's tmp_path for a person to look at."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from lms_plugin.accounts.models import User
from lms_plugin.credits.models import Certificate
from lms_plugin.extensions import db
from tests.browser.test_learner_keyboard import CHROMIUM, CHROMIUM_ARGS, server  # noqa: F401
from tests.conftest import PASSWORD
from tests.credits.helpers import claim, evaluate, make_activity, pass_module
from tests.learning.builders import build_module

WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 320, "height": 640}}


def _fits(page) -> int:
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")


@pytest.mark.browser
def test_ce_pages_fit_desktop_and_phone(app, factory, server, tmp_path: Path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    module = build_module(app)
    activity_id = make_activity(app, module["module_id"], module["organisation_id"])
    user_id = factory.user("learner", email="zoe@example.org")
    with app.app_context():
        db.session.get(User, user_id).name = "Zoë Ñúñez"
        db.session.commit()
    pass_module(app, user_id, module["module_id"], module["version_id"])
    evaluate(app, user_id, activity_id)
    claim_id = claim(app, user_id, activity_id)
    with app.app_context():
        cert = db.session.scalar(select(Certificate).where(Certificate.claim_id == claim_id))
        code = cert.code
        (tmp_path / "certificate.pdf").write_bytes(cert.pdf)
    pages = {"disclosure": ("/credits/cpoe-basics", "Safe CPOE ordering: CE edition"),
             "claim": ("/credits/cpoe-basics/claim", "Claim credit: Safe CPOE ordering"),
             "certificate": (f"/credits/certificates/{code}", "Your CE certificate"),
             "transcript": ("/credits/transcript", "CE transcript"),
             "verify": (f"/verify/{code}", "Certificate verification")}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        for label, viewport in WIDTHS.items():
            context = browser.new_context(viewport=viewport)
            page = context.new_page()
            page.goto(f"{server}/auth/login")
            page.fill("input[name=email]", "zoe@example.org")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state()
            for name, (path, heading) in pages.items():
                response = page.goto(server + path)
                assert response.status == 200, path
                assert page.locator("h1").inner_text().startswith(heading)
                page.screenshot(path=str(tmp_path / f"{name}-{label}.png"), full_page=True)
                assert _fits(page) <= 0, f"{path} scrolls sideways at {label} width"
            transcript_pdf = page.request.get(f"{server}/credits/transcript?format=pdf")
            (tmp_path / "transcript.pdf").write_bytes(transcript_pdf.body())
            context.close()
        browser.close()
    print(f"screenshots in {tmp_path}")
