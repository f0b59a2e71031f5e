"""Date arithmetic inside SQL, the same on SQLite and PostgreSQL, for set-based evaluation.

The assignment rules need "N days after", "N calendar months after" and "the earliest of"
on columns, so the whole organisation is evaluated in one statement (issue 14). Each
construct compiles per dialect:

* PostgreSQL: ``make_interval`` on the UTC wall time (``timestamptz AT TIME ZONE 'UTC'``),
  so a month added never depends on the session's time zone. PostgreSQL clamps month ends
  (31 Jan + 1 month = 28/29 Feb), like :func:`learning.services.add_months`
  (https://www.postgresql.org/docs/current/functions-datetime.html).
* SQLite: ``strftime`` with a ``+N months`` / ``+N days`` modifier, keeping the stored
  fractional seconds so values compare with the stored text. SQLite normalises an
  overflowing day instead of clamping (31 Jan + 1 month = 3 Mar;
  https://www.sqlite.org/lang_datefunc.html), a difference SQLite deployments (development
  only) accept.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from lms_plugin.db import UTCDateTime

#: Stands for "never" inside MIN/MAX over validity ends (NULL would be ignored or poison).
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


class add_days(FunctionElement):  # noqa: N801 - reads like the SQL function it renders
    """``moment + days`` (days: an integer expression)."""

    type = UTCDateTime()
    inherit_cache = True
    name = "add_days"


class add_months(FunctionElement):  # noqa: N801
    """``moment + months`` calendar months (months: an integer expression)."""

    type = UTCDateTime()
    inherit_cache = True
    name = "add_months"


class least(FunctionElement):  # noqa: N801
    """The smallest of several non-NULL datetime expressions."""

    type = UTCDateTime()
    inherit_cache = True
    name = "least"


def _pg_shift(element, compiler, unit: str) -> str:
    moment, amount = (compiler.process(c) for c in element.clauses)
    return (f"((({moment}) AT TIME ZONE 'UTC' + make_interval({unit} => CAST({amount} "
            f"AS INTEGER))) AT TIME ZONE 'UTC')")


def _sqlite_shift(element, compiler, unit: str) -> str:
    moment, amount = (compiler.process(c) for c in element.clauses)
    return (f"(strftime('%Y-%m-%d %H:%M:%S', {moment}, '+' || CAST({amount} AS INTEGER) "
            f"|| ' {unit}') || substr({moment}, 20))")


def _register(construct, unit: str) -> None:
    compiles(construct, "postgresql")(lambda element, compiler, **kw:
                                      _pg_shift(element, compiler, unit))
    compiles(construct, "sqlite")(lambda element, compiler, **kw:
                                  _sqlite_shift(element, compiler, unit))


_register(add_days, "days")
_register(add_months, "months")


@compiles(least, "postgresql")
def _least_pg(element, compiler, **kw):
    return f"LEAST({compiler.process(element.clauses, **kw)})"


@compiles(least, "sqlite")
def _least_sqlite(element, compiler, **kw):
    return f"MIN({compiler.process(element.clauses, **kw)})"
