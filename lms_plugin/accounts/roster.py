"""Staff roster import (issue 14): HR's list of staff, as CSV or Excel, all or nothing.

File shape: a header row, then one person a row. Columns (header names, any order, case and
spaces ignored): ``email``, ``employee_id`` (at least one of the two on every row),
``name``, ``facility``, ``department``, ``job_role``, ``hire_date`` (YYYY-MM-DD; an Excel
date cell is accepted), ``manager`` (the manager's email or employee id, in the file or
already known). Unknown columns are refused, so a misspelt header is not silently ignored.
CSV: UTF-8 with or without a byte-order mark, any line endings (RFC 4180 CRLF included).
Excel: the first worksheet of an ``.xlsx`` workbook, read with openpyxl's read-only mode
(https://openpyxl.readthedocs.io/en/stable/optimized.html).

People are matched by employee id, else by email (case-insensitive); others are created
(learner role). With ``leavers=True`` the file is the FULL roster: every active person of
the organisation not in it (except admins, so the file cannot lock the organisation out) is
marked a leaver (inactive, ``left_at``), never deleted; a leaver who is in a later roster
is active again.

Every bad row is reported (:class:`RosterProblem`: row number as the file shows it,
field, message); when any row is bad, nothing is written. Writes are bulk statements
(one INSERT … RETURNING for new people, one executemany UPDATE, one for managers, one
for leavers), never a statement per row. Flushes; the edge commits.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, select, update

from lms_plugin.accounts.models import RoleGrant, User
from lms_plugin.accounts.services import normalise_email, record_audit
from lms_plugin.errors import ValidationFailed
from lms_plugin.extensions import db

COLUMNS = ("email", "employee_id", "name", "facility", "department", "job_role",
           "hire_date", "manager")
PROFILE_FIELDS = ("name", "facility", "department", "job_role", "hire_date")
MAX_ROWS = 200_000
LIMITS = {"name": 200, "facility": 100, "department": 100, "job_role": 100,
          "employee_id": 64}


@dataclass(frozen=True)
class RosterProblem:
    """One bad row: ``row`` as a spreadsheet numbers it (the header is row 1)."""

    row: int
    field: str
    message: str

    def line(self) -> str:
        return f"row {self.row}, {self.field}: {self.message}"


@dataclass
class RosterResult:
    """What an import did (ids for the edge's incremental work) or why it wrote nothing."""

    problems: list[RosterProblem] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    unchanged: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        return (f"{len(self.created)} created, {len(self.updated)} updated, "
                f"{self.unchanged} unchanged, {len(self.left)} marked as leavers")


# --------------------------------------------------------------------------- reading
def read_rows(filename: str, data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, {column: value}) of a ``.csv`` or ``.xlsx`` file's data rows.

    Raises ValidationFailed (field ``file``) for an unknown extension, a file that is not
    UTF-8 / not a workbook, a missing or unknown header."""
    name = filename.lower()
    if name.endswith(".csv"):
        try:
            text = data.decode("utf-8-sig")  # a BOM from Excel's "CSV UTF-8" is dropped
        except UnicodeDecodeError as exc:
            raise ValidationFailed(f"{filename} is not UTF-8 text (byte {exc.start})",
                                   field="file") from None
        rows: Iterable[Sequence[Any]] = csv.reader(io.StringIO(text, newline=""))
    elif name.endswith(".xlsx"):
        rows = _xlsx_rows(filename, data)
    else:
        raise ValidationFailed("A roster is a .csv or .xlsx file", field="file")
    iterator = iter(rows)
    header = next(iterator, None)
    if header is None:
        raise ValidationFailed(f"{filename} is empty", field="file")
    columns = [str(h or "").strip().lower().replace(" ", "_") for h in header]
    unknown = [c for c in columns if c and c not in COLUMNS]
    if unknown:
        raise ValidationFailed(f"Unknown column(s) in row 1: {', '.join(unknown)} (known: "
                               f"{', '.join(COLUMNS)})", field="file")
    if "email" not in columns and "employee_id" not in columns:
        raise ValidationFailed("Row 1 needs an email or an employee_id column", field="file")
    for number, values in enumerate(iterator, start=2):
        if not any(v not in (None, "") and str(v).strip() for v in values):
            continue  # a blank line (a trailing newline, an empty spreadsheet row)
        yield number, {c: v for c, v in zip(columns, values, strict=False) if c}


def _xlsx_rows(filename: str, data: bytes) -> Iterator[Sequence[Any]]:
    from openpyxl import load_workbook  # imported only for .xlsx (start-up time)

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises several types for a non-workbook  # noqa: BLE001
        raise ValidationFailed(f"{filename} is not an Excel .xlsx workbook",
                               field="file") from None
    try:
        yield from workbook.worksheets[0].iter_rows(values_only=True)
    finally:
        workbook.close()


# --------------------------------------------------------------------------- validating
def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # an employee id typed into a number cell
    return str(value).strip()


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(_text(value))


@dataclass
class _Row:
    number: int
    email: str | None
    employee_id: str | None
    values: dict[str, Any]
    manager: str


def _validate(rows: Iterable[tuple[int, dict[str, Any]]], known_job_roles: set[str],
              problems: list[RosterProblem]) -> list[_Row]:
    out: list[_Row] = []
    emails: dict[str, int] = {}
    ids: dict[str, int] = {}
    for number, raw in rows:
        if len(out) >= MAX_ROWS:
            problems.append(RosterProblem(number, "file", f"more than {MAX_ROWS} rows"))
            break
        bad = len(problems)
        email = _text(raw.get("email")) or None
        if email:
            try:
                email = normalise_email(email)
            except ValidationFailed as exc:
                problems.append(RosterProblem(number, "email", exc.message))
            else:
                if email in emails:
                    problems.append(RosterProblem(
                        number, "email", f"{email} is also on row {emails[email]}"))
                emails.setdefault(email, number)
        employee_id = _text(raw.get("employee_id")) or None
        if employee_id:
            if employee_id in ids:
                problems.append(RosterProblem(
                    number, "employee_id", f"{employee_id} is also on row {ids[employee_id]}"))
            ids.setdefault(employee_id, number)
        if not email and not employee_id:
            problems.append(RosterProblem(number, "email", "give an email or an employee_id"))
        values: dict[str, Any] = {}
        for name in ("name", "facility", "department", "job_role"):
            if name in raw:
                values[name] = _text(raw[name]) or None
        for name, limit in LIMITS.items():
            text = employee_id if name == "employee_id" else values.get(name)
            if text and len(text) > limit:
                problems.append(RosterProblem(number, name, f"longer than {limit} characters"))
        role = values.get("job_role")
        if role and role not in known_job_roles:
            problems.append(RosterProblem(
                number, "job_role", f"unknown job role {role!r} (use the spelling of the "
                f"modules' audience: {', '.join(sorted(known_job_roles)) or 'none yet'})"))
        if "hire_date" in raw:
            if _text(raw["hire_date"]):
                try:
                    values["hire_date"] = _date(raw["hire_date"])
                except ValueError:
                    problems.append(RosterProblem(
                        number, "hire_date", f"{_text(raw['hire_date'])!r} is not a date "
                        "(YYYY-MM-DD)"))
            else:
                values["hire_date"] = None
        if len(problems) == bad:
            out.append(_Row(number, email, employee_id, values,
                            _text(raw.get("manager"))))
    return out


# --------------------------------------------------------------------------- importing
def import_roster(organisation_id: int, filename: str, data: bytes, *,
                  known_job_roles: set[str], leavers: bool, actor: User | None,
                  now: datetime) -> RosterResult:
    """Import a roster file into the organisation (module docstring). ``known_job_roles``:
    the job-role spellings the content uses (the edge reads them from ``learning``).
    Returns the result; when ``result.problems`` is not empty nothing was written. Raises
    ValidationFailed for a file that cannot be read at all."""
    result = RosterResult()
    rows = _validate(read_rows(filename, data), known_job_roles, result.problems)
    people = db.session.execute(
        select(User.id, func.lower(User.email), User.employee_id, User.active,
               *(getattr(User, f) for f in PROFILE_FIELDS), User.manager_id, User.left_at)
        .where(User.organisation_id == organisation_id)).all()
    by_email = {p[1]: p for p in people if p[1]}
    by_id = {p[2]: p for p in people if p[2]}
    matched: dict[int, Any] = {}  # row number -> existing person (a Row) or None
    for row in rows:
        by_employee = by_id.get(row.employee_id) if row.employee_id else None
        by_mail = by_email.get(row.email) if row.email else None
        if by_employee and by_mail and by_employee[0] != by_mail[0]:
            result.problems.append(RosterProblem(
                row.number, "email", f"{row.email} belongs to another person than employee "
                f"id {row.employee_id}"))
            continue
        person = by_employee or by_mail
        if person is not None and row.employee_id and person[2] \
                and person[2] != row.employee_id:
            result.problems.append(RosterProblem(
                row.number, "employee_id", f"{row.email} has employee id {person[2]}, "
                f"not {row.employee_id}"))
            continue
        matched[row.number] = person
    known = {key for row in rows for key in (row.email, row.employee_id) if key}
    known.update(by_email, by_id)
    for row in rows:
        if row.manager:
            written, row.manager = row.manager, _manager_key(row.manager, known)
            if row.manager not in known:
                result.problems.append(RosterProblem(
                    row.number, "manager", f"{written} is neither in the file nor known"))
    if result.problems:
        result.problems.sort(key=lambda p: p.row)
        return result

    new_rows = [row for row in rows if matched.get(row.number) is None]
    if new_rows:
        values = [{"organisation_id": organisation_id, "email": row.email,
                   "employee_id": row.employee_id, "name": row.values.get("name") or "",
                   "active": True,
                   **{f: row.values.get(f) for f in PROFILE_FIELDS if f != "name"}}
                  for row in new_rows]
        ids = db.session.scalars(insert(User).returning(User.id, sort_by_parameter_order=True),
                                 values).all()
        result.created = list(ids)
        db.session.execute(insert(RoleGrant), [
            {"user_id": uid, "organisation_id": organisation_id, "role": "learner",
             "source": "local", "created_at": now} for uid in ids])
        for row, uid in zip(new_rows, ids, strict=True):
            matched[row.number] = (uid,)
    changes: list[dict[str, Any]] = []
    audited: list[dict[str, Any]] = []
    for row in rows:
        person = matched[row.number]
        if len(person) == 1:
            continue
        change = {f: row.values[f] for f in PROFILE_FIELDS
                  if f in row.values and row.values[f] != getattr(person, f)}
        if row.email and row.email != person[1]:
            change["email"] = row.email
        if row.employee_id and row.employee_id != person[2]:
            change["employee_id"] = row.employee_id
        if not person.active:
            change.update(active=True, left_at=None)
        if change:
            changes.append({"id": person[0], **change})
            audited.append({"id": person[0], "before": {
                f: _plain(person[1] if f == "email" else person[2] if f == "employee_id"
                          else getattr(person, f)) for f in change},
                "after": {f: _plain(v) for f, v in change.items()}})
        else:
            result.unchanged += 1
    _bulk_update(changes)
    result.updated = [c["id"] for c in changes]

    key_to_id = {**{p[1]: p[0] for p in people if p[1]}, **{p[2]: p[0] for p in people if p[2]}}
    for row in rows:
        for key in (row.email, row.employee_id):
            if key:
                key_to_id[key] = matched[row.number][0]
    managers = [{"id": matched[row.number][0], "manager_id": key_to_id[row.manager]}
                for row in rows if row.manager]
    _bulk_update(managers)

    if leavers:
        kept = {matched[row.number][0] for row in rows}
        admins = set(db.session.scalars(select(RoleGrant.user_id).where(
            RoleGrant.organisation_id == organisation_id, RoleGrant.role == "admin")))
        result.left = [p[0] for p in people
                       if p.active and p[0] not in kept and p[0] not in admins]
        _bulk_update([{"id": uid, "active": False, "left_at": now} for uid in result.left])
    db.session.flush()
    record_audit("staff.import", actor=actor, organisation_id=organisation_id,
                 target=("roster", filename[:100]),
                 details={"before": None,
                          "after": {"file": filename, "rows": len(rows),
                                    "created": len(result.created),
                                    "updated": len(result.updated),
                                    "left": len(result.left), "leavers": leavers},
                          "changes": audited[:200]})
    return result


def _manager_key(text: str, known: set[str]) -> str:
    """A manager reference as matched: an employee id as written, else an email lower-cased."""
    return text if text in known else text.lower()


def _plain(value: Any) -> Any:
    """A JSON value for the audit log (dates as ISO text)."""
    return value.isoformat() if isinstance(value, (date, datetime)) else value


def _bulk_update(rows: list[dict[str, Any]]) -> None:
    """One executemany UPDATE per set of columns (SQLAlchemy's bulk UPDATE by primary key)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    for group in groups.values():
        db.session.execute(update(User), group,
                           execution_options={"synchronize_session": False})
