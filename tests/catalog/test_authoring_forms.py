"""Every authoring form: bad input re-renders with a message on the field (422) and the
database is unchanged; a post without a CSRF token is refused; all seven item types save
through the editor and export/import back unchanged."""

from __future__ import annotations

import io
import re
import zipfile
from html import unescape

import pytest
from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent
from lms_plugin.catalog.content_format import load_content
from lms_plugin.catalog.models import ClinicalSystem, ContentAsset, Module, ModuleVersion
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

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00"
       b"\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05"
       b"\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


def snapshot(app) -> tuple:
    """Everything an authoring form could write, to compare before and after a refusal."""
    with app.app_context():
        versions = [(v.id, v.number, v.status, v.lock_version, v.content_hash, v.title)
                    for v in db.session.scalars(select(ModuleVersion).order_by(ModuleVersion.id))]
        return (versions,
                db.session.scalar(select(func.count()).select_from(Module)),
                db.session.scalar(select(func.count()).select_from(ClinicalSystem)),
                db.session.scalar(select(func.count()).select_from(ContentAsset)),
                db.session.scalar(select(func.count()).select_from(AuditEvent)))


def field_error(html: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', html)
    assert match, f"no error on field {field}"
    return unescape(match.group(1))


@pytest.fixture
def draft(app, client, login_as):
    login_as("author")
    return build_draft(client, app)


BAD_METADATA = [
    ({"estimated_minutes": "0"}, "estimated_minutes", "at least 1"),
    ({"estimated_minutes": "ten"}, "estimated_minutes", "whole number"),
    ({"pass_mark": "120"}, "pass_mark", "between 0 and 100"),
    ({"validity_months": "5000"}, "validity_months", "between 1 and 1200"),
    ({"attempt_limit": "0"}, "attempt_limit", "at least 1"),
    ({"draw_count": "5"}, "draw_count", "pool has only 2"),
    ({"title": ""}, "title", "required"),
    ({"title": "x" * 301}, "title", "300"),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD_METADATA)
def test_metadata_bad_input(app, client, draft, change, field, message):
    base = f"/author/modules/{draft}"
    before = snapshot(app)
    data = {"lock": lock_of(client, f"{base}/edit"), "title": "T", "estimated_minutes": "15",
            "pass_mark": "80", **change}
    response = post(client, f"{base}/edit", data)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert snapshot(app) == before


BAD_QUESTIONS = [
    ({"answer": "z"}, "answer", "points to no option"),
    ({"options": "a | Only one"}, "options", "at least 2"),
    ({"options": "a | One\na | Two"}, "options", "duplicate id"),
    ({"key": ""}, "key", "required"),
    ({"key": "scan-first-again", "prompt": ""}, "prompt", "required"),
    ({"points": "-1"}, "points", "more than 0"),
    ({"type": "multiple_response", "answer": ""}, "answer", "at least one"),
    ({"type": "true_false", "answer": "maybe"}, "answer", "true or false"),
    ({"type": "ordering", "items": "a | One\nb | Two", "answer": "a"}, "answer",
     "every item id"),
    ({"type": "matching", "pairs": "p1 | A | B"}, "pairs", "at least 2"),
    ({"type": "numeric", "answer": "ten"}, "answer", "must be a number"),
    ({"type": "numeric", "answer": "10", "tolerance": "-1"}, "tolerance", "negative"),
    ({"type": "short_text", "accepted": ""}, "accepted", "at least one answer"),
    ({"type": "bogus"}, "type", "unknown question type"),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD_QUESTIONS)
def test_question_bad_input(app, client, draft, change, field, message):
    base = f"/author/modules/{draft}"
    before = snapshot(app)
    data = {"lock": lock_of(client, f"{base}/questions/new"), **SINGLE,
            "key": "another", **change}
    response = post(client, f"{base}/questions/new", data)
    assert response.status_code == 422, response.status_code
    html = response.get_data(as_text=True)
    assert message in field_error(html, field)
    assert snapshot(app) == before


def test_duplicate_question_id_is_refused(app, client, draft):
    base = f"/author/modules/{draft}"
    before = snapshot(app)
    response = post(client, f"{base}/questions/new",
                    {"lock": lock_of(client, f"{base}/questions/new"), **SINGLE})
    assert response.status_code == 422
    assert "duplicate question id" in field_error(response.get_data(as_text=True), "key")
    assert snapshot(app) == before


@pytest.mark.parametrize(("body", "slug", "field", "message"), [
    ("No title line here", "", "body", "no '# Title' line"),
    ("", "", "body", "required"),
    (LESSON, "Bad Slug", "slug", "lowercase"),
    (LESSON, "../../etc", "slug", "lowercase"),
    ("# T\n\n![x](images/missing.png)\n", "", "body", "not found"),
    ("# T\n\n![x](https://cdn.example/x.png)\n", "", "body", "not shipped"),
])
def test_lesson_bad_input(app, client, draft, body, slug, field, message):
    base = f"/author/modules/{draft}"
    before = snapshot(app)
    response = post(client, f"{base}/lessons/new",
                    {"lock": lock_of(client, f"{base}/lessons/new"), "body": body,
                     "slug": slug})
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert snapshot(app) == before


def test_lesson_preview_is_sanitised_and_not_saved(app, client, draft):
    base = f"/author/modules/{draft}"
    before = snapshot(app)
    response = post(client, f"{base}/lessons/1", {
        "lock": lock_of(client, f"{base}/lessons/1"), "preview": "1",
        "body": "# Title\n\n**bold** <script>alert(1)</script> [x](javascript:alert(1))\n"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    preview = html.split('id="preview-heading"')[1]
    assert "<strong>bold</strong>" in preview
    assert "<script>alert" not in preview and 'href="javascript' not in preview
    assert snapshot(app) == before


def test_new_module_bad_input(app, client, login_as):
    login_as("author")
    system_id = make_system(app)
    post(client, "/author/modules/new", {"title": "A", "slug": "taken",
                                         "system_id": system_id})
    before = snapshot(app)
    for data, field, message in (
            ({"title": "B", "slug": "taken", "system_id": system_id}, "slug", "already"),
            ({"title": "B", "slug": "Bad Slug", "system_id": system_id}, "slug", "lowercase"),
            ({"title": "", "slug": "fine", "system_id": system_id}, "title", "required"),
            ({"title": "B", "slug": "fine", "system_id": 999999}, "system_id", "system")):
        response = post(client, "/author/modules/new", data)
        assert response.status_code == 422
        assert message in field_error(response.get_data(as_text=True), field)
    assert snapshot(app) == before


def test_system_of_another_organisation_is_refused(app, client, login_as):
    login_as("author")
    other = make_system(app, slug="theirs", org="Other Health")
    before = snapshot(app)
    response = post(client, "/author/modules/new", {"title": "B", "slug": "b",
                                                    "system_id": other})
    assert response.status_code == 422
    assert client.get(f"/author/systems/{other}").status_code == 404
    assert snapshot(app) == before


def test_system_bad_input(app, client, login_as):
    login_as("author")
    system_id = make_system(app)
    before = snapshot(app)
    for path, data, field, message in (
            ("/author/systems/new", {"slug": "ehr", "name": "X"}, "slug", "already"),
            ("/author/systems/new", {"slug": "", "name": "X"}, "slug", "lowercase"),
            ("/author/systems/new", {"slug": "ok", "name": ""}, "name", "name"),
            (f"/author/systems/{system_id}", {"name": ""}, "name", "name"),
            (f"/author/systems/{system_id}", {"name": "x" * 201}, "name", "200")):
        response = post(client, path, data)
        assert response.status_code == 422, (path, data)
        assert message in field_error(response.get_data(as_text=True), field)
    assert snapshot(app) == before


def test_publish_bad_input(app, client, draft):
    base = f"/author/modules/{draft}"
    before = snapshot(app)
    lock = lock_of(client, f"{base}/publish")
    response = post(client, f"{base}/publish", {"lock": lock, "change_notes": "x",
                                                "go_live_at": "2001-01-01T10:00"})
    assert response.status_code == 422
    assert "in the past" in field_error(response.get_data(as_text=True), "go_live_at")
    response = post(client, f"{base}/publish", {"lock": lock, "change_notes": "x",
                                                "go_live_at": "not a date"})
    assert response.status_code == 422
    field_error(response.get_data(as_text=True), "go_live_at")
    response = post(client, f"{base}/publish", {"lock": str(int(lock) - 1),
                                                "change_notes": "x"})
    assert response.status_code == 409
    assert "changed since" in field_error(response.get_data(as_text=True), "change_notes")
    assert snapshot(app) == before


def test_publish_with_go_live_and_event(app, client, draft):
    from lms_plugin import events

    seen = []

    def receiver(sender, event):
        seen.append((sender, event))

    events.version_published.connect(receiver)
    try:
        base = f"/author/modules/{draft}"
        response = post(client, f"{base}/publish", {
            "lock": lock_of(client, f"{base}/publish"), "change_notes": "New",
            "go_live_at": "2099-01-01T08:30"})
        assert response.status_code == 302
    finally:
        events.version_published.disconnect(receiver)
    with app.app_context():
        version = db.session.scalar(select(ModuleVersion))
        assert version.go_live_at.replace(tzinfo=None).isoformat() == "2099-01-01T08:30:00"
        # One events.version_published per publish, sent by the app (events.announce) with
        # the merged payload: which version, its module and organisation, and its go-live.
        assert len(seen) == 1 and seen[0][0] is app
        event = seen[0][1]
        assert (event.version_id, event.module_id, event.number) == \
            (version.id, version.module_id, 1)
        assert event.organisation_id == version.module.organisation_id
        assert event.go_live_at.replace(tzinfo=None).isoformat() == "2099-01-01T08:30:00"
        assert event.retraining_required is version.retraining_required


def test_image_upload_sniffs_content(app, client, draft):
    base = f"/author/modules/{draft}"
    before = snapshot(app)
    for name, data, message in (
            ("fake.png", b"<html><script>alert(1)</script></html>", "not a PNG"),
            ("big.png", PNG + b"\x00" * (5 * 1024 * 1024), "at most 5 MB")):
        response = post(client, f"{base}/images",
                        {"img-image": (io.BytesIO(data), name), "img-alt": "x"},
                        form_page=f"{base}/lessons/1", content_type="multipart/form-data")
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)
    response = post(client, f"{base}/images", {"img-image": (io.BytesIO(PNG), "a.png")},
                    form_page=f"{base}/lessons/1", content_type="multipart/form-data")
    assert response.status_code == 422  # no alt text
    assert snapshot(app) == before
    # A JPEG-named PNG is stored by what its bytes are.
    response = post(client, f"{base}/images", {"img-image": (io.BytesIO(PNG), "Scan.JPG"),
                                               "img-alt": "Scanner"},
                    form_page=f"{base}/lessons/1", content_type="multipart/form-data")
    assert response.status_code == 302
    flashed = client.get(response.headers["Location"]).get_data(as_text=True)
    path = re.search(r"\(images/(scan-[0-9a-f]{8}\.png)\)", flashed).group(1)
    with app.app_context():
        asset = db.session.scalar(select(ContentAsset))
        assert (asset.path, asset.content_type) == (f"images/{path}", "image/png")


def test_retire_without_csrf_and_other_posts_are_refused(app, client, draft):
    base = f"/author/modules/{draft}"
    before = snapshot(app)
    lock = lock_of(client, f"{base}/edit")
    for path, data in ((f"{base}/edit", {"lock": lock, "title": "X", "pass_mark": "80",
                                         "estimated_minutes": "15"}),
                       (f"{base}/lessons/new", {"lock": lock, "body": LESSON}),
                       (f"{base}/questions/new", {"lock": lock, **SINGLE, "key": "q2"}),
                       (f"{base}/lessons/1/delete", {"lock": lock}),
                       (f"{base}/publish", {"lock": lock, "change_notes": "x"}),
                       (f"{base}/retire", {"reason": "x"}),
                       ("/author/modules/new", {"title": "A", "slug": "a"}),
                       ("/author/systems/new", {"slug": "a", "name": "A"})):
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        assert "CSRF" in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_move_and_delete(app, client, draft):
    base = f"/author/modules/{draft}"
    lock = lock_of(client, f"{base}/edit")
    assert post(client, f"{base}/questions/1/move", {"lock": lock, "direction": "down"},
                form_page=base).status_code == 302
    with app.app_context():
        assert [q.key for q in db.session.scalar(select(ModuleVersion)).questions] == \
            ["rate", "scan-first"]
    # A stale lock (the move above advanced it) changes nothing: 409.
    before = snapshot(app)
    assert post(client, f"{base}/questions/1/delete", {"lock": lock},
                form_page=base).status_code == 409
    assert post(client, f"{base}/questions/9/delete",
                {"lock": lock_of(client, f"{base}/edit")}, form_page=base).status_code == 404
    assert post(client, f"{base}/questions/1/move", {"lock": "1", "direction": "sideways"},
                form_page=base).status_code == 422
    assert snapshot(app) == before


ALL_TYPES = [
    SINGLE,
    {"key": "high-alert", "type": "multiple_response", "prompt": "Select high-alert drugs.",
     "options": "a | Insulin | Yes\nb | Heparin\nc | Paracetamol | No", "answer": "a, b",
     "scoring": "all_or_nothing"},
    {"key": "read-back", "type": "true_false", "prompt": "Verbal orders are read back.",
     "answer": "true", "feedback_true": "Right.", "feedback_false": "Always."},
    {"key": "steps", "type": "ordering", "prompt": "Order the steps.",
     "items": "a | Scan patient\nb | Scan drug\nc | Give", "answer": "a, b, c",
     "scoring": "partial"},
    {"key": "match", "type": "matching", "prompt": "Match the alerts.",
     "pairs": "p1 | Interaction | Review\np2 | Duplicate | Stop one",
     "distractors": "Ignore"},
    {"key": "rate", "type": "numeric", "prompt": "Rate?", "answer": "12.5",
     "tolerance": "5", "tolerance_type": "percent", "units": "mL/h", "points": "2"},
    {"key": "form", "type": "short_text", "prompt": "Which form?",
     "accepted": "paper MAR\ndowntime form", "explanation": "The paper MAR."},
]


def test_all_item_types_round_trip_through_files(app, client, login_as, tmp_path):
    login_as("author")
    system_id = make_system(app)
    post(client, "/author/modules/new", {"title": "All types", "slug": "all-types",
                                         "system_id": system_id})
    base = "/author/modules/all-types"
    post(client, f"{base}/lessons/new", {"lock": lock_of(client, f"{base}/lessons/new"),
                                         "body": LESSON})
    for question in ALL_TYPES:
        response = post(client, f"{base}/questions/new",
                        {"lock": lock_of(client, f"{base}/questions/new"), **question})
        assert response.status_code == 302, response.get_data(as_text=True)
    # Each question's editor shows what was saved (fill is the inverse of to_spec).
    for index, question in enumerate(ALL_TYPES, start=1):
        html = client.get(f"{base}/questions/{index}").get_data(as_text=True)
        assert f'value="{question["key"]}"' in html
    with app.app_context():
        version = db.session.scalar(select(ModuleVersion))
        stored = {q.key: (q.type, q.data) for q in version.questions}
        content_hash = version.content_hash
    assert stored["read-back"][1] == {"answer": True, "feedback": {"true": "Right.",
                                                                   "false": "Always."},
                                      "points": 1}
    assert stored["rate"][1]["answer"] == 12.5
    assert stored["steps"][1]["scoring"] == "partial"
    # Re-saving every question unchanged through its editor changes nothing.
    for index in range(1, len(ALL_TYPES) + 1):
        html = client.get(f"{base}/questions/{index}").get_data(as_text=True)
        data = _form_values(html)
        assert post(client, f"{base}/questions/{index}", data).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(ModuleVersion.content_hash)) == content_hash
    response = client.get(f"{base}/export.zip")
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        archive.extractall(tmp_path)
    bundle = load_content(tmp_path)
    assert bundle.ok, bundle.problems
    assert bundle.modules[0].content_hash() == content_hash
    assert {q.key: (q.type, q.data) for q in bundle.modules[0].questions} == stored


def _form_values(html: str) -> dict[str, str]:
    """The values a browser would submit for the question form on ``html``."""
    data = {}
    for name, value in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html):
        data[name] = unescape(value)
    for name, value in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>\n?(.*?)</textarea>',
                                  html, re.S):
        data[name] = unescape(value)
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html,
                                 re.S):
        chosen = re.search(r'<option selected value="([^"]*)"', body) or \
            re.search(r'<option value="([^"]*)" selected', body)
        data[name] = unescape(chosen.group(1)) if chosen else ""
    data.pop("csrf_token", None)
    return data


