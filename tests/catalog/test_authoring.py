"""Authoring through HTTP: create, edit, conflict, publish, versions, diff, retire/restore,
systems, and the database checked after each step."""

from __future__ import annotations

import io
import re
import zipfile

from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent
from lms_plugin.catalog import services
from lms_plugin.catalog.content_format import load_content
from lms_plugin.catalog.models import ClinicalSystem, Module, ModuleVersion
from lms_plugin.extensions import db
from tests.catalog.authoring_helpers import (
    LESSON,
    SINGLE,
    build_draft,
    lesson,
    lock_of,
    make_system,
    post,
)
from tests.conftest import login


def _versions(app, slug: str) -> list[tuple[int, str]]:
    with app.app_context():
        return [(v.number, v.status) for v in db.session.scalars(
            select(ModuleVersion).join(Module).where(Module.slug == slug)
            .order_by(ModuleVersion.number))]


def _audits(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                       .order_by(AuditEvent.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


def _publish(client, slug: str, notes: str = "First release", **extra):
    base = f"/author/modules/{slug}"
    lock = lock_of(client, f"{base}/publish")
    return post(client, f"{base}/publish", {"lock": lock, "change_notes": notes, **extra})


def test_create_edit_and_publish_a_module(app, client, login_as, factory):
    login_as("author")
    slug = build_draft(client, app)
    page = client.get(f"/author/modules/{slug}").get_data(as_text=True)
    assert "Scanning basics" in page and "scan-first" in page and "rate" in page
    assert _versions(app, slug) == [(1, "draft")]
    response = _publish(client, slug, retraining_required="y")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert _versions(app, slug) == [(1, "published")]
    with app.app_context():
        version = db.session.scalar(select(ModuleVersion))
        assert version.change_notes == "First release" and version.retraining_required
        assert version.published_at is not None
        assert [q.key for q in version.questions] == ["scan-first", "rate"]
        assert version.questions[0].data["options"][0]["feedback"] == \
            "Correct: always the patient first"
        assert version.questions[1].data == {"answer": 10, "tolerance": 0.5,
                                             "tolerance_type": "absolute", "units": "mL/hour",
                                             "points": 2}
    publish = _audits(app, "content.publish")
    assert len(publish) == 1 and publish[0].details["after"]["status"] == "published"
    assert {a.action for a in _audits(app, "module.create")} == {"module.create"}
    updates = _audits(app, "version.update")
    assert len(updates) == 3
    assert updates[1].details["after"]["questions"][0]["id"] == "scan-first"
    # The learner pages show it now.
    learner = app.test_client()
    login(learner, factory.email_of(factory.user("learner")))
    assert "BCMA scanning" in learner.get(f"/modules/{slug}").get_data(as_text=True)


def test_publish_refuses_an_incomplete_draft_and_missing_notes(app, client, login_as):
    login_as("author")
    system_id = make_system(app)
    post(client, "/author/modules/new", {"title": "Empty", "slug": "empty",
                                         "system_id": system_id})
    response = _publish(client, "empty")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "module has no lessons" in html and "questions" in html
    assert _versions(app, "empty") == [(1, "draft")]
    lock = lock_of(client, "/author/modules/empty/lessons/new")
    post(client, "/author/modules/empty/lessons/new", {"lock": lock, "body": LESSON})
    lock = lock_of(client, "/author/modules/empty/questions/new")
    post(client, "/author/modules/empty/questions/new", {"lock": lock, **SINGLE})
    response = _publish(client, "empty", notes="")
    assert response.status_code == 422
    assert "Say what changed" in response.get_data(as_text=True)
    assert _versions(app, "empty") == [(1, "draft")]


def test_new_draft_diff_and_versions(app, client, login_as):
    login_as("author")
    slug = build_draft(client, app)
    _publish(client, slug)
    base = f"/author/modules/{slug}"
    response = post(client, f"{base}/draft", {"from_number": "1"}, form_page=base)
    assert response.status_code == 302
    assert _versions(app, slug) == [(1, "published"), (2, "draft")]
    # Stale "start a draft" (the page said version 1 was newest, it is 2 now): a conflict.
    assert post(client, f"{base}/draft", {"from_number": "0"}, form_page=base).status_code \
        == 409
    lock = lock_of(client, f"{base}/lessons/1")
    response = post(client, f"{base}/lessons/1", {
        "lock": lock, "body": lesson("\nThen scan the **medication**.\n")})
    assert response.status_code == 302
    lock = lock_of(client, f"{base}/questions/1")
    changed = {**SINGLE, "answer": "b", "options": "a | The wristband\nb | The drug"}
    assert post(client, f"{base}/questions/1", {"lock": lock, **changed}).status_code == 302
    lock = lock_of(client, f"{base}/questions/2")
    assert post(client, f"{base}/questions/2/delete", {"lock": lock},
                form_page=base).status_code == 302
    lock = lock_of(client, f"{base}/edit")
    metadata = {"lock": lock, "title": "BCMA scanning, revised", "estimated_minutes": "20",
                "pass_mark": "90", "shuffle_questions": "y"}
    assert post(client, f"{base}/edit", metadata).status_code == 302
    assert _publish(client, slug, notes="Drug scan added").status_code == 302
    html = client.get(f"{base}/diff?old=1&new=2").get_data(as_text=True)
    assert "Pass mark (%)" in html and "90" in html
    assert "+Then scan the **medication**." in html
    assert re.search(r"Lines \d+ to \d+:", html) and "@@" not in html
    assert "Removed:</strong> rate" in html
    assert "Changed: scan-first" in html
    assert _versions(app, slug) == [(1, "published"), (2, "published")]
    with app.app_context():
        module = services.get_module(db.session.scalar(select(Module.organisation_id)), slug)
        assert services.current_version(module).number == 2
    assert client.get(f"{base}/diff?old=1&new=9").status_code == 404
    assert client.get(f"{base}/diff?old=x").status_code == 422


def _two_authors(app, client, login_as, factory, page: str):
    """(module base path, lock read on ``page``, a second signed-in author's client)."""
    login_as("author")
    base = f"/author/modules/{build_draft(client, app)}"
    stale = lock_of(client, f"{base}/{page}")
    other = app.test_client()
    login(other, factory.email_of(factory.user("author")))
    return base, stale, other


def test_edit_conflict_keeps_input_and_shows_the_difference(app, client, login_as, factory):
    base, stale_lock, other = _two_authors(app, client, login_as, factory, "edit")
    assert post(other, f"{base}/edit", {"lock": stale_lock, "title": "Their title",
                                        "estimated_minutes": "15", "pass_mark": "80"}
                ).status_code == 302
    response = post(client, f"{base}/edit", {"lock": stale_lock, "title": "My title",
                                             "estimated_minutes": "15", "pass_mark": "75"})
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "changed meanwhile" in html
    assert "Their title" in html and 'value="My title"' in html  # theirs shown, mine kept
    assert 'value="75"' in html
    with app.app_context():
        version = db.session.scalar(select(ModuleVersion))
        assert version.title == "Their title" and version.pass_mark == 80
        new_lock = str(version.lock_version)
    assert f'name="lock" type="hidden" value="{new_lock}"' in html
    # Saving the re-rendered form again applies mine on top of theirs.
    again = post(client, f"{base}/edit", {"lock": new_lock, "title": "My title",
                                          "estimated_minutes": "15", "pass_mark": "75"})
    assert again.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(ModuleVersion.title)) == "My title"


def test_retire_and_restore(app, client, login_as):
    login_as("admin")
    slug = build_draft(client, app)
    base = f"/author/modules/{slug}"
    assert post(client, f"{base}/retire", {"reason": "x"}, form_page=base).status_code == 409
    _publish(client, slug)
    response = post(client, f"{base}/retire", {"reason": ""}, form_page=base)
    assert response.status_code == 422 and "Say why" in response.get_data(as_text=True)
    assert _versions(app, slug) == [(1, "published")]
    assert post(client, f"{base}/retire", {"reason": "Replaced by the new scanner"},
                form_page=base).status_code == 302
    assert _versions(app, slug) == [(1, "retired")]
    assert client.get(f"/modules/{slug}").status_code == 404  # learners (admin preview?)
    retire = _audits(app, "module.retire")
    assert retire[0].details["reason"] == "Replaced by the new scanner"
    assert post(client, f"{base}/restore", {}, form_page=base).status_code == 302
    assert _versions(app, slug) == [(1, "published")]
    assert post(client, f"{base}/restore", {}, form_page=base).status_code == 409
    assert _audits(app, "module.restore")[0].details["after"] == {"status": "published"}


def test_module_list_filters(app, client, login_as):
    login_as("author")
    build_draft(client, app, slug="bcma-scan")
    _publish(client, "bcma-scan")
    post(client, "/author/modules/new", {"title": "Downtime basics", "slug": "downtime",
                                         "system_id": make_system(app, slug="dt")})
    html = client.get("/author/modules").get_data(as_text=True)
    assert "BCMA scanning" in html and "Downtime basics" in html
    html = client.get("/author/modules?status=draft").get_data(as_text=True)
    assert "Downtime basics" in html and "BCMA scanning" not in html
    html = client.get("/author/modules?status=published").get_data(as_text=True)
    assert "BCMA scanning" in html and "Downtime basics" not in html
    html = client.get("/author/modules?q=downtime").get_data(as_text=True)
    assert "Downtime basics" in html and "BCMA scanning" not in html
    html = client.get("/author/modules?system=dt").get_data(as_text=True)
    assert "Downtime basics" in html and "BCMA scanning" not in html
    assert client.get("/author/modules?status=bogus").status_code == 200


def test_audience_filter(app, client, login_as):
    login_as("author")
    slug = build_draft(client, app)
    base = f"/author/modules/{slug}"
    lock = lock_of(client, f"{base}/edit")
    post(client, f"{base}/edit", {"lock": lock, "title": "BCMA scanning",
                                  "audience": "Registered Nurse\nPharmacist",
                                  "estimated_minutes": "15", "pass_mark": "80"})
    assert "BCMA scanning" in client.get("/author/modules?audience=pharmacist").get_data(
        as_text=True)
    assert "BCMA scanning" not in client.get("/author/modules?audience=porter").get_data(
        as_text=True)


def test_systems_add_and_edit(app, client, login_as):
    login_as("author")
    response = post(client, "/author/systems/new", {"slug": "pacs", "name": "PACS",
                                                    "vendor": "Agfa",
                                                    "description": "Imaging"})
    assert response.status_code == 302
    with app.app_context():
        system = db.session.scalar(select(ClinicalSystem))
        system_id = system.id
        assert (system.slug, system.name, system.vendor) == ("pacs", "PACS", "Agfa")
    response = post(client, f"/author/systems/{system_id}", {"name": "PACS viewer",
                                                             "vendor": "",
                                                             "description": "Imaging"})
    assert response.status_code == 302
    with app.app_context():
        system = db.session.get(ClinicalSystem, system_id)
        assert (system.name, system.vendor) == ("PACS viewer", None)
    audit = _audits(app, "system.update")[0]
    assert audit.details["before"] == {"name": "PACS", "vendor": "Agfa"}
    assert audit.details["after"] == {"name": "PACS viewer", "vendor": None}
    assert "PACS viewer" in client.get("/author/systems").get_data(as_text=True)


def test_export_zip_imports_back_unchanged(app, client, login_as, tmp_path):
    login_as("author")
    slug = build_draft(client, app)
    base = f"/author/modules/{slug}"
    _publish(client, slug)
    response = client.get(f"{base}/export.zip")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path)
    assert "modules/bcma-scan/module.yaml" in names and "systems/ehr.yaml" in names
    bundle = load_content(tmp_path)
    assert bundle.ok, bundle.problems
    with app.app_context():
        version = db.session.scalar(select(ModuleVersion))
        assert bundle.modules[0].content_hash() == version.content_hash
    # Uploading it back changes nothing (same content: no new version).
    response = post(client, "/author/import",
                    {"archive": (io.BytesIO(response.data), "export.zip")},
                    content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "1 unchanged" in response.get_data(as_text=True)
    assert _versions(app, slug) == [(1, "published")]
    assert _audits(app, "module.export")


def test_counts_stay_after_failed_posts(app, client, login_as):
    """Sanity for the 422 tests: a refused post writes no version and no audit."""
    login_as("author")
    slug = build_draft(client, app)
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    base = f"/author/modules/{slug}"
    lock = lock_of(client, f"{base}/edit")
    response = post(client, f"{base}/edit", {"lock": lock, "title": "T",
                                             "estimated_minutes": "0", "pass_mark": "80"})
    assert response.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == before


def test_go_live_time_holds_a_version_back_from_learners(app, client, login_as, factory):
    login_as("author")
    slug = build_draft(client, app)
    assert _publish(client, slug, notes="v1").status_code == 302
    base = f"/author/modules/{slug}"
    post(client, f"{base}/draft", {"from_number": "1"}, form_page=base)
    lock = lock_of(client, f"{base}/edit")
    post(client, f"{base}/edit", {"lock": lock, "title": "Scanning, next year's edition",
                                  "estimated_minutes": "15", "pass_mark": "80"})
    assert _publish(client, slug, notes="v2", go_live_at="2099-06-01T07:00").status_code == 302
    learner = app.test_client()
    login(learner, factory.email_of(factory.user("learner")))
    html = learner.get(f"/modules/{slug}").get_data(as_text=True)
    assert "BCMA scanning" in html and "next year" not in html
    assert "next year" not in learner.get("/home").get_data(as_text=True)
    with app.app_context():
        from datetime import UTC, datetime

        version = db.session.scalar(select(ModuleVersion).where(ModuleVersion.number == 2))
        version.go_live_at = datetime(2001, 1, 1, tzinfo=UTC)
        db.session.commit()
    assert "next year" in learner.get(f"/modules/{slug}").get_data(as_text=True)


def test_lesson_conflict_shows_their_text_and_keeps_mine(app, client, login_as, factory):
    base, stale, other = _two_authors(app, client, login_as, factory, "lessons/1")
    assert post(other, f"{base}/lessons/1", {"lock": stale, "body": lesson("\nTheirs.\n")}
                ).status_code == 302
    response = post(client, f"{base}/lessons/1", {"lock": stale, "body": lesson("\nMine.\n")})
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "lesson scanning-basics" in html and "Theirs." in html
    assert "Mine." in html.split('id="body"')[1].split("</textarea>")[0]  # kept
    with app.app_context():
        from lms_plugin.catalog.models import Lesson

        assert "Theirs." in db.session.scalar(select(Lesson.body_markdown))


def test_every_authoring_change_is_audited_with_before_and_after(app, client, login_as):
    login_as("admin")
    slug = build_draft(client, app)
    base = f"/author/modules/{slug}"
    post(client, f"{base}/images", {"img-image": (io.BytesIO(b"GIF89a" + b"\0" * 20), "a.gif"),
                                    "img-alt": "x"}, form_page=f"{base}/lessons/1",
         content_type="multipart/form-data")
    post(client, f"{base}/questions/2/delete", {"lock": lock_of(client, f"{base}/edit")},
         form_page=base)
    _publish(client, slug)
    post(client, f"{base}/retire", {"reason": "old"}, form_page=base)
    post(client, f"{base}/restore", {}, form_page=base)
    post(client, f"{base}/draft", {"from_number": "1"}, form_page=base)
    with app.app_context():
        system_id = db.session.scalar(select(ClinicalSystem.id))
    post(client, f"/author/systems/{system_id}", {"name": "EHR", "description": "d"})
    kinds = {}
    with app.app_context():
        for event in db.session.scalars(select(AuditEvent)):
            kinds.setdefault(event.action, event.details)
    assert {"system.create", "system.update", "module.create", "version.update",
            "asset.upload", "content.publish", "module.retire", "module.restore",
            "version.draft"} <= kinds.keys()
    for action, details in kinds.items():
        if action.startswith(("system.", "module.", "version.", "asset.")):
            assert "before" in details and "after" in details, action
    assert kinds["version.update"]["what"] == "lesson scanning-basics"


def test_module_list_statements_do_not_grow_with_modules(app, client, login_as):
    from tests.statements import counted

    login_as("author")
    system_id = make_system(app)
    for n in range(2):
        post(client, "/author/modules/new", {"title": f"M{n}", "slug": f"m{n}",
                                             "system_id": system_id})
    with counted() as few:
        assert client.get("/author/modules").status_code == 200
    for n in range(2, 8):
        post(client, "/author/modules/new", {"title": f"M{n}", "slug": f"m{n}",
                                             "system_id": system_id})
    with counted() as many:
        assert client.get("/author/modules").status_code == 200
    assert len(many) == len(few)


def test_publishing_a_lesson_with_a_localisation_marker_says_so_on_the_page(app, client,
                                                                          login_as):
    """Issue 17's marker gate refused with a field the publish form does not have, and the
    page answered 500. It must re-render (422) naming the marker and its lesson line."""
    login_as("author")
    slug = build_draft(client, app)
    base = f"/author/modules/{slug}"
    marked = lesson("\nCall the [[local: rapid response number]] team.\n")
    response = post(client, f"{base}/lessons/1", {"lock": lock_of(client, f"{base}/lessons/1"),
                                                   "body": marked, "slug": "scanning-basics"})
    assert response.status_code == 302, response.get_data(as_text=True)
    response = _publish(client, slug)
    html = response.get_data(as_text=True)
    assert response.status_code == 422, html
    assert "unresolved localisation marker" in html and "rapid response number" in html
    assert _versions(app, slug) == [(1, "draft")]
