"""Helpers for the authoring tests: an organisation with a system, an author, form posts."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from lms_plugin.extensions import db


def token(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {path}: {html[:500]}"
    return match.group(1)


def lock_of(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="lock" type="hidden" value="(\d+)"', html) or \
        re.search(r'name="lock" value="(\d+)"', html)
    assert match, f"no lock on {path}"
    return match.group(1)


def make_system(app, slug: str = "ehr", org: str = "General Hospital") -> int:
    from lms_plugin.accounts.services import get_or_create_organisation
    from lms_plugin.catalog import authoring

    with app.app_context():
        organisation = get_or_create_organisation(org)
        system = authoring.save_system(organisation.id, None, name="Electronic health record",
                                       vendor="Epic", description="The EHR", slug=slug)
        db.session.commit()
        return system.id


def post(client: FlaskClient, path: str, data: dict, form_page: str | None = None, **kw):
    data = {"csrf_token": token(client, form_page or path), **data}
    return client.post(path, data=data, **kw)


SINGLE = {"key": "scan-first", "type": "single_choice",
          "prompt": "What do you scan first?",
          "options": "a | The wristband | Correct: always the patient first\nb | The drug",
          "answer": "a", "points": "1", "explanation": "Patient first."}
NUMERIC = {"key": "rate", "type": "numeric", "prompt": "Rate in mL/hour?", "answer": "10",
           "tolerance": "0.5", "tolerance_type": "absolute", "units": "mL/hour", "points": "2"}
#: Issue 17: every lesson ends with "## Sources" and entries "- Title. Publisher, Year. <https://…>"
#: (content_format._check_sources); a published lesson without them is refused.
SOURCES = ("\n## Sources\n\n- Workarounds to barcode medication administration systems. "
           "American Medical Informatics Association, 2008. "
           "<https://doi.org/10.1197/jamia.M2616>\n")
LESSON_TEXT = "# Scanning basics\n\nScan the **wristband** first.\n"
LESSON = LESSON_TEXT + SOURCES


def lesson(extra: str = "", text: str = LESSON_TEXT) -> str:
    """A lesson's Markdown: ``text`` + ``extra``, ending with its sources (nothing may follow
    the sources, so added paragraphs go before them)."""
    return text + extra + SOURCES


def build_draft(client: FlaskClient, app, slug: str = "bcma-scan") -> str:
    """Create a module through the pages with one lesson and two questions; its slug."""
    system_id = make_system(app)
    response = post(client, "/author/modules/new",
                    {"title": "BCMA scanning", "slug": slug, "system_id": system_id})
    assert response.status_code == 302, response.get_data(as_text=True)
    base = f"/author/modules/{slug}"
    lock = lock_of(client, f"{base}/lessons/new")
    response = post(client, f"{base}/lessons/new", {"lock": lock, "body": LESSON,
                                                    "save": "1"})
    assert response.status_code == 302, response.get_data(as_text=True)
    for question in (SINGLE, NUMERIC):
        lock = lock_of(client, f"{base}/questions/new")
        response = post(client, f"{base}/questions/new", {"lock": lock, **question})
        assert response.status_code == 302, response.get_data(as_text=True)
    return slug


def sample_system(app, org: str = "General Hospital") -> int:
    """A clinical system of ``org`` (for the route x role walk)."""
    return make_system(app, slug="sample-system", org=org)
