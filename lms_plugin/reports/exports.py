"""One way to export any report table as CSV or XLSX, streamed so memory does not grow with
the number of rows (issue 16, "Exports").

A report is a :class:`Table`: headers plus ONE ordered SQL statement whose rows, passed
through ``Table.format``, are the table's rows. The page shows the first rows of that same
table and the export writes all of them, so "the export equals the page's table" holds by
construction.

* Rows are read with ``yield_per`` (a server-side cursor on PostgreSQL: psycopg's named
  cursor via SQLAlchemy's ``stream_results``), :data:`BATCH` at a time.
* CSV is produced chunk by chunk (``csv.writer`` over a small buffer); cells that a
  spreadsheet would run as a formula (starting ``=``, ``+``, ``-``, ``@``, tab, CR) get a
  leading apostrophe (OWASP "CSV Injection").
* XLSX uses XlsxWriter's ``constant_memory`` mode (each row is flushed to a temporary file
  as soon as the next row starts; https://xlsxwriter.readthedocs.io/working_with_memory.html),
  strings written with ``write_string`` (never interpreted as formulas); a sheet holds at
  most 1,048,576 rows (Excel's limit), so longer exports continue on a new sheet.
* Over :data:`INLINE_LIMIT` rows the export runs as a ``reports.export`` job that writes a
  file under ``<instance>/exports/`` and reports progress; the page offers the download.

Every export (inline or queued) is audited with its report name, format and filters.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import Select, func, select

from lms_plugin.accounts.models import User
from lms_plugin.accounts.services import record_audit
from lms_plugin.db import utcnow
from lms_plugin.errors import NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.reports.models import ReportExport

FORMATS = ("csv", "xlsx")
MIMETYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
#: Exports with more rows than this run in the background (issue 16: "over 100,000 rows").
INLINE_LIMIT = 100_000
#: Rows fetched per round trip from the server-side cursor.
BATCH = 5_000
#: Excel's sheet size (rows, header included).
XLSX_MAX_ROWS = 1_048_576
#: How often (rows) a background export records its progress.
PROGRESS_EVERY = 10_000
_FORMULA_CHARS = frozenset("=+-@\t\r")


@dataclass(frozen=True)
class Table:
    """A report's table: ``headers`` and an ordered ``query`` whose rows ``format`` turns into
    the displayed/exported cells (plain values: str, int, float, bool, datetime, None)."""

    report: str
    title: str
    headers: Sequence[str]
    query: Select[Any] | None = None
    format: Callable[[Sequence[Any]], Sequence[Any]] = tuple
    filters: dict[str, str] = field(default_factory=dict)
    #: Rows already computed (a short table, e.g. one row per question) instead of a query.
    rows: Sequence[Sequence[Any]] | None = None


def iter_rows(table: Table, *, limit: int | None = None) -> Iterator[Sequence[Any]]:
    """The table's formatted rows, read :data:`BATCH` at a time from a server-side cursor."""
    if table.rows is not None:
        yield from (table.rows if limit is None else table.rows[:limit])
        return
    query = table.query if limit is None else table.query.limit(limit)
    # Core execution on the session's connection: plain rows, no ORM row processing.
    result = db.session.connection().execute(query.execution_options(yield_per=BATCH))
    fmt = table.format
    for row in result:
        yield fmt(row)


def count_rows(table: Table, cap: int | None = None) -> int:
    """How many rows the table has, counting at most ``cap + 1`` (so "more than the cap" is
    answered without counting a huge table)."""
    if table.rows is not None:
        return len(table.rows)
    query = table.query.order_by(None)
    if cap is not None:
        query = query.limit(cap + 1)
    return db.session.scalar(select(func.count()).select_from(query.subquery())) or 0


