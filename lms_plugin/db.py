"""Declarative base with a naming convention so Alembic migrations get stable constraint names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, registry

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


#: The largest value an id (or any ``Integer`` column) can hold: PostgreSQL's INTEGER is a
#: signed 32-bit number (SQLite's is 64-bit, so this is the bound both databases share).
#: Integers taken from outside (URLs, query strings, forms, command lines, content files) are
#: checked against it before they reach a query: a bigger one is "no such record" or a clear
#: message, never a driver error (issue 9, item 6).
DB_INT_MAX = 2**31 - 1


def utcnow() -> datetime:
    """Timezone-aware 'now' in UTC: every stored time is UTC (DESIGN: times)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns aware UTC values.

    SQLite has no time zones and returns naive values; PostgreSQL returns aware ones. This
    type makes both behave the same so comparisons never mix naive and aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use lms_plugin.db.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime()},
    )


def check_fits(value: str | None, column: Any, what: str, field: str | None = None,
               ) -> str | None:
    """``value`` unchanged if it fits ``column`` (a mapped ``String(n)`` attribute), else
    :class:`~lms_plugin.errors.ValidationFailed` (422) saying how long it is and the limit.

    Input is refused, never cut: a shortened email or URL is a different one, and the
    database would otherwise refuse it with a driver error (PostgreSQL) or keep it whole
    (SQLite), depending on the deployment (issue 9, item 6).
    """
    limit = getattr(column.property.columns[0].type, "length", None)
    if value is not None and limit is not None and len(value) > limit:
        from lms_plugin.errors import ValidationFailed

        raise ValidationFailed(f"{what} is {len(value)} characters long; at most {limit} "
                               "are allowed", field=field or column.key)
    return value


#: Indexes that exist only in migrations, because the models cannot declare them; reviewed
#: one by one. ``ix_user_account_search_trgm`` (0012): a PostgreSQL GIN trigram index on the
#: people search's expression (``accounts.services.people_search_text``, issue 18 item 5).
MIGRATION_ONLY_INDEXES = frozenset({"ix_user_account_search_trgm"})


def include_object(obj: Any, name: str | None, type_: str, reflected: bool,
                   compare_to: Any) -> bool:
    """Alembic's ``include_object`` hook for comparing the models with the database: skip
    exactly the reviewed :data:`MIGRATION_ONLY_INDEXES` found in the database (so neither
    autogenerate nor the migration test proposes dropping them); everything else compared."""
    return not (type_ == "index" and reflected and compare_to is None
                and name in MIGRATION_ONLY_INDEXES)
