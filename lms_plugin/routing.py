"""Integers from URLs and query strings, limited to what the database can hold.

Werkzeug's ``<int:…>`` accepts any number of digits, and an id such as
``/admin/users/99999999999999999999`` then reached the query and failed in the driver
(SQLite: "Python int too large to convert to SQLite INTEGER"; PostgreSQL: integer out of
range), a 500. :func:`register_converters` replaces the ``int`` converter of the app's URL
map, so every ``<int:…>`` route answers 404 for a value above :data:`~lms_plugin.db.DB_INT_MAX`
(no record can have that id) without a route having to opt in. :func:`query_int` does the
same job for integers in query strings, with a 422 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

from lms_plugin.db import DB_INT_MAX
from lms_plugin.errors import ValidationFailed


class DatabaseIntegerConverter(IntegerConverter):
    """``<int:…>`` with ``max`` defaulting to :data:`DB_INT_MAX` (a route may still give its
    own ``min``/``max``/``signed`` as Werkzeug documents, e.g. ``<int(min=1):n>``). A value
    out of range does not match the rule, so the request gets the usual 404."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = None, signed: bool = False) -> None:  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min,
                         max=DB_INT_MAX if max is None else max, signed=signed)


def register_converters(app: Flask) -> None:
    """Make every ``<int:…>`` of ``app`` a :class:`DatabaseIntegerConverter`. Must run before
    the blueprints are registered: rules are compiled with the converter of that moment."""
    app.url_map.converters["int"] = DatabaseIntegerConverter


def query_int(args: Mapping[str, Any], name: str, *, default: int | None = None,
              minimum: int = 0, maximum: int = DB_INT_MAX, label: str | None = None,
              ) -> int | None:
    """The whole number in ``args[name]`` (``default`` when absent or blank).

    Only ASCII digits are accepted (``str.isdigit`` also admits ``"²"``, which ``int`` then
    refuses). Raises :class:`~lms_plugin.errors.ValidationFailed` (422) naming ``label`` (or
    ``name``) for anything else or for a value outside ``minimum``..``maximum``.
    """
    raw = (args.get(name) or "").strip()
    if not raw:
        return default
    what = label or name
    if not (raw.isascii() and raw.isdigit()):
        raise ValidationFailed(f"{what} must be a whole number", field=name)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ValidationFailed(f"{what} must be between {minimum} and {maximum}", field=name)
    return value
