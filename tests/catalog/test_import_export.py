"""``lms-plugin content validate|import|export``: one transaction, versioning, round trip."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent, Organisation
from lms_plugin.catalog import services
from lms_plugin.catalog.content_format import load_content
from lms_plugin.catalog.models import (
    ClinicalSystem,
    ContentAsset,
    Lesson,
    Module,
    ModuleVersion,
    Question,
)
from lms_plugin.extensions import db
from tests.catalog.helpers import VALID, copy_valid


@pytest.fixture(autouse=True)
def _first_organisation(factory) -> None:
    """What the first-run setup leaves: one organisation (commands never create one)."""
    factory.organisation("Default Health System")


TABLES = (Organisation, ClinicalSystem, Module, ModuleVersion, Lesson, Question, ContentAsset,
          AuditEvent)


def counts(app) -> dict[str, int]:
    with app.app_context():
        return {t.__tablename__: db.session.scalar(select(func.count()).select_from(t))
                for t in TABLES}


def snapshot(app) -> list[tuple]:
    """Every catalog row's content, to prove a failed import changed nothing at all."""
    with app.app_context():
        rows: list[tuple] = []
        for version in db.session.scalars(select(ModuleVersion).order_by(ModuleVersion.id)):
            rows.append((version.id, version.module.slug, version.number, version.status,
                         version.content_hash, version.title, version.published_at))
            rows += [(lesson.id, lesson.position, lesson.body_markdown)
                     for lesson in version.lessons]
            rows += [(q.id, q.key, q.prompt, q.data) for q in version.questions]
        rows += [(a.id, a.path, a.sha256, a.created_at)
                 for a in db.session.scalars(select(ContentAsset).order_by(ContentAsset.id))]
        return rows


def versions(app, slug: str, org: str = "Default Health System") -> list[tuple]:
    with app.app_context():
        org_id = db.session.scalar(select(Organisation.id).where(Organisation.name == org))
        module = services.get_module(org_id, slug)
        return [(v.number, v.status, v.title) for v in module.versions]


def run(app, *args: str):
    """Invoke ``lms-plugin content …``; ``output`` holds stdout and stderr (click 8.2+)."""
    return app.test_cli_runner().invoke(args=["content", *args])


def test_validate_prints_every_problem_and_writes_nothing(app, tmp_path):
    root = copy_valid(tmp_path)
    module_yaml = root / "modules" / "safe-ordering" / "module.yaml"
    module_yaml.write_text(module_yaml.read_text().replace("pass_mark: 80", "pass_mark: 180")
                           .replace("answer: a\n", "answer: q\n"))
    before = counts(app)
    result = run(app, "validate", str(root))
    assert result.exit_code == 1
    assert f"{root}/modules/safe-ordering/module.yaml:16: 'pass_mark' is 180" in result.output
    assert f"{root}/modules/safe-ordering/module.yaml:30: answer 'q' points to no option" \
        in result.output
    assert "2 problem(s) found" in result.output
    assert counts(app) == before


def test_validate_ok(app):
    result = run(app, "validate", str(VALID))
    assert result.exit_code == 0, result.output
    assert "OK: 2 systems, 2 modules, 3 lessons, 8 questions" in result.output


