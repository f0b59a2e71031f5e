"""Competency frameworks (framework -> competencies -> evidencing modules) and background
exports: the only tables ``reports`` owns.

The competency columns follow Moodle's competency framework import/export
(``admin/tool/lpimportcsv``, moodle/moodle: ``framework_importer::list_required_headers``), so
a framework moves between Moodle and this tool without loss.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lms_plugin.db import utcnow
from lms_plugin.extensions import db


class _Described:
    """The description and proficiency scale columns a framework and a competency share
    (Moodle's "Description", "Description format", "Scale values", "Scale configuration")."""

    description: Mapped[str] = mapped_column(Text, default="")
    #: Moodle's text format number (0 Moodle, 1 HTML, 2 plain, 4 Markdown).
    description_format: Mapped[int] = mapped_column(default=1)
    #: The proficiency scale, comma-separated items lowest first (Moodle's compact_items);
    #: empty on a competency: the framework's scale applies.
    scale_values: Mapped[str] = mapped_column(Text, default="")
    #: Moodle's scale configuration JSON, kept verbatim.
    scale_configuration: Mapped[str] = mapped_column(Text, default="")


class CompetencyFramework(_Described, db.Model):
    """An organisation's framework; ``idnumber`` is unique within the organisation."""

    __tablename__ = "competency_framework"
    __table_args__ = (UniqueConstraint("organisation_id", "idnumber"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    idnumber: Mapped[str] = mapped_column(String(100))
    shortname: Mapped[str] = mapped_column(String(100))
    taxonomy: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    competencies: Mapped[list[Competency]] = relationship(
        back_populates="framework", order_by="Competency.sortorder",
        cascade="all, delete-orphan")


class Competency(_Described, db.Model):
    """One competency; ``idnumber`` unique within its framework. ``parent_id`` nests it."""

    __tablename__ = "competency"
    __table_args__ = (UniqueConstraint("framework_id", "idnumber"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    framework_id: Mapped[int] = mapped_column(
        ForeignKey("competency_framework.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("competency.id", ondelete="CASCADE"), index=True)
    sortorder: Mapped[int] = mapped_column(default=0)
    idnumber: Mapped[str] = mapped_column(String(100))
    shortname: Mapped[str] = mapped_column(String(100))
    #: Moodle's course-completion rule columns, kept verbatim for a faithful round trip.
    rule_type: Mapped[str] = mapped_column(String(100), default="")
    rule_outcome: Mapped[str] = mapped_column(String(20), default="")
    rule_config: Mapped[str] = mapped_column(Text, default="")
    #: Cross-referenced competency ID numbers (comma-separated, as in the CSV).
    related_idnumbers: Mapped[str] = mapped_column(Text, default="")

    framework: Mapped[CompetencyFramework] = relationship(back_populates="competencies")


class CompetencyEvidence(db.Model):
    """A module whose valid completion is evidence for a competency (DESIGN: Competencies)."""

    __tablename__ = "competency_evidence"
    __table_args__ = (UniqueConstraint("competency_id", "module_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    competency_id: Mapped[int] = mapped_column(ForeignKey("competency.id", ondelete="CASCADE"))
    module_id: Mapped[int] = mapped_column(ForeignKey("module.id", ondelete="CASCADE"),
                                           index=True)


#: Status of a background export.
EXPORT_STATUSES = ("pending", "running", "done", "failed")


class ReportExport(db.Model):
    """An export too large to stream in the request (over ``exports.INLINE_LIMIT`` rows),
    written by the ``reports.export`` job to a file under the instance folder."""

    __tablename__ = "report_export"
    __table_args__ = (Index("ix_report_export_org_created", "organisation_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    requested_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    report: Mapped[str] = mapped_column(String(50))
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    format: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    total_rows: Mapped[int | None]
    rows_written: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class CompetencyHolding(db.Model):
    """Who holds what, precomputed (reports/holdings.py): every module evidencing the
    competency has a completion that counts (version at or past the retraining floor), and
    ``held_until`` is when the first of those lapses (None: never). "Holds at t" is
    ``held_until IS NULL OR held_until > t``, so expiry needs no upkeep."""

    __tablename__ = "competency_holding"

    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         primary_key=True)
    competency_id: Mapped[int] = mapped_column(ForeignKey("competency.id", ondelete="CASCADE"),
                                               primary_key=True, index=True)
    held_until: Mapped[datetime | None]


class HoldingState(db.Model):
    """What a framework's precomputed holdings include: completions up to
    ``upto_completion_id``, and the published retraining-required versions as they were
    (``fingerprint``). A different fingerprint means the table is stale: pages compute
    live until the next build."""

    __tablename__ = "competency_holding_state"

    framework_id: Mapped[int] = mapped_column(
        ForeignKey("competency_framework.id", ondelete="CASCADE"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(100))
    upto_completion_id: Mapped[int]
    built_at: Mapped[datetime] = mapped_column(default=utcnow)
