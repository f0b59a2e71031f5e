"""Count the SQL statements a block of code sends (an executemany counts once)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine


@contextmanager
def counted() -> Iterator[list[str]]:
    """Yields the list of statements sent inside the block (pings and transaction control
    excluded: they are the pool's, not the code's)."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        text = statement.strip().lower()
        if text in ("select 1",) or text.startswith(("begin", "commit", "rollback",
                                                     "savepoint", "release")):
            return
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)
