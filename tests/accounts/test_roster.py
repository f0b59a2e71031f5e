"""Staff roster import (issue 14): ``lms-plugin staff import`` — all or nothing, every bad
row named, BOM and CRLF accepted, Excel too, people matched by email or employee id,
leavers marked inactive and never deleted, rules evaluated after the import."""

from __future__ import annotations

import io
from datetime import date

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent, RoleGrant, User
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.learning import assignments
from lms_plugin.learning.assignments import RuleSpec
from lms_plugin.learning.models import Assignment
from tests.learning.builders import build_module

HEADER = "employee_id,email,name,facility,department,job_role,hire_date,manager"


@pytest.fixture
def org(app):
    return build_module(app)["organisation_id"]  # audience ["nurse"]: the known job role


def write(tmp_path, text: str, name: str = "roster.csv", *, bom=False, crlf=False) -> str:
    if crlf:
        text = text.replace("\n", "\r\n")
    data = text.encode("utf-8")
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return str(path)


def run(app, *args):
    return app.test_cli_runner().invoke(args=["staff", "import", *args])


def people(app) -> dict[str, User]:
    with app.app_context():
        rows = db.session.scalars(select(User)).all()
        db.session.expunge_all()
        return {u.employee_id or u.email: u for u in rows}


def test_import_creates_people_with_bom_and_crlf(app, org, tmp_path):
    path = write(tmp_path, f"{HEADER}\nE1,ann@example.org,Ann Lee,Main,Emergency,nurse,"
                 "2026-01-05,E2\nE2,Bob@Example.org,Bob Ray,Main,Emergency,,2019-03-01,\n\n",
                 bom=True, crlf=True)
    result = run(app, path)
    assert result.exit_code == 0, result.output
    assert "2 created, 0 updated, 0 unchanged, 0 marked as leavers" in result.output
    found = people(app)
    ann, bob = found["E1"], found["E2"]
    assert (ann.email, ann.name, ann.department, ann.job_role, ann.hire_date) == (
        "ann@example.org", "Ann Lee", "Emergency", "nurse", date(2026, 1, 5))
    assert ann.manager_id == bob.id and bob.email == "bob@example.org"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RoleGrant)) == 2
        assert db.session.scalar(select(AuditEvent.details).where(
            AuditEvent.action == "staff.import"))["after"]["created"] == 2


def test_every_bad_row_is_listed_and_nothing_written(app, org, tmp_path):
    path = write(tmp_path, f"{HEADER}\n"
                 "E1,not-an-email,Ann,Main,ED,nurse,2026-01-05,\n"        # row 2
                 "E2,b@example.org,Bob,Main,ED,Nurse RN,2026-01-05,\n"    # row 3
                 "E2,c@example.org,Cy,Main,ED,nurse,2026-01-05,\n"        # row 4
                 "E4,d@example.org,Di,Main,ED,nurse,05/01/2026,\n"        # row 5
                 "E5,e@example.org,Ed,Main,ED,nurse,,E99\n"               # row 6
                 ",,Nobody,Main,ED,nurse,,\n"                             # row 7
                 "E7,g@example.org,Gil,Main,ED,nurse,2026-01-05,\n")      # fine
    result = run(app, path)
    assert result.exit_code != 0
    for line in ["row 2, email: 'not-an-email' is not a valid email address",
                 "row 3, job_role: unknown job role 'Nurse RN'",
                 "row 4, employee_id: E2 is also on row 3",
                 "row 5, hire_date: '05/01/2026' is not a date",
                 "row 6, manager: E99 is neither in the file nor known",
                 "row 7, email: give an email or an employee_id",
                 "6 bad row(s); nothing was imported"]:
        assert line in result.output, result.output
    assert people(app) == {}
    with app.app_context():
        assert db.session.scalar(select(AuditEvent.id)) is None