def test_import_creates_then_leaves_unchanged_modules_alone(app):
    first = run(app, "import", str(VALID))
    assert first.exit_code == 0, first.output
    assert "safe-ordering: created (version 1, published)" in first.output
    assert "2 modules: 2 created, 0 new version, 0 draft replaced, 0 unchanged" in first.output
    after_first = counts(app)
    assert after_first["module"] == 2
    assert after_first["module_version"] == 2
    assert after_first["lesson"] == 3
    assert after_first["question"] == 8
    assert after_first["content_asset"] == 1
    assert after_first["clinical_system"] == 2

    with app.app_context():
        org = db.session.scalar(select(Organisation).where(
            Organisation.name == "Default Health System"))
        module = services.get_module(org.id, "safe-ordering")
        version = services.current_version(module)
        assert version.number == 1 and version.published_at is not None
        assert version.pass_mark == 80 and version.draw_count == 3
        assert version.audience == ["nurse", "physician", "pharmacist"]
        numeric = next(q for q in version.questions if q.type == "numeric")
        assert numeric.key == "heparin-rate"
        assert numeric.data == {"answer": 10, "tolerance": 0.1, "tolerance_type": "absolute",
                                "units": "mL/hour", "points": 1}
        assert version.lessons[0].title == "The right patient, every time"
        assert version.lessons[0].body_markdown.startswith("# The right patient")
        draft_module = services.get_module(org.id, "bcma-scanning")
        assert services.current_version(draft_module) is None  # only a draft
        audit = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "content.import")).all()
        assert len(audit) == 1 and "2 created" in audit[0].details["summary"]

    second = run(app, "import", str(VALID))
    assert second.exit_code == 0, second.output
    assert "0 created, 0 new version, 0 draft replaced, 2 unchanged" in second.output
    after_second = counts(app)
    assert after_second["audit_event"] == after_first["audit_event"] + 1
    after_second["audit_event"] = after_first["audit_event"]
    assert after_second == after_first


def test_a_changed_published_module_gets_a_new_version_and_v1_is_untouched(app, tmp_path):
    root = copy_valid(tmp_path)
    assert run(app, "import", str(root)).exit_code == 0
    v1_rows = snapshot(app)
    lesson = root / "modules" / "safe-ordering" / "lessons" / "02-dose-route-frequency.md"
    lesson.write_text(lesson.read_text().replace(
        "\n## Sources", "\nAlways check the units.\n\n## Sources"))
    result = run(app, "import", str(root))
    assert result.exit_code == 0, result.output
    assert "safe-ordering: new version (version 2, published)" in result.output
    assert versions(app, "safe-ordering") == [
        (1, "published", "Order entry: safe ordering (test fixture)"),
        (2, "published", "Order entry: safe ordering (test fixture)")]
    # every row of version 1 is exactly as it was
    after = snapshot(app)
    for row in v1_rows:
        if len(row) == 4 and isinstance(row[1], str) and row[1].startswith("images/"):
            continue  # the reused image is marked newest (created_at), its bytes are the same
        assert row in after
    with app.app_context():
        org_id = db.session.scalar(select(Organisation.id))
        current = services.current_version(services.get_module(org_id, "safe-ordering"))
        assert current.number == 2
        assert "Always check the units." in current.lessons[1].body_markdown


def test_draft_is_replaced_in_place_then_published(app, tmp_path):
    root = copy_valid(tmp_path)
    assert run(app, "import", str(root)).exit_code == 0
    module_yaml = root / "modules" / "safe-ordering" / "module.yaml"
    text = module_yaml.read_text()
    module_yaml.write_text(text.replace("status: published", "status: draft")
                           .replace("First release.", "Draft one."))
    assert "new version (version 2, draft)" in run(app, "import", str(root)).output
    module_yaml.write_text(text.replace("status: published", "status: draft")
                           .replace("First release.", "Draft two."))
    result = run(app, "import", str(root))
    assert "safe-ordering: draft replaced (version 2, draft)" in result.output
    assert [v[:2] for v in versions(app, "safe-ordering")] == [(1, "published"), (2, "draft")]
    with app.app_context():
        org_id = db.session.scalar(select(Organisation.id))
        module = services.get_module(org_id, "safe-ordering")
        assert services.current_version(module).number == 1  # learners still get v1
        assert services.latest_version(module).change_notes == "Draft two."
        assert db.session.scalar(select(func.count()).select_from(Question).join(
            ModuleVersion).where(ModuleVersion.module_id == module.id)) == 14  # 7 + 7
    module_yaml.write_text(text.replace("First release.", "Draft two."))  # now published
    result = run(app, "import", str(root))
    assert "safe-ordering: new version (version 2, published)" in result.output
    assert [v[:2] for v in versions(app, "safe-ordering")] == [(1, "published"),
                                                               (2, "published")]


