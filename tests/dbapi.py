"""Test helper: run code as if the database driver could not report row counts.

PEP 249 lets a driver answer ``cursor.rowcount == -1`` when it cannot tell, and SQLAlchemy
2.1 does exactly that for ``INSERT … ON CONFLICT DO NOTHING`` on PostgreSQL (issue 9: every
LTI launch on PostgreSQL without Redis was refused). Code must learn what a statement
changed from ``RETURNING`` instead; under :func:`rowcount_unknown` any code that still trusts
``rowcount`` misbehaves on SQLite and PostgreSQL alike, so the tests catch it on every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.engine import CursorResult

from lms_plugin.extensions import db


@contextmanager
def rowcount_unknown(app) -> Iterator[None]:
    """Every statement's ``rowcount`` reads -1 and the dialect says so (as such drivers do:
    the ORM's own flush then skips its row-count checks)."""
    with app.app_context():
        dialect = db.engine.dialect
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CursorResult, "rowcount", property(lambda self: -1))
        # On the class: the launch fast path's reader engine shares it.
        mp.setattr(type(dialect), "supports_sane_rowcount", False)
        mp.setattr(type(dialect), "supports_sane_multi_rowcount", False)
        yield