def test_unknown_column_and_unreadable_files(app, org, tmp_path):
    result = run(app, write(tmp_path, "email,grade\na@example.org,5\n"))
    assert result.exit_code != 0 and "Unknown column(s) in row 1: grade" in result.output
    result = run(app, write(tmp_path, "email\n", name="roster.txt"))
    assert result.exit_code != 0 and ".csv or .xlsx" in result.output
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("email,name\nz@example.org,Zo\xe9\n".encode("latin-1"))
    result = run(app, str(bad))
    assert result.exit_code != 0 and "not UTF-8" in result.output
    fake = tmp_path / "fake.xlsx"
    fake.write_bytes(b"not a zip")
    result = run(app, str(fake))
    assert result.exit_code != 0 and "not an Excel .xlsx workbook" in result.output


def test_xlsx_roster(app, org, tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.append(["Employee ID", "Email", "Name", "Department", "Job role", "Hire date"])
    sheet.append([1001, "xl@example.org", "Excel Person", "ICU", "nurse", date(2025, 6, 1)])
    buffer = io.BytesIO()
    book.save(buffer)
    path = tmp_path / "roster.xlsx"
    path.write_bytes(buffer.getvalue())
    result = run(app, str(path))
    assert result.exit_code == 0, result.output
    person = people(app)["1001"]
    assert (person.email, person.department, person.hire_date) == (
        "xl@example.org", "ICU", date(2025, 6, 1))


def test_match_update_leavers_and_rejoiners(app, org, factory, tmp_path):
    admin = factory.user("admin")
    first = write(tmp_path, f"{HEADER}\nE1,ann@example.org,Ann,Main,ED,nurse,,\n"
                  "E2,bob@example.org,Bob,Main,ED,nurse,,\n", name="one.csv")
    assert run(app, first).exit_code == 0
    with app.app_context():
        assignments.add_rule(org, RuleSpec("cpoe-basics", due_days=30, departments=["ED"]),
                             actor=None, now=utcnow())
        db.session.commit()
    # Ann is matched by email (her id is unchanged), moves department; Bob is missing
    second = write(tmp_path, f"{HEADER}\nE1,ANN@example.org,Ann Lee,Main,ICU,nurse,,\n",
                   name="two.csv")
    result = run(app, second, "--leavers")
    assert result.exit_code == 0, result.output
    assert "0 created, 1 updated, 0 unchanged, 1 marked as leavers" in result.output
    found = people(app)
    assert (found["E1"].name, found["E1"].department) == ("Ann Lee", "ICU")
    assert (found["E2"].active, found["E2"].left_at is not None) == (False, True)
    assert found[factory.email_of(admin)].active  # admins are never marked as leavers
    with app.app_context():  # the import re-evaluated: both ED assignments are closed
        reasons = dict(db.session.execute(select(Assignment.user_id,
                                                 Assignment.closed_reason)).all())
        assert reasons == {found["E1"].id: "audience", found["E2"].id: "left"}
    # Bob comes back: active again; the same file twice changes nothing
    third = write(tmp_path, f"{HEADER}\nE1,ann@example.org,Ann Lee,Main,ICU,nurse,,\n"
                  "E2,bob@example.org,Bob,Main,ED,nurse,,\n", name="three.csv")
    assert "1 updated, 1 unchanged" in run(app, third).output
    assert people(app)["E2"].active
    assert "0 updated, 2 unchanged" in run(app, third).output


def test_email_and_employee_id_of_different_people_is_refused(app, org, tmp_path):
    run(app, write(tmp_path, f"{HEADER}\nE1,ann@example.org,Ann,,,,,\n"
                   "E2,bob@example.org,Bob,,,,,\n", name="one.csv"))
    result = run(app, write(tmp_path, f"{HEADER}\nE1,bob@example.org,Ann,,,,,\n",
                            name="two.csv"))
    assert result.exit_code != 0
    assert "row 2, email: bob@example.org belongs to another person than employee id E1" \
        in result.output