def test_a_failure_midway_leaves_the_database_exactly_as_before(app, tmp_path, monkeypatch):
    root = copy_valid(tmp_path)
    assert run(app, "import", str(root)).exit_code == 0
    for slug in ("bcma-scanning", "safe-ordering"):  # change both modules and a system
        yaml_file = root / "modules" / slug / "module.yaml"
        yaml_file.write_text(yaml_file.read_text().replace("estimated_minutes: ",
                                                           "estimated_minutes: 1"))
    (root / "systems" / "ehr.yaml").write_text("slug: ehr\nname: Renamed EHR\n")
    assert app.test_cli_runner().invoke(args=["org", "create", "Brand New Org"]).exit_code == 0
    before_counts, before_rows = counts(app), snapshot(app)

    real = services.import_module
    calls = []

    def failing(*args, **kwargs):
        calls.append(args[1].slug)
        if args[1].slug == "safe-ordering":
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "import_module", failing)
    result = run(app, "import", str(root), "--organisation", "Brand New Org")
    assert result.exit_code != 0
    assert calls == ["bcma-scanning", "safe-ordering"]  # the first module was written…
    assert counts(app) == before_counts  # …and rolled back with everything else
    assert snapshot(app) == before_rows
    result = run(app, "import", str(root), "--organisation", "Default Health System")
    assert result.exit_code != 0
    assert counts(app) == before_counts
    assert snapshot(app) == before_rows
    with app.app_context():
        assert db.session.scalar(select(ClinicalSystem.name).where(
            ClinicalSystem.slug == "ehr")) == "Electronic health record"


def test_import_refuses_invalid_content_and_writes_nothing(app, tmp_path):
    root = copy_valid(tmp_path)
    (root / "modules" / "bcma-scanning" / "lessons" / "01-why-we-scan.md").write_text("")
    result = run(app, "import", str(root))
    assert result.exit_code == 1
    assert "modules/bcma-scanning/lessons/01-why-we-scan.md:1: lesson file is empty" \
        in result.output
    assert "nothing was imported" in result.output
    assert counts(app) == {**dict.fromkeys(counts(app), 0), "organisation": 1}  # setup's one


def test_import_into_a_named_organisation_is_isolated(app):
    assert app.test_cli_runner().invoke(args=["org", "create", "North Clinic"]).exit_code == 0
    assert run(app, "import", str(VALID), "--organisation", "North Clinic").exit_code == 0
    assert run(app, "import", str(VALID), "--organisation", "Default Health System"
               ).exit_code == 0
    with app.app_context():
        orgs = {o.name: o.id for o in db.session.scalars(select(Organisation))}
        assert len(services.list_modules(orgs["North Clinic"])) == 1
        assert len(services.list_modules(orgs["Default Health System"])) == 1
        north = services.get_module(orgs["North Clinic"], "safe-ordering")
        home = services.get_module(orgs["Default Health System"], "safe-ordering")
        assert north.id != home.id and north.system_id != home.system_id


def test_round_trip_import_export_import_makes_no_new_versions(app, tmp_path):
    assert run(app, "import", str(VALID)).exit_code == 0
    out = tmp_path / "exported"
    result = run(app, "export", str(out))
    assert result.exit_code == 0, result.output
    assert "Exported 2 systems and 2 modules" in result.output
    exported_image = out / "modules" / "safe-ordering" / "images" / "banner.svg"
    assert exported_image.read_bytes() == \
        (VALID / "modules" / "safe-ordering" / "images" / "banner.svg").read_bytes()
    assert (out / "modules" / "safe-ordering" / "lessons" / "01-right-patient.md").read_text() \
        == (VALID / "modules" / "safe-ordering" / "lessons" / "01-right-patient.md").read_text()
    assert run(app, "validate", str(out)).exit_code == 0
    before = counts(app)
    again = run(app, "import", str(out))
    assert again.exit_code == 0, again.output
    assert "0 created, 0 new version, 0 draft replaced, 2 unchanged" in again.output
    after = counts(app)
    assert after["module_version"] == before["module_version"]
    assert after["content_asset"] == before["content_asset"]
    # and exporting twice gives the same files
    out2 = tmp_path / "exported-again"
    assert run(app, "export", str(out2)).exit_code == 0
    for path in out.rglob("*"):
        if path.is_file():
            assert (out2 / path.relative_to(out)).read_bytes() == path.read_bytes(), path


