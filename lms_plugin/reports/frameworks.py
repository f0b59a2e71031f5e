"""Competency frameworks: import and export in Moodle's CSV layout, evidence mapping, and
the one rule of "holds a competency" (DESIGN: Competencies; issue 16).

CSV layout: Moodle's ``tool_lpimportcsv`` (moodle/moodle ``admin/tool/lpimportcsv``:
``classes/framework_importer.php`` ``list_required_headers`` and ``read_mapping_data``,
``classes/framework_exporter.php``, header names from ``lang/en/tool_lpimportcsv.php``).
Fourteen columns in a fixed order; one row with "Is framework" set describes the framework,
every other row a competency whose parent is named by "Parent ID number" (empty: top level).
Related ID numbers are comma-separated with commas inside an ID number written ``%2C``.

Evidence (which modules evidence a competency) is not part of Moodle's format, so it travels
as a second, two-column CSV: ``Competency ID number,Module``(the module's slug).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.sql import Select, Subquery

from lms_plugin.accounts.models import User
from lms_plugin.accounts.services import record_audit
from lms_plugin.catalog.models import Module, ModuleVersion
from lms_plugin.errors import NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion
from lms_plugin.reports.models import Competency, CompetencyEvidence, CompetencyFramework

#: Moodle's column headers, in order (lang/en/tool_lpimportcsv.php).
MOODLE_HEADERS = (
    "Parent ID number", "ID number", "Short name", "Description", "Description format",
    "Scale values", "Scale configuration", "Rule type (optional)", "Rule outcome (optional)",
    "Rule config (optional)", "Cross-referenced competency ID numbers",
    "Exported ID (optional)", "Is framework", "Taxonomy",
)
EVIDENCE_HEADERS = ("Competency ID number", "Module")
MAX_IMPORT_BYTES = 2 * 1024 * 1024


@dataclass
class ImportResult:
    framework: CompetencyFramework
    competencies: int
    evidence: int


def _text(raw: bytes | str, what: str) -> str:
    if isinstance(raw, str):
        return raw.lstrip("\ufeff")
    if len(raw) > MAX_IMPORT_BYTES:
        raise ValidationFailed(f"{what} is larger than 2 MB.", field="file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"{what} is not UTF-8 text (byte {exc.start}).",
                               field="file") from None


def _rows(text: str, headers: tuple[str, ...], what: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        first = next(reader, None)
        if first is None:
            raise ValidationFailed(f"{what} is empty.", field="file")
        found = [h.strip() for h in first]
        if found[:len(headers)] != list(headers):
            raise ValidationFailed(
                f"{what}, line 1: the columns must be {', '.join(headers)} (Moodle's "
                f"competency framework CSV); found {', '.join(found) or 'none'}.",
                field="file")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            yield reader.line_num, (row + [""] * len(headers))[:len(headers)]
    except csv.Error as exc:
        raise ValidationFailed(f"{what}, line {reader.line_num}: {exc}", field="file") from None


def _int(value: str, default: int, where: str, column: str) -> int:
    if not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        raise ValidationFailed(f"{where}: '{column}' must be a whole number, not {value!r}.",
                               field="file") from None


def _check_len(value: str, limit: int, where: str, column: str) -> str:
    value = value.strip()
    if len(value) > limit:
        raise ValidationFailed(f"{where}: '{column}' is longer than {limit} characters.",
                               field="file")
    return value


def import_framework(organisation_id: int, framework_csv: bytes | str,
                     evidence_csv: bytes | str | None = None, *, actor: User | None,
                     filename: str = "framework CSV") -> ImportResult:
    """Create a framework from Moodle's CSV (and optionally its evidence CSV).

    Everything is checked before anything is written; the first problem raises
    ValidationFailed naming the file and line. Refuses a framework ``idnumber`` the
    organisation already has (Conflict-free: 422 naming it). Flushes, never commits; audited.
    """
    text = _text(framework_csv, filename)
    framework_row: list[str] | None = None
    competencies: list[tuple[int, list[str]]] = []
    seen: dict[str, int] = {}
    for line, row in _rows(text, MOODLE_HEADERS, filename):
        where = f"{filename}, line {line}"
        if row[12].strip() not in ("", "0", "false"):
            if framework_row is not None:
                raise ValidationFailed(f"{where}: a second row marked 'Is framework'.",
                                       field="file")
            framework_row = row
            continue
        idnumber = _check_len(row[1], 100, where, "ID number")
        if not idnumber or not row[2].strip():
            raise ValidationFailed(f"{where}: a competency needs an ID number and a short name.",
                                   field="file")
        if idnumber in seen:
            raise ValidationFailed(f"{where}: ID number {idnumber!r} is already used on line "
                                   f"{seen[idnumber]}.", field="file")
        seen[idnumber] = line
        competencies.append((line, row))
    if framework_row is None:
        raise ValidationFailed(f"{filename}: no row is marked 'Is framework' (column 13).",
                               field="file")
    for line, row in competencies:
        parent = row[0].strip()
        if parent and parent not in seen:
            raise ValidationFailed(f"{filename}, line {line}: parent ID number {parent!r} is "
                                   "not a competency of this file.", field="file")
    # Cycles (A's parent B, B's parent A) would leave no root: walk each chain.
    parents = {r[1].strip(): r[0].strip() for _, r in competencies}
    for start in parents:
        node, steps = start, 0
        while parents.get(node):
            node, steps = parents[node], steps + 1
            if steps > len(parents):
                raise ValidationFailed(f"{filename}, line {seen[start]}: the parents of "
                                       f"{start!r} form a loop.", field="file")

    where = f"{filename}, line 2"
    fw_idnumber = _check_len(framework_row[1], 100, where, "ID number")
    if not fw_idnumber or not framework_row[2].strip():
        raise ValidationFailed(f"{filename}: the framework row needs an ID number and a short "
                               "name.", field="file")
    exists = db.session.scalar(select(CompetencyFramework.id).where(
        CompetencyFramework.organisation_id == organisation_id,
        CompetencyFramework.idnumber == fw_idnumber))
    if exists is not None:
        raise ValidationFailed(f"{filename}: a framework with ID number {fw_idnumber!r} already "
                               "exists in this organisation.", field="file")

    evidence_pairs: list[tuple[str, int]] = []
    if evidence_csv is not None:
        evidence_pairs = _parse_evidence(organisation_id, evidence_csv, set(seen))

    framework = CompetencyFramework(
        organisation_id=organisation_id, idnumber=fw_idnumber,
        shortname=_check_len(framework_row[2], 100, where, "Short name"),
        description=framework_row[3], scale_values=framework_row[5].strip(),
        description_format=_int(framework_row[4], 1, where, "Description format"),
        scale_configuration=framework_row[6].strip(),
        taxonomy=_check_len(framework_row[13], 500, where, "Taxonomy"))
    db.session.add(framework)
    db.session.flush()
    by_idnumber: dict[str, Competency] = {}
    # Parents before children: insert in order of depth.
    def depth(idnumber: str) -> int:
        d = 0
        while parents.get(idnumber):
            idnumber, d = parents[idnumber], d + 1
        return d

    ordered = sorted(enumerate(competencies), key=lambda item: (depth(item[1][1][1].strip()),
                                                                  item[0]))
    for position, (line, row) in ordered:
        where = f"{filename}, line {line}"
        competency = Competency(
            framework_id=framework.id, sortorder=position, idnumber=row[1].strip(),
            parent_id=by_idnumber[row[0].strip()].id if row[0].strip() else None,
            shortname=_check_len(row[2], 100, where, "Short name"), description=row[3],
            description_format=_int(row[4], 1, where, "Description format"),
            scale_values=row[5].strip(), scale_configuration=row[6].strip(),
            rule_type=_check_len(row[7], 100, where, "Rule type"),
            rule_outcome=_check_len(row[8], 20, where, "Rule outcome"),
            rule_config=row[9].strip(), related_idnumbers=row[10].strip())
        db.session.add(competency)
        db.session.flush()
        by_idnumber[competency.idnumber] = competency
    for idnumber, module_id in evidence_pairs:
        db.session.add(CompetencyEvidence(competency_id=by_idnumber[idnumber].id,
                                          module_id=module_id))
    db.session.flush()
    # Its holdings are computed live until this job has built them.
    from lms_plugin.jobs.outbox import enqueue

    enqueue("reports.holdings", {"framework_id": framework.id},
            organisation_id=organisation_id)
    record_audit("competency_framework.import", actor=actor, organisation_id=organisation_id,
                 target=("competency_framework", framework.id),
                 details={"after": {"idnumber": framework.idnumber,
                                    "shortname": framework.shortname,
                                    "competencies": len(competencies),
                                    "evidence": len(evidence_pairs)}, "file": filename})
    return ImportResult(framework, len(competencies), len(evidence_pairs))


def _parse_evidence(organisation_id: int, raw: bytes | str,
                    idnumbers: set[str]) -> list[tuple[str, int]]:
    what = "evidence CSV"
    modules = dict(db.session.execute(select(Module.slug, Module.id).where(
        Module.organisation_id == organisation_id)).all())
    pairs: list[tuple[str, int]] = []
    seen: set[tuple[str, int]] = set()
    for line, row in _rows(_text(raw, what), EVIDENCE_HEADERS, what):
        idnumber, slug = row[0].strip(), row[1].strip()
        if idnumber not in idnumbers:
            raise ValidationFailed(f"{what}, line {line}: {idnumber!r} is not a competency of "
                                   "the framework.", field="evidence")
        if slug not in modules:
            raise ValidationFailed(f"{what}, line {line}: there is no module {slug!r} in this "
                                   "organisation.", field="evidence")
        pair = (idnumber, modules[slug])
        if pair not in seen:
            seen.add(pair)
            pairs.append(pair)
    return pairs


def export_framework_csv(framework: CompetencyFramework) -> str:
    """The framework in Moodle's CSV layout (``framework_exporter::export``'s rows)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MOODLE_HEADERS)
    writer.writerow(["", framework.idnumber, framework.shortname, framework.description,
                     framework.description_format, framework.scale_values,
                     framework.scale_configuration, "", "", "", "", "", 1,
                     framework.taxonomy])
    ids = {c.id: c.idnumber for c in framework.competencies}
    for c in framework.competencies:
        writer.writerow([ids.get(c.parent_id, "") if c.parent_id else "", c.idnumber,
                         c.shortname, c.description, c.description_format, c.scale_values,
                         c.scale_configuration, c.rule_type, c.rule_outcome,
                         c.rule_config or ("null" if not c.rule_type else ""),
                         c.related_idnumbers, c.id, "", ""])
    return out.getvalue()


