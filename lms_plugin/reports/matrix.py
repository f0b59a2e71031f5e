"""The competency matrix (issue 16): groups of people x competencies as % holding, and the
drill-down people x competencies. Both are :class:`~lms_plugin.reports.exports.Table`s, so
the page and its CSV/XLSX export show the same rows.

The profile columns people are grouped and filtered by live in ONE place,
:data:`PROFILE_COLUMNS` (the staff profile of the ``assign`` work extends it).
People counted: active people of the organisation holding the ``learner`` role (departed
people, ``active = false``, drop out; a person who changed department counts in their
current one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.sql import ColumnElement

from lms_plugin.accounts.models import RoleGrant, User
from lms_plugin.catalog.models import ClinicalSystem, Module
from lms_plugin.errors import ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.reports.exports import Table
from lms_plugin.reports.frameworks import holding_pivot
from lms_plugin.reports.models import Competency, CompetencyEvidence, CompetencyFramework

#: filter/grouping name -> (label, the person's column). The one list of profile columns.
PROFILE_COLUMNS: dict[str, tuple[str, Any]] = {
    "facility": ("Facility", User.facility),
    "department": ("Department", User.department),
    "job_role": ("Job role", User.job_role),
}
FILTER_NAMES = (*PROFILE_COLUMNS, "system", "framework")
NOT_SET = "(not set)"
MAX_FILTER = 200


@dataclass(frozen=True)
class MatrixColumn:
    id: int
    idnumber: str
    shortname: str


def clean_filters(args: dict[str, str], group_by: str | None = None) -> dict[str, str]:
    """Keep the known, non-empty filters (``facility``, ``department``, ``job_role``,
    ``system`` slug, ``framework`` id); ValidationFailed for an over-long value or an
    unknown grouping."""
    filters = {}
    for name in FILTER_NAMES:
        value = (args.get(name) or "").strip()
        if len(value) > MAX_FILTER:
            raise ValidationFailed(f"The {name} filter is too long.", field=name)
        if value:
            filters[name] = value
    if "framework" in filters and not filters["framework"].isdigit():
        raise ValidationFailed("Choose a framework from the list.", field="framework")
    group = group_by or args.get("group") or "department"
    if group not in PROFILE_COLUMNS:
        raise ValidationFailed(f"Group by one of {', '.join(PROFILE_COLUMNS)}.", field="group")
    filters["group"] = group
    return filters


def competencies(organisation_id: int, filters: dict[str, str]) -> list[MatrixColumn]:
    """The organisation's competencies the filters select (framework; clinical system: those
    evidenced by a module of that system), in framework then framework order."""
    query = (select(Competency.id, Competency.idnumber, Competency.shortname)
             .join(CompetencyFramework, CompetencyFramework.id == Competency.framework_id)
             .where(CompetencyFramework.organisation_id == organisation_id)
             .order_by(CompetencyFramework.shortname, Competency.sortorder, Competency.id))
    if "framework" in filters:
        query = query.where(CompetencyFramework.id == int(filters["framework"]))
    if "system" in filters:
        query = query.where(Competency.id.in_(
            select(CompetencyEvidence.competency_id)
            .join(Module, Module.id == CompetencyEvidence.module_id)
            .join(ClinicalSystem, ClinicalSystem.id == Module.system_id)
            .where(ClinicalSystem.slug == filters["system"],
                   ClinicalSystem.organisation_id == organisation_id)))
    return [MatrixColumn(*row) for row in db.session.execute(query).all()]


def _people(organisation_id: int, filters: dict[str, str]):
    """Who is counted (see the module docstring), filtered by the profile filters."""
    learner = select(RoleGrant.id).where(RoleGrant.user_id == User.id,
                                         RoleGrant.organisation_id == organisation_id,
                                         RoleGrant.role == "learner")
    query = select(User.id).where(User.organisation_id == organisation_id,
                                  User.active.is_(True), learner.exists())
    for name, (_, column) in PROFILE_COLUMNS.items():
        if name in filters:
            value = filters[name]
            query = query.where(column.is_(None) if value == NOT_SET else column == value)
    return query


def _group_expr(filters: dict[str, str]) -> ColumnElement[str]:
    return func.coalesce(PROFILE_COLUMNS[filters["group"]][1], literal(NOT_SET))


def percent(held: int, people: int) -> float | None:
    """Share holding, 0-100 rounded to one decimal (None for an empty group)."""
    return round(100.0 * held / people, 1) if people else None


def matrix_table(organisation_id: int, filters: dict[str, str], now: datetime) -> Table:
    """Groups (``filters['group']``: department by default) x competencies.

    Row: group, people counted, then per competency the % holding (0-100, one decimal).
    One statement: people left-joined to the holdings, pivoted with one conditional count
    per competency column.
    """
    columns = competencies(organisation_id, filters)
    pivot = holding_pivot(now, [c.id for c in columns])
    group = _group_expr(filters).label("grp")
    people = _people(organisation_id, filters).add_columns(group).subquery("people")
    counts = [func.coalesce(func.sum(pivot.c[f"c{i}"]), 0) for i in range(len(columns))]
    query = (select(people.c.grp, func.count(), *counts)
             .select_from(people)
             .outerjoin(pivot, pivot.c.user_id == people.c.id)
             .group_by(people.c.grp).order_by(people.c.grp))

    def fmt(row):
        total = row[1]
        return (row[0], total, *(percent(n, total) for n in row[2:]))

    label = PROFILE_COLUMNS[filters["group"]][0]
    return Table(report="competency_matrix", title="Competency matrix",
                 headers=[label, "People", *(f"{c.shortname} ({c.idnumber}) %"
                                             for c in columns)],
                 query=query, format=fmt, filters=dict(filters))


def people_table(organisation_id: int, filters: dict[str, str], now: datetime) -> Table:
    """The drill-down: one row per person (name, email, profile columns), then per
    competency "yes"/"no" (holds it now). Ordered by name."""
    columns = competencies(organisation_id, filters)
    pivot = holding_pivot(now, [c.id for c in columns])
    ids = _people(organisation_id, filters).subquery("people")
    flags = [pivot.c[f"c{i}"] for i in range(len(columns))]
    profile = [column for _, column in PROFILE_COLUMNS.values()]
    query = (select(User.name, User.email, *profile, *flags)
             .join(ids, ids.c.id == User.id)
             .outerjoin(pivot, pivot.c.user_id == User.id)
             .order_by(User.name, User.id))
    n = 2 + len(profile)

    def fmt(row):
        return (*row[:n], *("yes" if flag else "no" for flag in row[n:]))

    return Table(report="competency_people", title="Competency by person",
                 headers=["Name", "Email", *(label for label, _ in PROFILE_COLUMNS.values()),
                          *(f"{c.shortname} ({c.idnumber})" for c in columns)],
                 query=query, format=fmt, filters=dict(filters))


def filter_choices(organisation_id: int) -> dict[str, list[str]]:
    """Distinct values for each profile filter and the clinical system slugs (one query
    each, bounded by the organisation)."""
    choices = {}
    for name, (_, column) in PROFILE_COLUMNS.items():
        choices[name] = list(db.session.scalars(
            select(column).where(User.organisation_id == organisation_id, column.is_not(None))
            .distinct().order_by(column).limit(500)))
    choices["system"] = list(db.session.execute(
        select(ClinicalSystem.slug, ClinicalSystem.name)
        .where(ClinicalSystem.organisation_id == organisation_id)
        .order_by(ClinicalSystem.name)).all())
    choices["framework"] = list(db.session.execute(
        select(CompetencyFramework.id, CompetencyFramework.shortname)
        .where(CompetencyFramework.organisation_id == organisation_id)
        .order_by(CompetencyFramework.shortname)).all())
    return choices


#: report name -> table builder(organisation_id, filters, now): what background exports
#: rebuild from stored filters (reports.tasks adds the completion records).
TABLES = {"competency_matrix": matrix_table, "competency_people": people_table}
