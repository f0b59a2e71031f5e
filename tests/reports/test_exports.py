"""Streamed exports: CSV safety and chunking, XLSX sheets, and the background path (a job
writes the file with progress; the page links the download; audited; scoped)."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from lms_plugin.accounts.models import AuditEvent, User
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.jobs.runner import run_due_jobs
from lms_plugin.reports import exports, matrix
from lms_plugin.reports.models import ReportExport
from tests.reports.helpers import build_fixture, sample_export


def test_csv_neutralises_formulas_and_streams_in_chunks():
    rows = [("=HYPERLINK(\"x\")", 1), ("+1", -2.5), ("plain", None)]
    chunks = list(exports.csv_chunks(["a", "b"], iter(rows), rows_per_chunk=2))
    assert len(chunks) == 2
    text = b"".join(chunks).decode("utf-8")
    assert text.startswith("\ufeff")
    assert list(csv.reader(io.StringIO(text.lstrip("\ufeff")))) == [
        ["a", "b"], ["'=HYPERLINK(\"x\")", "1"], ["'+1", "-2.5"], ["plain", ""]]


def test_xlsx_continues_on_a_new_sheet_past_the_row_limit(monkeypatch, tmp_path):
    from openpyxl import load_workbook

    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 3)  # header + 2 rows per sheet
    path = tmp_path / "x.xlsx"
    written = exports.write_xlsx(path, "Matrix", ["n", "text"],
                                 ((i, f"=cmd{i}") for i in range(5)))
    assert written == 5
    book = load_workbook(path, read_only=True)
    assert book.sheetnames == ["Matrix", "Matrix 2", "Matrix 3"]
    values = [r for s in book.worksheets for r in s.iter_rows(values_only=True)]
    assert values[1] == (0, "=cmd0")  # a string, not a formula
    assert [v[0] for v in values if v[0] != "n"] == [0, 1, 2, 3, 4]


def test_large_export_runs_in_the_background(app, client, login_as, factory, monkeypatch):
    build_fixture(app, factory)
    officer = login_as("officer")
    monkeypatch.setattr(exports, "INLINE_LIMIT", 2)
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 1)
    response = client.get("/reports/competencies/export?format=csv&view=people")
    assert response.status_code == 302
    status_url = response.headers["Location"]
    page = client.get(status_url).get_data(as_text=True)
    assert "Waiting for a worker" in page and 'http-equiv="refresh"' in page
    with app.app_context():
        run_due_jobs("test-worker")
        export = db.session.scalars(select(ReportExport)).one()
        assert (export.status, export.rows_written, export.total_rows) == ("done", 4, 4)
        assert export.requested_by == officer
        assert export.filters == {"group": "department"}
    page = client.get(status_url).get_data(as_text=True)
    assert "Ready: 4 rows." in page
    download = client.get(f"{status_url}/download")
    assert download.status_code == 200
    rows = list(csv.reader(io.StringIO(download.data.decode("utf-8-sig"))))
    assert [r[0] for r in rows] == ["Name", "p1", "p2", "p3", "p5"]
    # The file equals what the inline export of the same table gives.
    with app.app_context():
        table = matrix.people_table(db.session.get(User, officer).organisation_id,
                                    {"group": "department"}, utcnow())
        assert b"".join(exports.chunks(table, "csv")) == download.data
        actions = [e.action for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("report.%"))
            .order_by(AuditEvent.id))]
    assert actions == ["report.export", "report.download"]


def test_unfinished_and_foreign_exports(app, client, login_as):
    foreign = sample_export(app, org="Other Health")
    login_as("officer")
    assert client.get(f"/reports/exports/{foreign}").status_code == 404
    assert client.get(f"/reports/exports/{foreign}/download").status_code == 404
    mine = sample_export(app)
    with app.app_context():
        db.session.get(ReportExport, mine).status = "running"
        db.session.commit()
    assert client.get(f"/reports/exports/{mine}/download").status_code == 409


def test_a_failing_background_export_says_so(app, client, login_as, factory, monkeypatch):
    build_fixture(app, factory)
    login_as("officer")
    monkeypatch.setattr(exports, "INLINE_LIMIT", 2)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    response = client.get("/reports/competencies/export?format=xlsx&view=people")
    assert response.status_code == 302
    monkeypatch.setattr(exports, "write_xlsx", broken)
    with app.app_context():
        run_due_jobs("test-worker")
        export = db.session.scalars(select(ReportExport)).one()
        assert (export.status, export.error) == ("failed", "RuntimeError: disk full")
        assert not exports.export_path(export).exists()
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The export failed: RuntimeError: disk full" in page
    assert 'http-equiv="refresh"' not in page