def export_evidence_csv(framework: CompetencyFramework) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EVIDENCE_HEADERS)
    writer.writerows(db.session.execute(
        select(Competency.idnumber, Module.slug)
        .join(CompetencyEvidence, CompetencyEvidence.competency_id == Competency.id)
        .join(Module, Module.id == CompetencyEvidence.module_id)
        .where(Competency.framework_id == framework.id)
        .order_by(Competency.sortorder, Module.slug)).all())
    return out.getvalue()


def list_frameworks(organisation_id: int) -> list[tuple[CompetencyFramework, int]]:
    """The organisation's frameworks with their competency counts, by short name."""
    return [(f, n) for f, n in db.session.execute(
        select(CompetencyFramework, func.count(Competency.id))
        .outerjoin(Competency, Competency.framework_id == CompetencyFramework.id)
        .where(CompetencyFramework.organisation_id == organisation_id)
        .group_by(CompetencyFramework.id)
        .order_by(CompetencyFramework.shortname, CompetencyFramework.id)).all()]


def get_framework(framework_id: int, organisation_id: int) -> CompetencyFramework:
    """The organisation's framework; NotFound for another organisation's (no leak)."""
    framework = db.session.get(CompetencyFramework, framework_id)
    if framework is None or framework.organisation_id != organisation_id:
        raise NotFound("There is no such competency framework.")
    return framework