def cell_text(value: Any) -> str:
    """A cell as text: UTC times as ``YYYY-MM-DD HH:MM``, None as empty, floats as given."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _csv_row(row: Sequence[Any]) -> list[Any]:
    """A row's cells for ``csv.writer``: the rules of :func:`cell_text` (numbers left to the
    writer), with a formula-looking string neutralised. Dispatches on the exact type: the
    inner loop of every export."""
    out: list[Any] = []
    append = out.append
    for value in row:
        kind = type(value)
        if kind is str:
            append("'" + value if value[:1] in _FORMULA_CHARS and value else value)
        elif kind is int or kind is float:
            append(value)
        elif value is None:
            append("")
        elif kind is datetime:
            append(value.isoformat(" ", "minutes")[:16])
        else:
            append(cell_text(value))
    return out


def csv_chunks(headers: Sequence[str], rows: Iterable[Sequence[Any]], *,
               rows_per_chunk: int = 2_000) -> Iterator[bytes]:
    """UTF-8 CSV (with a byte-order mark, so Excel reads the accents) as byte chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(headers)
    pending = 0
    for row in rows:
        writer.writerow(_csv_row(row))
        pending += 1
        if pending >= rows_per_chunk:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue().encode("utf-8")


def write_xlsx(path: str | os.PathLike[str], title: str, headers: Sequence[str],
               rows: Iterable[Sequence[Any]],
               progress: Callable[[int], None] | None = None) -> int:
    """Write the rows to an XLSX file in constant memory; the number of data rows written."""
    import xlsxwriter

    workbook = xlsxwriter.Workbook(str(path), {
        "constant_memory": True, "tmpdir": tempfile.gettempdir(),
        "strings_to_formulas": False, "strings_to_urls": False})
    try:
        bold = workbook.add_format({"bold": True})
        stamp = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"})
        base = "".join(c for c in title if c not in '[]:*?/\\')[:25] or "Report"
        sheet = None
        sheet_number = 0
        r = XLSX_MAX_ROWS
        written = 0
        for row in rows:
            if r >= XLSX_MAX_ROWS:
                sheet_number += 1
                sheet = workbook.add_worksheet(
                    base if sheet_number == 1 else f"{base} {sheet_number}")
                sheet.write_row(0, 0, list(headers), bold)
                r = 1
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, bool):
                    sheet.write_boolean(r, c, value)
                elif isinstance(value, int | float):
                    sheet.write_number(r, c, value)
                elif isinstance(value, datetime):
                    sheet.write_datetime(r, c, value.replace(tzinfo=None), stamp)
                else:
                    sheet.write_string(r, c, cell_text(value))
            r += 1
            written += 1
            if progress is not None and written % PROGRESS_EVERY == 0:
                progress(written)
        if sheet is None:  # no rows: still a sheet with the headers
            workbook.add_worksheet(base).write_row(0, 0, list(headers), bold)
    finally:
        workbook.close()
    return written


def xlsx_chunks(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]], *,
                chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """The XLSX file as byte chunks: written to a temporary file (constant memory), then
    read back in ``chunk_size`` pieces and deleted."""
    handle, name = tempfile.mkstemp(suffix=".xlsx")
    os.close(handle)
    try:
        write_xlsx(name, title, headers, rows)
        with open(name, "rb") as stream:
            while chunk := stream.read(chunk_size):
                yield chunk
    finally:
        os.unlink(name)


def chunks(table: Table, fmt: str) -> Iterator[bytes]:
    """The whole table in ``fmt`` ("csv" or "xlsx") as byte chunks."""
    if fmt == "csv":
        return csv_chunks(table.headers, iter_rows(table))
    return xlsx_chunks(table.title, table.headers, iter_rows(table))


def check_format(fmt: str | None) -> str:
    if fmt not in FORMATS:
        raise ValidationFailed(f"Unknown export format {fmt!r}; use csv or xlsx.",
                               field="format")
    return fmt


def filename(table: Table, fmt: str, now: datetime) -> str:
    return f"{table.report}-{now:%Y%m%d-%H%M}.{fmt}"


