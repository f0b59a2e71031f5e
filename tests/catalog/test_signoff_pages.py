"""Issue 17 in the browser: the drafts waiting for a reviewer (``/signoff``), the read-only
review page, "Approve this version" (through ``catalog.signoff.approve``, audited), and the
sign-off state on the authoring module page and list. Through HTTP; the database is checked
afterwards."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent
from lms_plugin.catalog.models import SignoffApproval
from lms_plugin.extensions import db
from tests.catalog.helpers import VALID
from tests.catalog.test_signoff import cli, version_of
from tests.conftest import csrf_token, login
from tests.learning.builders import build_module


def two_reviewers(app, factory) -> None:
    """General Hospital with the valid fixture as drafts and two required reviewers: the
    role "pharmacist" (held by pharm@, a learner) and a named nurse educator (educator@, an
    author)."""
    factory.organisation()
    factory.user("learner", email="pharm@example.org")
    factory.user("author", email="educator@example.org")
    assert cli(app, "content", "import", str(VALID), "--drafts").exit_code == 0
    assert cli(app, "signoff", "holders", "add", "Pharmacist",
               "pharm@example.org").exit_code == 0
    assert cli(app, "signoff", "reviewers", "set", "--role", "pharmacist",
               "--person", "educator@example.org=Nurse Educator").exit_code == 0


@pytest.fixture
def org(app, factory):
    """:func:`two_reviewers` and an author who is not a reviewer (other@)."""
    two_reviewers(app, factory)
    factory.user("author", email="other@example.org")


def _version_id(app, slug: str) -> int:
    from lms_plugin.accounts.models import Organisation
    from lms_plugin.catalog import services

    with app.app_context():
        org_id = db.session.scalar(select(Organisation.id).where(
            Organisation.name == "General Hospital"))
        return services.latest_version(services.get_module(org_id, slug)).id


def _counts(app) -> tuple[int, int]:
    with app.app_context():
        return (db.session.scalar(select(func.count()).select_from(SignoffApproval)),
                db.session.scalar(select(func.count()).select_from(AuditEvent).where(
                    AuditEvent.action == "signoff.approve")))


def _hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', html) or re.search(
        rf'id="{name}" name="{name}" type="hidden" value="([^"]*)"', html)
    assert match, f"no hidden {name}"
    return match.group(1)


def test_a_reviewer_reads_and_approves_a_draft(app, client, org):
    version_id = _version_id(app, "safe-ordering")
    _, _, content_hash = version_of(app, "safe-ordering")
    assert login(client, "pharm@example.org").status_code == 302
    page = client.get("/signoff")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"/signoff/{version_id}" in html and "waiting for 2 sign-offs" in html
    assert 'href="/signoff"' in html  # the navigation entry
    assert "Preview as learner" not in html  # a learner cannot use the learner preview

    review = client.get(f"/signoff/{version_id}")
    assert review.status_code == 200
    text = review.get_data(as_text=True)
    assert "Approve this version as pharmacist" in text and "Questions" in text
    assert _hidden(text, "content_hash") == content_hash
    done = client.post(f"/signoff/{version_id}/approve", data={
        "csrf_token": csrf_token(client, f"/signoff/{version_id}"),
        "content_hash": content_hash, "role": "pharmacist"})
    assert done.status_code == 302 and done.headers["Location"].endswith("/signoff")
    with app.app_context():
        approval = db.session.scalar(select(SignoffApproval))
        assert (approval.version_id, approval.role_name, approval.content_hash) == (
            version_id, "pharmacist", content_hash)
        event = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "signoff.approve"))
        assert event.details["role"] == "pharmacist"
        assert event.details["content_hash"] == content_hash
    after = client.get("/signoff").get_data(as_text=True)
    assert f"/signoff/{version_id}\"" not in after  # no longer waiting for this person
    again = client.post(f"/signoff/{version_id}/approve", data={
        "csrf_token": csrf_token(client, "/signoff"), "content_hash": content_hash,
        "role": "pharmacist"})
    assert again.status_code == 422 and "already approved" in again.get_data(as_text=True)
    assert _counts(app) == (1, 1)

    # The authors see what is waiting for whom.
    assert login(client, "educator@example.org").status_code == 302
    module = client.get("/author/modules/safe-ordering").get_data(as_text=True)
    assert "Clinical sign-off" in module
    assert re.search(r"<strong>pharmacist</strong>:\s*approved by [^<(]+ \(pharmacist\), "
                     r"<time", module)
    assert re.search(r"\(nurse educator\)</strong>:\s*<span[^>]*>waiting", module)
    listing = client.get("/author/modules").get_data(as_text=True)
    assert "waiting for 1 sign-off<" in listing and "waiting for 2 sign-offs" in listing


def test_a_stale_hash_is_refused_and_nothing_is_written(app, client, org):
    version_id = _version_id(app, "safe-ordering")
    assert login(client, "pharm@example.org").status_code == 302
    response = client.post(f"/signoff/{version_id}/approve", data={
        "csrf_token": csrf_token(client, f"/signoff/{version_id}"),
        "content_hash": "0" * 64, "role": "pharmacist"})
    assert response.status_code == 409
    assert "changed after you opened it" in response.get_data(as_text=True)
    assert _counts(app) == (0, 0)
    missing = client.post(f"/signoff/{version_id}/approve", data={
        "csrf_token": csrf_token(client, "/signoff"), "role": "pharmacist"})
    assert missing.status_code == 422
    assert _counts(app) == (0, 0)


def test_a_person_who_is_not_a_reviewer_is_refused(app, client, org):
    version_id = _version_id(app, "safe-ordering")
    _, _, content_hash = version_of(app, "safe-ordering")
    assert login(client, "other@example.org").status_code == 302
    assert client.get("/signoff").status_code == 403
    assert client.get(f"/signoff/{version_id}").status_code == 403
    refused = client.post(f"/signoff/{version_id}/approve", data={
        "csrf_token": csrf_token(client, "/author/modules"), "content_hash": content_hash})
    assert refused.status_code == 403
    assert _counts(app) == (0, 0)


def test_another_organisations_draft_is_not_found(app, client, org):
    other = build_module(app, org="Other Health", slug="their-module", status="draft")
    assert login(client, "pharm@example.org").status_code == 302
    assert client.get(f"/signoff/{other['version_id']}").status_code == 404
    response = client.post(f"/signoff/{other['version_id']}/approve", data={
        "csrf_token": csrf_token(client, "/signoff"), "content_hash": "x"})
    assert response.status_code == 404
    assert "their-module" not in client.get("/signoff").get_data(as_text=True)
    assert _counts(app) == (0, 0)


def test_the_navigation_shows_sign_off_to_reviewers_only(app, client, org):
    assert login(client, "other@example.org").status_code == 302
    assert 'href="/signoff"' not in client.get("/author/modules").get_data(as_text=True)
    assert login(client, "educator@example.org").status_code == 302
    assert 'href="/signoff"' in client.get("/author/modules").get_data(as_text=True)


def test_the_pages_statements_do_not_grow_with_drafts(app, client, org):
    """``signoff.drafts`` is set-based: two drafts or seven, the same statements."""
    from tests.statements import counted

    assert login(client, "educator@example.org").status_code == 302
    pages = ("/signoff", "/author/modules")
    with counted() as few:
        for page in pages:
            assert client.get(page).status_code == 200
    for n in range(5):
        build_module(app, slug=f"extra-{n}", status="draft")
    with counted() as many:
        for page in pages:
            assert client.get(page).status_code == 200
    html = client.get("/signoff").get_data(as_text=True)
    assert html.count("Read and approve<") == 7
    assert len(many) == len(few), many
