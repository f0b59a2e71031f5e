"""Issue 17's content rules in the editor (issue 13): a draft may lack lesson sources and a
pool twice the draw while it is written, publishing may not (422 naming the lesson file and
line, nothing written); the lesson form tells the author the Sources rule; the sign-off gate
refuses a publish with 409 naming each reviewer still to approve, and writes nothing."""

from __future__ import annotations

import re
from html import unescape

from sqlalchemy import select

from lms_plugin.accounts.models import AuditEvent, User
from lms_plugin.catalog import signoff
from lms_plugin.catalog.models import Module, ModuleVersion
from lms_plugin.extensions import db
from tests.catalog.authoring_helpers import LESSON_TEXT, build_draft, lesson, lock_of, post
from tests.catalog.test_authoring_forms import snapshot


def _publish(client, slug: str, notes: str = "First release"):
    base = f"/author/modules/{slug}"
    return post(client, f"{base}/publish", {"lock": lock_of(client, f"{base}/publish"),
                                             "change_notes": notes})


def _published_audits(app) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "content.publish")))


def test_a_draft_may_lack_sources_and_a_full_pool_but_publishing_names_both(app, client,
                                                                          login_as):
    login_as("author")
    slug = build_draft(client, app)
    base = f"/author/modules/{slug}"
    # Saving a lesson without sources and a draw of 2 from a pool of 2 is allowed (a draft).
    response = post(client, f"{base}/lessons/1", {"lock": lock_of(client, f"{base}/lessons/1"),
                                                  "body": LESSON_TEXT})
    assert response.status_code == 302, response.get_data(as_text=True)
    response = post(client, f"{base}/edit", {"lock": lock_of(client, f"{base}/edit"),
                                             "title": "BCMA scanning", "estimated_minutes": "15",
                                             "pass_mark": "80", "draw_count": "2"})
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        version = db.session.scalar(select(ModuleVersion))
        assert version.draw_count == 2 and "## Sources" not in version.lessons[0].body_markdown
    before = snapshot(app)
    response = _publish(client, slug)
    assert response.status_code == 422
    html = unescape(response.get_data(as_text=True))
    assert "modules/bcma-scan/lessons/01-scanning-basics.md:3: lesson has no sources" in html
    assert "'draw' is 2 but the pool has only 2 questions: a pool needs at least twice" in html
    assert snapshot(app) == before and not _published_audits(app)
    # With sources and a draw of 1 it publishes.
    post(client, f"{base}/lessons/1", {"lock": lock_of(client, f"{base}/lessons/1"),
                                       "body": lesson()})
    post(client, f"{base}/edit", {"lock": lock_of(client, f"{base}/edit"),
                                  "title": "BCMA scanning", "estimated_minutes": "15",
                                  "pass_mark": "80", "draw_count": "1"})
    assert _publish(client, slug).status_code == 302
    assert len(_published_audits(app)) == 1


def test_lesson_form_tells_the_sources_rule(app, client, login_as):
    login_as("author")
    slug = build_draft(client, app)
    for page in (f"/author/modules/{slug}/lessons/new", f"/author/modules/{slug}/lessons/1"):
        html = unescape(client.get(page).get_data(as_text=True))
        hint = html.split('id="body-hint">')[1].split("</p>")[0]
        assert "## Sources" in hint and "- Title. Publisher, 2024. <https://" in hint
        assert 'aria-describedby="body-hint"' in html  # read out with the field


def test_the_gate_names_who_must_still_sign_off_and_writes_nothing(app, client, login_as,
                                                                   factory):
    login_as("author")
    slug = build_draft(client, app)
    pharmacist = factory.user("learner")
    with app.app_context():
        module = db.session.scalar(select(Module))
        person = db.session.get(User, pharmacist)
        signoff.set_reviewers(module.organisation_id, roles=["pharmacist"],
                              people=[(person, "medical director")])
        signoff.add_role_holder(module.organisation_id, "pharmacist", person)
        db.session.commit()
        who = person.name or person.email
    before = snapshot(app)
    response = _publish(client, slug)
    assert response.status_code == 409
    html = unescape(response.get_data(as_text=True))
    waiting = html.split('class="signoff-waiting">')[1].split("</ul>")[0]
    assert "<li>pharmacist</li>" in waiting and f"<li>{who} (medical director)</li>" in waiting
    assert "Nothing was published" in html
    assert "First release" in html  # the author's notes are kept in the form
    assert snapshot(app) == before and not _published_audits(app)
    with app.app_context():
        assert db.session.scalar(select(ModuleVersion.change_notes)) in ("", None)
    # "Save the notes for sign-off" stores them with the draft (audited), nothing published;
    # both reviewers approve that exact version; the publish form offers the saved notes and
    # publishing them unchanged keeps the approvals.
    base = f"/author/modules/{slug}"
    response = post(client, f"{base}/publish", {"lock": lock_of(client, f"{base}/publish"),
                                                "change_notes": "First release",
                                                "retraining_required": "y", "save_notes": "1"})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert not _published_audits(app)
    with app.app_context():
        version = db.session.scalar(select(ModuleVersion))
        assert (version.status, version.change_notes, version.retraining_required) == \
            ("draft", "First release", True)
        update = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "version.update")).all()[-1]
        assert update.details["what"] == "change notes"
        assert update.details["after"]["change_notes"] == "First release"
        person = db.session.get(User, pharmacist)
        signoff.approve(version, person, role="pharmacist")
        signoff.approve(version, person, role="medical director")
        db.session.commit()
    html = unescape(client.get(f"{base}/publish").get_data(as_text=True))
    assert re.search(r'<textarea id="change_notes"[^>]*>\s*First release</textarea>', html)
    assert re.search(r'<input checked id="retraining_required"', html)
    response = post(client, f"{base}/publish", {"lock": lock_of(client, f"{base}/publish"),
                                                "change_notes": "First release",
                                                "retraining_required": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)
    publish = _published_audits(app)
    assert len(publish) == 1 and len(publish[0].details["approvals"]) == 2


def test_saving_notes_for_sign_off_needs_notes(app, client, login_as):
    login_as("author")
    slug = build_draft(client, app)
    base = f"/author/modules/{slug}"
    before = snapshot(app)
    response = post(client, f"{base}/publish", {"lock": lock_of(client, f"{base}/publish"),
                                                "change_notes": " ", "save_notes": "1"})
    assert response.status_code == 422
    assert "Say what changed" in response.get_data(as_text=True)
    assert snapshot(app) == before