def test_uploaded_image_is_shown_in_a_lesson_and_exported(app, client, draft, tmp_path):
    base = f"/author/modules/{draft}"
    response = post(client, f"{base}/images", {"img-image": (io.BytesIO(PNG), "wrist.png"),
                                               "img-alt": "Wristband"},
                    form_page=f"{base}/lessons/1", content_type="multipart/form-data")
    flashed = client.get(response.headers["Location"]).get_data(as_text=True)
    line = unescape(re.search(r"!\[Wristband\]\(images/[a-z0-9-]+\.png\)", flashed).group(0))
    response = post(client, f"{base}/lessons/1", {
        "lock": lock_of(client, f"{base}/lessons/1"), "body": lesson("\n" + line + "\n")})
    assert response.status_code == 302, response.get_data(as_text=True)
    html = client.get(f"/modules/{draft}/lessons/1?preview=1").get_data(as_text=True)
    src = re.search(r'<img src="(/content/\d+/images/[^"]+)" alt="Wristband"', html).group(1)
    assert client.get(src).data == PNG
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"{base}/export.zip").data))
    archive.extractall(tmp_path)
    bundle = load_content(tmp_path)
    assert bundle.ok, bundle.problems
    assert [a.data for a in bundle.modules[0].assets] == [PNG]
