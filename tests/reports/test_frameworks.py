"""Competency frameworks: Moodle CSV import/export (tool_lpimportcsv layout), evidence,
pages, CLI, the starter framework, and nothing written on bad input."""

from __future__ import annotations

import csv
import io

from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent
from lms_plugin.extensions import db
from lms_plugin.reports import frameworks
from lms_plugin.reports.models import Competency, CompetencyEvidence, CompetencyFramework
from tests.conftest import csrf_token
from tests.learning.builders import build_module
from tests.reports.helpers import EVIDENCE_CSV, FRAMEWORK_CSV, sample_framework


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_moodle_headers_are_moodles_fourteen_columns():
    # lang/en/tool_lpimportcsv.php strings, in list_required_headers() order.
    assert frameworks.MOODLE_HEADERS == (
        "Parent ID number", "ID number", "Short name", "Description", "Description format",
        "Scale values", "Scale configuration", "Rule type (optional)",
        "Rule outcome (optional)", "Rule config (optional)",
        "Cross-referenced competency ID numbers", "Exported ID (optional)", "Is framework",
        "Taxonomy")


def test_import_builds_the_tree_and_round_trips(app, factory):
    framework_id = sample_framework(app)
    with app.app_context():
        framework = db.session.get(CompetencyFramework, framework_id)
        assert (framework.idnumber, framework.shortname) == ("FW1", "Test framework")
        assert framework.scale_values == "Not yet,Competent"
        by_id = {c.idnumber: c for c in framework.competencies}
        assert set(by_id) == {"C1", "C2", "C3"}
        assert by_id["C2"].parent_id == by_id["C1"].id
        assert by_id["C1"].related_idnumbers == "C2"
        assert by_id["C2"].description == "Second, with a comma"
        exported = frameworks.export_framework_csv(framework)
    rows = list(csv.reader(io.StringIO(exported)))
    assert tuple(rows[0]) == frameworks.MOODLE_HEADERS
    assert rows[1][1:3] == ["FW1", "Test framework"] and rows[1][12] == "1"
    assert [r[0] for r in rows[2:]] == ["", "C1", ""]  # parents by ID number
    # Re-importing the export (under a new ID number) gives the same competencies.
    rows[1][1] = "FW1-copy"
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    with app.app_context():
        copy = frameworks.import_framework(framework.organisation_id, out.getvalue(),
                                           actor=None).framework
        db.session.commit()
        assert [(c.idnumber, c.shortname, c.description) for c in copy.competencies] == [
            (c.idnumber, c.shortname, c.description)
            for c in db.session.get(CompetencyFramework, framework_id).competencies]


def test_bad_files_name_the_line_and_write_nothing(app, client, login_as):
    login_as("officer")
    build_module(app, slug="mod-a")
    bad = {
        "wrong header": ("a,b\n1,2\n", None, "line 1: the columns must be"),
        "unknown parent": (FRAMEWORK_CSV.replace("C1,C2,Orders", "ZZ,C2,Orders"), None,
                           "line 4: parent ID number 'ZZ'"),
        "duplicate": (FRAMEWORK_CSV.replace(",C3,", ",C1,"), None, "already used on line 3"),
        "no framework row": (FRAMEWORK_CSV.replace(",competency\n", ",competency\n")
                             .replace("1,competency", ",competency"), None,
                             "no row is marked 'Is framework'"),
        "unknown module": (FRAMEWORK_CSV, EVIDENCE_CSV, "line 4: there is no module 'mod-b'"),
    }
    for name, (text, evidence, message) in bad.items():
        data = {"csrf_token": csrf_token(client, "/reports/frameworks/import"),
                "framework_file": (io.BytesIO(text.encode()), "fw.csv")}
        if evidence:
            data["evidence_file"] = (io.BytesIO(evidence.encode()), "evidence.csv")
        response = client.post("/reports/frameworks/import", data=data,
                               content_type="multipart/form-data")
        assert response.status_code == 422, name
        page = response.get_data(as_text=True)
        assert message in page.replace("&#39;", "'"), (name, page[-1500:])
        assert 'aria-invalid="true"' in page
    assert _count(app, CompetencyFramework) == 0
    assert _count(app, Competency) == 0


def test_import_page_creates_framework_with_evidence_and_audits(app, client, login_as):
    login_as("officer")
    build_module(app, slug="mod-a")
    build_module(app, slug="mod-b")
    response = client.post("/reports/frameworks/import", data={
        "csrf_token": csrf_token(client, "/reports/frameworks/import"),
        "framework_file": (io.BytesIO(FRAMEWORK_CSV.encode()), "fw.csv"),
        "evidence_file": (io.BytesIO(EVIDENCE_CSV.encode()), "ev.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Orders and scanning" in page and "none: nobody holds it" in page
    assert _count(app, CompetencyEvidence) == 3
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "competency_framework.import")).one()
        assert event.details["after"]["competencies"] == 3
        assert event.details["after"]["evidence"] == 3
    exported = client.get(response.headers["Location"] + "/export?part=evidence")
    assert exported.status_code == 200
    assert exported.get_data(as_text=True).splitlines() == EVIDENCE_CSV.strip().splitlines()


def test_other_organisations_framework_is_404(app, client, login_as):
    framework_id = sample_framework(app, org="Other Health")
    login_as("officer")
    assert client.get(f"/reports/frameworks/{framework_id}").status_code == 404
    assert client.get(f"/reports/frameworks/{framework_id}/export").status_code == 404


def test_starter_framework_fits_the_shipped_content(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["org", "create", "General Hospital"]).exit_code == 0
    from pathlib import Path

    import lms_plugin

    content = Path(lms_plugin.__file__).parent / "content"
    # As setup imports it: drafts awaiting the hospital's sign-off (issue 17).
    result = runner.invoke(args=["content", "import", "--drafts", str(content)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["reports", "framework-import", "--starter"])
    assert result.exit_code == 0, result.output
    assert "9 competencies, 15 evidence links" in result.output
    with app.app_context():
        names = set(db.session.scalars(select(Competency.shortname)))
    for wanted in ("Safe order entry", "Medication administration safety", "Downtime readiness",
                   "Privacy and security", "Clinical decision support",
                   "Patient identification", "Secure communication"):
        assert wanted in names
    again = runner.invoke(args=["reports", "framework-import", "--starter"])
    assert again.exit_code != 0 and "already exists" in again.output
    exported = runner.invoke(args=["reports", "framework-export", "CIS-STARTER"])
    assert exported.exit_code == 0
    assert exported.output.splitlines()[0] == ",".join(frameworks.MOODLE_HEADERS)


def test_cli_delete_removes_the_tree_and_audits(app):
    framework_id = sample_framework(app)
    runner = app.test_cli_runner()
    missing = runner.invoke(args=["reports", "framework-delete", "NOPE"])
    assert missing.exit_code != 0 and "no framework 'NOPE'" in missing.output
    result = runner.invoke(args=["reports", "framework-delete", "FW1"])
    assert result.exit_code == 0, result.output
    assert _count(app, CompetencyFramework) == 0 and _count(app, Competency) == 0
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "competency_framework.delete")).one()
        assert event.target_id == str(framework_id)
        assert event.details["before"]["idnumber"] == "FW1"