def request_export(table: Table, fmt: str, *, actor: User, now: datetime | None = None,
                   inline_limit: int | None = None) -> ReportExport | None:
    """Audit an export of ``table`` by ``actor``; None when it is small enough to stream in
    the request, else the queued :class:`ReportExport` (a ``reports.export`` job writes it).

    Flushes, never commits (the view commits before it streams). Raises ValidationFailed
    for an unknown format.
    """
    from lms_plugin.jobs.outbox import enqueue

    check_format(fmt)
    now = now or utcnow()
    inline_limit = INLINE_LIMIT if inline_limit is None else inline_limit
    rows = count_rows(table, cap=inline_limit)
    queued = None
    if rows > inline_limit:
        queued = ReportExport(organisation_id=actor.organisation_id, requested_by=actor.id,
                              report=table.report, filters=dict(table.filters), format=fmt,
                              status="pending", created_at=now, rows_written=0)
        db.session.add(queued)
        db.session.flush()
        enqueue("reports.export", {"export_id": queued.id},
                organisation_id=actor.organisation_id, now=now)
    record_audit("report.export", actor=actor,
                 target=("report_export", queued.id) if queued else ("report", table.report),
                 details={"report": table.report, "format": fmt, "filters": table.filters,
                          "background": queued is not None})
    return queued


def export_dir() -> Path:
    """Where background exports are written: ``<instance>/exports`` (shared by web and worker
    processes on one host; several hosts need it on shared storage). The factory override
    ``REPORTS_EXPORT_DIR`` (tests: a temporary folder) replaces it."""
    path = Path(current_app.config.get("REPORTS_EXPORT_DIR")
                or Path(current_app.instance_path) / "exports")
    path.mkdir(parents=True, exist_ok=True)
    return path


def export_path(export: ReportExport) -> Path:
    return export_dir() / f"export-{export.id}.{export.format}"


def progress_path(export: ReportExport) -> Path:
    return export_dir() / f"export-{export.id}.progress"


def discard_files(export: ReportExport) -> None:
    """Remove a failed export's partial file and progress marker (if any)."""
    target = export_path(export)
    for path in (target.with_suffix(target.suffix + ".part"), progress_path(export)):
        path.unlink(missing_ok=True)


def get_export(export_id: int, organisation_id: int) -> ReportExport:
    """The organisation's export ``export_id``; NotFound for another organisation's."""
    export = db.session.get(ReportExport, export_id)
    if export is None or export.organisation_id != organisation_id:
        raise NotFound("There is no such export.")
    return export


def rows_done(export: ReportExport) -> int:
    """Rows written so far: the job's progress file while it runs (it writes no database row
    mid-run, so a reader never waits on its transaction), else the stored figure."""
    if export.status in ("pending", "running"):
        try:
            return int(progress_path(export).read_text() or 0)
        except (OSError, ValueError):
            return export.rows_written
    return export.rows_written


def run_export(export_id: int, build: Callable[[int, dict[str, str]], Table],
               now: datetime) -> ReportExport:
    """Write a queued export's file (the ``reports.export`` job); flushes, never commits.

    ``build(organisation_id, filters)`` rebuilds the table from the stored filters, so the
    file holds what the page showed at the time the job runs.
    """
    export = db.session.get(ReportExport, export_id)
    if export is None:
        raise NotFound(f"export #{export_id} no longer exists")
    table = build(export.organisation_id, dict(export.filters))
    export.total_rows = count_rows(table)
    export.status = "running"
    target = export_path(export)
    marker = progress_path(export)
    partial = target.with_suffix(target.suffix + ".part")

    def progress(done: int) -> None:
        marker.write_text(str(done))

    if export.format == "csv":
        written = 0
        with open(partial, "wb") as out:
            counted = _counting(iter_rows(table), progress)
            for chunk in csv_chunks(table.headers, counted):
                out.write(chunk)
            written = counted.count
    else:
        written = write_xlsx(partial, table.title, table.headers, iter_rows(table), progress)
    partial.replace(target)
    marker.unlink(missing_ok=True)
    export.rows_written = written
    export.status = "done"
    export.finished_at = now
    db.session.flush()
    return export


class _counting:
    """Iterate rows, counting them and reporting progress every PROGRESS_EVERY rows."""

    def __init__(self, rows: Iterable[Sequence[Any]], progress: Callable[[int], None]):
        self.rows = iter(rows)
        self.progress = progress
        self.count = 0

    def __iter__(self) -> _counting:
        return self

    def __next__(self) -> Sequence[Any]:
        row = next(self.rows)
        self.count += 1
        if self.count % PROGRESS_EVERY == 0:
            self.progress(self.count)
        return row
