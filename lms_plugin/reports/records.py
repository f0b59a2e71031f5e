"""Completion records: one row per completion of the organisation's people (the raw table
behind compliance questions), filterable by the profile columns and module; exported in
full, streamed (the table that reaches millions of rows)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from lms_plugin.accounts.models import User
from lms_plugin.catalog.models import Module, ModuleVersion
from lms_plugin.errors import ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion
from lms_plugin.reports.exports import Table
from lms_plugin.reports.matrix import MAX_FILTER, NOT_SET, PROFILE_COLUMNS

HEADERS = ["Name", "Email", *(label for label, _ in PROFILE_COLUMNS.values()), "Module",
           "Version", "Score %", "Completed (UTC)", "Expires (UTC)", "Valid now"]


def clean_filters(args: dict[str, str]) -> dict[str, str]:
    filters = {}
    for name in (*PROFILE_COLUMNS, "module"):
        value = (args.get(name) or "").strip()
        if len(value) > MAX_FILTER:
            raise ValidationFailed(f"The {name} filter is too long.", field=name)
        if value:
            filters[name] = value
    return filters


def completions_table(organisation_id: int, filters: dict[str, str], now: datetime) -> Table:
    """Newest recorded first (by id: the primary key's index serves the page's first rows
    without sorting millions; completions are recorded as they happen). "Valid now" is only
    the expiry test (the retraining rule is the competency matrix's); people of other
    organisations never appear."""
    profile = [column for _, column in PROFILE_COLUMNS.values()]
    query = (select(User.name, User.email, *profile, Module.slug, ModuleVersion.number,
                    Completion.score, Completion.completed_at, Completion.expires_at)
             .join(User, User.id == Completion.user_id)
             .join(Module, Module.id == Completion.module_id)
             .join(ModuleVersion, ModuleVersion.id == Completion.module_version_id)
             .where(User.organisation_id == organisation_id)
             .order_by(Completion.id.desc()))
    for name, (_, column) in PROFILE_COLUMNS.items():
        if name in filters:
            value = filters[name]
            query = query.where(column.is_(None) if value == NOT_SET else column == value)
    if "module" in filters:
        query = query.where(Module.slug == filters["module"])
    stamp = now.replace(tzinfo=None)

    def fmt(row):
        expires = row[-1]
        valid = expires is None or expires.replace(tzinfo=None) > stamp
        return (*row[:-3], round(row[-3], 2), row[-2], expires, "yes" if valid else "no")

    return Table(report="completions", title="Completions", headers=HEADERS, query=query,
                 format=fmt, filters=dict(filters))


def module_choices(organisation_id: int) -> list[str]:
    """The organisation's module slugs, for the module filter."""
    return list(db.session.scalars(select(Module.slug)
                                   .where(Module.organisation_id == organisation_id)
                                   .order_by(Module.slug)))
