"""Uploads: a content folder .zip (path traversal, links, zip bombs, size and entry caps,
problems reported by file and line, modules imported as drafts) and GIFT / Moodle XML banks
into a draft with a report of what was imported and what was skipped and why."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select

from lms_plugin.catalog import authoring
from lms_plugin.catalog.models import Module, ModuleVersion
from lms_plugin.extensions import db
from tests.catalog.authoring_helpers import build_draft, lock_of, post
from tests.catalog.helpers import SAMPLES, VALID
from tests.catalog.test_authoring_forms import snapshot


def _zip(entries: dict[str, bytes], *, links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            if name in links:
                info.external_attr = 0o120777 << 16
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _valid_entries(prefix: str = "") -> dict[str, bytes]:
    return {prefix + path.relative_to(VALID).as_posix(): path.read_bytes()
            for path in sorted(VALID.rglob("*")) if path.is_file()}


def _upload(client, data: bytes, name: str = "content.zip"):
    return post(client, "/author/import", {"archive": (io.BytesIO(data), name)},
                content_type="multipart/form-data")


def test_zip_imports_modules_as_drafts(app, client, login_as):
    login_as("author")
    response = _upload(client, _zip(_valid_entries("content/")))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "2 created" in response.get_data(as_text=True)
    with app.app_context():
        statuses = set(db.session.scalars(select(ModuleVersion.status)))
        assert statuses == {"draft"}  # publishing happens only through publish_version
        assert db.session.scalar(select(Module.slug).where(Module.slug == "safe-ordering"))


@pytest.mark.parametrize(("entries", "links", "message"), [
    ({"../evil.yaml": b"x"}, (), "outside the content folder"),
    ({"/etc/passwd": b"x"}, (), "outside the content folder"),
    ({"modules/a/..\\..\\x": b"x"}, (), "outside the content folder"),
    ({"C:/x.yaml": b"x"}, (), "outside the content folder"),
    ({"modules/link": b"/etc/passwd"}, ("modules/link",), "is a link"),
])
def test_zip_path_tricks_are_refused(app, client, login_as, entries, links, message):
    login_as("author")
    before = snapshot(app)
    response = _upload(client, _zip(entries, links=links))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_zip_bomb_and_caps(app, client, login_as, monkeypatch):
    login_as("author")
    before = snapshot(app)
    # 70 MB of zeros compress to ~70 KB: refused while unpacking, at the 60 MB cap.
    bomb = _zip({"systems/x.yaml": b"\0" * (70 * 1024 * 1024)})
    assert len(bomb) < 1024 * 1024
    response = _upload(client, bomb)
    assert response.status_code == 422
    assert "unpacks to more than 60 MB" in response.get_data(as_text=True)
    monkeypatch.setattr(authoring, "MAX_ZIP_ENTRIES", 3)
    response = _upload(client, _zip({f"f{i}": b"x" for i in range(5)}))
    assert response.status_code == 422 and "5 entries" in response.get_data(as_text=True)
    response = _upload(client, b"not a zip at all")
    assert response.status_code == 422
    assert "not a readable .zip" in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_zip_with_content_problems_lists_them(app, client, login_as):
    login_as("author")
    entries = _valid_entries()
    yaml_name = next(n for n in entries if n.endswith("module.yaml"))
    entries[yaml_name] += b"\nbogus_key: 1\n"
    before = snapshot(app)
    response = _upload(client, _zip(entries))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "nothing was imported" in html and f"{yaml_name}:" in html
    assert snapshot(app) == before


def _bank(client, base: str, data: bytes, name: str):
    return post(client, f"{base}/bank", {"lock": lock_of(client, f"{base}/bank"),
                                         "bank": (io.BytesIO(data), name)},
                content_type="multipart/form-data")


def test_gift_bank_into_a_draft_with_a_report(app, client, login_as):
    login_as("author")
    base = f"/author/modules/{build_draft(client, app)}"
    response = _bank(client, base, (Path(SAMPLES) / "moodle-export.gift.txt").read_bytes(),
                     "bank.gift")
    assert response.status_code == 200, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    assert "Imported" in html and "Skipped, and why" in html
    with app.app_context():
        version = db.session.scalar(select(ModuleVersion))
        assert len(version.questions) > 2 and version.status == "draft"
    from lms_plugin.accounts.models import AuditEvent

    with app.app_context():
        audit = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "version.update").order_by(AuditEvent.id.desc()).limit(1))
        assert audit.details["what"] == "bank import bank.gift"


def test_moodle_xml_bank_and_refusals(app, client, login_as):
    login_as("author")
    base = f"/author/modules/{build_draft(client, app)}"
    xml = (Path(SAMPLES) / "moodle-export.xml").read_bytes()
    response = _bank(client, base, xml, "bank.xml")
    assert response.status_code == 200, response.get_data(as_text=True)
    before = snapshot(app)
    for name, data, message in (("bank.pdf", b"%PDF", "Upload a .gift"),
                                ("bank.gift", b"\xff\xfe\x00", "not UTF-8"),
                                ("bank.gift", b"// only a comment\n", "No question"),
                                ("bank.xml", b"<quiz><broken", "")):
        response = _bank(client, base, data, name)
        assert response.status_code == 422, (name, response.status_code)
        assert message in response.get_data(as_text=True)
    stale = post(client, f"{base}/bank", {"lock": "0", "bank": (io.BytesIO(xml), "b.xml")},
                 form_page=f"{base}/bank", content_type="multipart/form-data")
    assert stale.status_code == 409
    assert snapshot(app) == before


def test_zip_replacing_a_draft_makes_open_editor_forms_stale(app, client, login_as):
    login_as("author")
    assert _upload(client, _zip(_valid_entries())).status_code == 200
    base = "/author/modules/safe-ordering"
    stale = lock_of(client, f"{base}/edit")
    entries = _valid_entries()
    yaml_name = "modules/safe-ordering/module.yaml"
    entries[yaml_name] = entries[yaml_name].replace(b"estimated_minutes: 20",
                                                    b"estimated_minutes: 42")
    response = _upload(client, _zip(entries))
    assert response.status_code == 200 and "1 draft replaced" in response.get_data(as_text=True)
    response = post(client, f"{base}/edit", {"lock": stale, "title": "Mine",
                                             "estimated_minutes": "15", "pass_mark": "80"})
    assert response.status_code == 409
    with app.app_context():
        version = db.session.scalar(select(ModuleVersion).join(Module).where(
            Module.slug == "safe-ordering"))
        assert version.estimated_minutes == 42