def evidence_of(framework_id: int) -> dict[int, list[tuple[str, str]]]:
    """competency id -> [(module slug, module title of its newest version)], one query."""
    newest = (select(ModuleVersion.module_id, func.max(ModuleVersion.number).label("n"))
              .group_by(ModuleVersion.module_id).subquery())
    rows = db.session.execute(
        select(CompetencyEvidence.competency_id, Module.slug, ModuleVersion.title)
        .join(Competency, Competency.id == CompetencyEvidence.competency_id)
        .join(Module, Module.id == CompetencyEvidence.module_id)
        .outerjoin(newest, newest.c.module_id == Module.id)
        .outerjoin(ModuleVersion, and_(ModuleVersion.module_id == Module.id,
                                       ModuleVersion.number == newest.c.n))
        .where(Competency.framework_id == framework_id)
        .order_by(Module.slug)).all()
    result: dict[int, list[tuple[str, str]]] = {}
    for competency_id, slug, title in rows:
        result.setdefault(competency_id, []).append((slug, title or slug))
    return result


def delete_framework(framework: CompetencyFramework, *, actor: User | None) -> None:
    """Delete a framework with its competencies and evidence (audited); flushes.

    Set-based statements (the competencies in one DELETE), not the ORM's row-by-row
    cascade: a child competency's ``parent_id`` cascades in the database too, and the ORM
    would then find it gone."""
    before = {"idnumber": framework.idnumber, "shortname": framework.shortname}
    framework_id, organisation_id = framework.id, framework.organisation_id
    ids = select(Competency.id).where(Competency.framework_id == framework_id)
    from lms_plugin.reports.models import CompetencyHolding, HoldingState

    db.session.execute(delete(CompetencyHolding).where(CompetencyHolding.competency_id.in_(ids)))
    db.session.execute(delete(HoldingState).where(HoldingState.framework_id == framework_id))
    db.session.execute(delete(CompetencyEvidence).where(CompetencyEvidence.competency_id.in_(ids)))
    db.session.expunge(framework)
    db.session.execute(delete(Competency).where(Competency.framework_id == framework_id)
                       .execution_options(synchronize_session=False))
    db.session.execute(delete(CompetencyFramework).where(CompetencyFramework.id == framework_id)
                       .execution_options(synchronize_session=False))
    record_audit("competency_framework.delete", actor=actor, organisation_id=organisation_id,
                 target=("competency_framework", framework_id), details={"before": before})


