"""The competency matrix: every figure against the hand-computed values of
tests/reports/helpers.py, filters, drill-down, isolation, audit, and export == page table."""

from __future__ import annotations

import csv
import io
import re

from openpyxl import load_workbook
from sqlalchemy import select

from lms_plugin.accounts.models import AuditEvent
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.reports import exports, matrix
from tests.reports.helpers import build_fixture


def _table(app, org_id, args, view="groups"):
    with app.app_context():
        builder = matrix.people_table if view == "people" else matrix.matrix_table
        table = builder(org_id, matrix.clean_filters(args), utcnow())
        return table.headers, [tuple(r) for r in exports.iter_rows(table)]


def test_department_matrix_figures(app, factory):
    fx = build_fixture(app, factory)
    org = fx["a"]["organisation_id"]
    headers, rows = _table(app, org, {})
    assert headers == ["Department", "People", "Order entry (C1) %",
                       "Orders and scanning (C2) %", "Unevidenced (C3) %"]
    assert rows == [("ED", 2, 100.0, 0.0, 0.0), ("ICU", 2, 50.0, 50.0, 0.0)]


def test_filters_and_grouping(app, factory):
    fx = build_fixture(app, factory)
    org = fx["a"]["organisation_id"]
    assert _table(app, org, {"department": "ICU"})[1] == [("ICU", 2, 50.0, 50.0, 0.0)]
    assert _table(app, org, {"group": "facility"})[1] == [("Main", 4, 75.0, 25.0, 0.0)]
    assert _table(app, org, {"job_role": "physician"})[1] == []
    # Clinical system: only competencies evidenced by a module of that system.
    headers, rows = _table(app, org, {"system": "ehr-mod-b"})
    assert headers[2:] == ["Orders and scanning (C2) %"]
    assert rows == [("ED", 2, 0.0), ("ICU", 2, 50.0)]


def test_people_drill_down(app, factory):
    fx = build_fixture(app, factory)
    org = fx["a"]["organisation_id"]
    headers, rows = _table(app, org, {"department": "ED"}, view="people")
    assert headers[:5] == ["Name", "Email", "Facility", "Department", "Job role"]
    assert [(r[0], r[5:]) for r in rows] == [("p3", ("yes", "no", "no")),
                                            ("p5", ("yes", "no", "no"))]


def test_page_is_scoped_audited_and_equals_exports(app, client, login_as, factory):
    build_fixture(app, factory)
    login_as("officer")
    page = client.get("/reports/competencies?department=&group=department")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    cells = re.findall(r"<t[hd][^>]*>(?:<a [^>]*>)?([^<]*)", html.split("<tbody>")[1])
    assert cells[:10] == ["ED", "2", "100.0%", "0.0%", "0.0%", "ICU", "2", "50.0%", "50.0%",
                          "0.0%"]
    assert "p6" not in html and 'src="data:image/svg+xml;base64,' in html
    assert "4 people in 2 groups" in html  # the chart's text summary
    csv_response = client.get("/reports/competencies/export?format=csv")
    assert csv_response.status_code == 200
    rows = list(csv.reader(io.StringIO(csv_response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows == [["Department", "People", "Order entry (C1) %",
                     "Orders and scanning (C2) %", "Unevidenced (C3) %"],
                    ["ED", "2", "100.0", "0.0", "0.0"], ["ICU", "2", "50.0", "50.0", "0.0"]]
    xlsx = client.get("/reports/competencies/export?format=xlsx&view=people")
    assert xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(xlsx.data), read_only=True).active
    values = [tuple(c for c in row) for row in sheet.iter_rows(values_only=True)]
    assert [v[0] for v in values] == ["Name", "p1", "p2", "p3", "p5"]
    assert values[1][5:] == ("yes", "yes", "no")
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action.in_(["report.view", "report.export"]))
            .order_by(AuditEvent.id)).all()
        assert [(e.action, e.details.get("format")) for e in events] == [
            ("report.view", None), ("report.export", "csv"), ("report.export", "xlsx")]
        assert events[2].details["filters"] == {"group": "department"}


def test_bad_filters_are_422_not_500(app, client, login_as):
    login_as("officer")
    assert client.get("/reports/competencies?group=shoe_size").status_code == 422
    assert client.get("/reports/competencies?framework=abc").status_code == 422
    assert client.get("/reports/competencies/export?format=pdf").status_code == 422
    assert client.get("/reports/competencies?view=x").status_code == 400


def test_learner_and_author_cannot_see_reports(client, login_as):
    login_as("learner", "author")
    assert client.get("/reports/competencies").status_code == 403


def test_completion_records_page_and_export(app, client, login_as, factory):
    build_fixture(app, factory)
    login_as("officer")
    page = client.get("/reports/completions?department=ICU")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "p6" not in html and "p3" not in html
    response = client.get("/reports/completions/export?format=csv&department=ICU")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0][-5:] == ["Version", "Score %", "Completed (UTC)", "Expires (UTC)",
                            "Valid now"]
    # Recorded in this order: p1 mod-a v1, p1 mod-b v2 (both valid), p2 mod-a (expired 35
    # days ago); newest recorded first.
    assert [(r[0], r[5], r[6], r[-1]) for r in rows[1:]] == [
        ("p2", "mod-a", "1", "no"), ("p1", "mod-b", "2", "yes"), ("p1", "mod-a", "1", "yes")]
    assert rows[2][-2] == ""  # p1's mod-b v2 completion never expires
    for row in rows[1:]:
        assert row[0] in html