def test_round_trip_with_a_changed_image(app, tmp_path):
    root = copy_valid(tmp_path)
    assert run(app, "import", str(root)).exit_code == 0
    image = root / "modules" / "safe-ordering" / "images" / "banner.svg"
    original = image.read_bytes()
    image.write_bytes(original.replace(b"#036", b"#063"))
    assert "new version (version 2" in run(app, "import", str(root)).output
    out = tmp_path / "out"
    assert run(app, "export", str(out)).exit_code == 0
    assert (out / "modules" / "safe-ordering" / "images" / "banner.svg").read_bytes() == \
        image.read_bytes()
    image.write_bytes(original)  # back to the first picture: a third version
    assert "new version (version 3" in run(app, "import", str(root)).output
    out3 = tmp_path / "out3"
    assert run(app, "export", str(out3)).exit_code == 0
    assert (out3 / "modules" / "safe-ordering" / "images" / "banner.svg").read_bytes() == \
        original
    assert "2 unchanged" in run(app, "import", str(out3)).output


def test_export_refuses_a_non_empty_directory_without_overwrite(app, tmp_path):
    assert run(app, "import", str(VALID)).exit_code == 0
    out = tmp_path / "busy"
    shutil.copytree(VALID, out)
    stale = out / "modules" / "safe-ordering" / "lessons" / "09-stale.md"
    stale.write_text("# Stale\n")
    refused = run(app, "export", str(out))
    assert refused.exit_code != 0 and "not empty" in refused.output
    assert run(app, "export", str(out), "--overwrite").exit_code == 0
    assert not stale.exists()
    assert run(app, "validate", str(out)).exit_code == 0


def test_large_imports_show_a_progress_bar(app, tmp_path):
    root = copy_valid(tmp_path)
    template = root / "modules" / "bcma-scanning"
    for n in range(25):
        target = root / "modules" / f"bulk-{n:02d}"
        shutil.copytree(template, target)
        text = (target / "module.yaml").read_text()
        (target / "module.yaml").write_text(text.replace("bcma-scanning", f"bulk-{n:02d}"))
    result = run(app, "import", str(root))
    assert result.exit_code == 0, result.output
    assert "Importing modules" in result.output
    assert "27 modules: 27 created" in result.output


def test_setup_imports_the_shipped_content_idempotently(app, monkeypatch, tmp_path):
    from lms_plugin.catalog import cli as catalog_cli
    from lms_plugin.cli import setup

    shipped = Path(tmp_path / "shipped")
    shutil.copytree(VALID, shipped)
    monkeypatch.setattr(catalog_cli, "SHIPPED_CONTENT", shipped)
    runner = app.test_cli_runner()
    first = runner.invoke(setup, args=[])
    assert first.exit_code == 0, first.output
    assert "Shipped content: 2 modules: 2 created" in first.output
    second = runner.invoke(setup, args=[])
    assert second.exit_code == 0, second.output
    assert "2 unchanged" in second.output
    assert counts(app)["module_version"] == 2


def test_shipped_content_validates_and_round_trips(app, tmp_path):
    """The repository's content/ (what ``make run`` serves) is valid and exports back
    to the same versions."""
    from lms_plugin.catalog.cli import SHIPPED_CONTENT

    result = run(app, "validate", str(SHIPPED_CONTENT))
    assert result.exit_code == 0, result.output
    bundle = load_content(SHIPPED_CONTENT)
    assert len(bundle.modules) >= 6 and len({m.system for m in bundle.modules}) >= 4
    # The shipped files hold [[local: …]] markers: publishing them is refused (issue 17)…
    refused = run(app, "import", str(SHIPPED_CONTENT))
    assert refused.exit_code == 1 and "unresolved localisation marker" in refused.output
    # …and they import as drafts awaiting the organisation's sign-off.
    assert run(app, "import", str(SHIPPED_CONTENT), "--drafts").exit_code == 0
    out = tmp_path / "shipped-export"
    assert run(app, "export", str(out)).exit_code == 0
    again = run(app, "import", str(out), "--drafts")
    assert f"0 created, 0 new version, 0 draft replaced, {len(bundle.modules)} unchanged" \
        in again.output