# --------------------------------------------------------------------------- holding
def valid_completions(now: datetime, competency_ids: list[int] | None = None,
                      users: Select | None = None) -> Subquery:
    """(user_id, module_id) pairs with a currently valid completion, as a subquery (only
    modules evidencing one of ``competency_ids`` when given).

    The rule of ``learning.services.valid_completion`` in one set-based statement: not
    expired at ``now``, and earned on a version numbered at least the newest *published*
    version marked ``retraining_required`` (none: any version counts).
    """
    retrain = (select(ModuleVersion.module_id, func.max(ModuleVersion.number).label("floor"))
               .where(ModuleVersion.status == "published",
                      ModuleVersion.retraining_required.is_(True))
               .group_by(ModuleVersion.module_id).subquery("retrain"))
    query = (select(Completion.user_id, Completion.module_id)
             .join(ModuleVersion, ModuleVersion.id == Completion.module_version_id)
             .outerjoin(retrain, retrain.c.module_id == Completion.module_id)
             .where(or_(Completion.expires_at.is_(None), Completion.expires_at > now),
                    or_(retrain.c.floor.is_(None), ModuleVersion.number >= retrain.c.floor)))
    if competency_ids is not None:
        query = query.where(Completion.module_id.in_(
            select(CompetencyEvidence.module_id)
            .where(CompetencyEvidence.competency_id.in_(competency_ids))))
    if users is not None:
        query = query.where(Completion.user_id.in_(users))
    return query.distinct().subquery("valid")


def holdings(now: datetime, competency_ids: list[int] | None = None) -> Subquery:
    """(user_id, competency_id) pairs: the person holds the competency at ``now``.

    DESIGN: "a person is competent when every module that evidences it is currently
    complete". A competency with no evidencing module is held by nobody (nothing shows it).
    Read from the precomputed table where it is current (reports/holdings.py: people with
    newer completions, and stale or unbuilt frameworks, are computed live here).
    """
    from lms_plugin.reports import holdings as stored

    if competency_ids is not None:
        upto = stored.stored_since(competency_ids)
        if upto is not None:
            return stored.held_now(now, competency_ids, upto,
                                   lambda users: live_holdings(now, competency_ids, users))
    return live_holdings(now, competency_ids).subquery("held")


def live_holdings(now: datetime, competency_ids: list[int] | None = None,
                  users: Select | None = None) -> Select:
    """:func:`holdings` computed from the completions (only ``users`` when given)."""
    valid = valid_completions(now, competency_ids, users)
    needed = select(CompetencyEvidence.competency_id, func.count().label("needed"))
    if competency_ids is not None:
        needed = needed.where(CompetencyEvidence.competency_id.in_(competency_ids))
    needed = needed.group_by(CompetencyEvidence.competency_id).subquery("needed")
    query = (select(valid.c.user_id, CompetencyEvidence.competency_id)
             .join(CompetencyEvidence, CompetencyEvidence.module_id == valid.c.module_id)
             .join(needed, needed.c.competency_id == CompetencyEvidence.competency_id)
             .group_by(valid.c.user_id, CompetencyEvidence.competency_id, needed.c.needed)
             .having(func.count() == needed.c.needed))
    return query


def holding_pivot(now: datetime, competency_ids: list[int]) -> Subquery:
    """One row per person holding at least one of ``competency_ids``: ``user_id`` and a
    0/1 column ``c0``, ``c1``… per competency (in the order given). Pivoting per person
    first keeps the reports' outer aggregates plain sums (no COUNT(DISTINCT) per column)."""
    held = holdings(now, competency_ids)
    flags = [func.max(case((held.c.competency_id == cid, 1), else_=0)).label(f"c{i}")
             for i, cid in enumerate(competency_ids)]
    return select(held.c.user_id, *flags).group_by(held.c.user_id).subquery("pivot")
