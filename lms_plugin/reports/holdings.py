"""Precomputed competency holdings, so the matrix reads people x competencies rows instead of
every completion (bench/README.md "Reports": 2 million completions took seconds per page).

The rule stays the one of :func:`frameworks.valid_completions` / DESIGN "Competencies": a
person holds a competency while every evidencing module has a valid completion. The table
(``CompetencyHolding``) stores, per person and competency whose every evidencing module has
a completion that counts (version at or past the retraining floor), ``held_until``: the
earliest of those modules' latest expiry (None: never). So:

* expiry needs no upkeep ("holds at t" is ``held_until IS NULL OR held_until > t``);
* completions recorded since the build (id above ``HoldingState.upto_completion_id``, with a
  margin of :data:`IN_FLIGHT` for transactions that committed late) make their people
  "dirty": the read computes those few people live and takes everyone else from the table;
* a published retraining-required version changes the fingerprint: the read computes
  everything live (correct, slower) until the ``reports.holdings`` job rebuilds;
* a framework without a build (just imported) is computed live too.

The ``reports.holdings`` job (every :data:`tasks.HOLDINGS_INTERVAL`, and queued by an import)
folds dirty people in, or rebuilds a stale framework. Writes flush, never commit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import case, delete, func, insert, or_, select, union_all
from sqlalchemy.sql import Select, Subquery

from lms_plugin.catalog.models import ModuleVersion
from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion
from lms_plugin.reports.models import (
    Competency,
    CompetencyEvidence,
    CompetencyHolding,
    HoldingState,
)

#: Completions this far below the built maximum id are treated as new again (a transaction
#: that took its id before the build and committed after it).
IN_FLIGHT = 100


def fingerprint() -> str:
    """The published retraining-required versions, summarised (count, Σ id, Σ number)."""
    row = db.session.execute(
        select(func.count(), func.coalesce(func.sum(ModuleVersion.id), 0),
               func.coalesce(func.sum(ModuleVersion.number), 0))
        .where(ModuleVersion.status == "published",
               ModuleVersion.retraining_required.is_(True))).one()
    return f"{row[0]}:{row[1]}:{row[2]}"


def _retrain_floor() -> Subquery:
    return (select(ModuleVersion.module_id, func.max(ModuleVersion.number).label("floor"))
            .where(ModuleVersion.status == "published",
                   ModuleVersion.retraining_required.is_(True))
            .group_by(ModuleVersion.module_id).subquery("retrain"))


def held_rows(competency_ids: list[int], users: Select | None = None) -> Select:
    """(user_id, competency_id, held_until) for ``competency_ids`` (only ``users`` when
    given), from every completion: the table's content, computed."""
    retrain = _retrain_floor()
    evidenced = select(CompetencyEvidence.module_id).where(
        CompetencyEvidence.competency_id.in_(competency_ids))
    forever = func.max(case((Completion.expires_at.is_(None), 1), else_=0))
    per_module = (select(Completion.user_id, Completion.module_id,
                         case((forever == 1, None), else_=func.max(Completion.expires_at))
                         .label("until"))
                  .join(ModuleVersion, ModuleVersion.id == Completion.module_version_id)
                  .outerjoin(retrain, retrain.c.module_id == Completion.module_id)
                  .where(or_(retrain.c.floor.is_(None), ModuleVersion.number >= retrain.c.floor),
                         Completion.module_id.in_(evidenced))
                  .group_by(Completion.user_id, Completion.module_id))
    if users is not None:
        per_module = per_module.where(Completion.user_id.in_(users))
    per_module = per_module.subquery("per_module")
    needed = (select(CompetencyEvidence.competency_id, func.count().label("needed"))
              .where(CompetencyEvidence.competency_id.in_(competency_ids))
              .group_by(CompetencyEvidence.competency_id).subquery("needed"))
    return (select(per_module.c.user_id, CompetencyEvidence.competency_id,
                   func.min(per_module.c.until).label("held_until"))
            .join(CompetencyEvidence, CompetencyEvidence.module_id == per_module.c.module_id)
            .join(needed, needed.c.competency_id == CompetencyEvidence.competency_id)
            .group_by(per_module.c.user_id, CompetencyEvidence.competency_id, needed.c.needed)
            .having(func.count() == needed.c.needed))


def _competencies_of(framework_id: int) -> list[int]:
    return list(db.session.scalars(select(Competency.id)
                                   .where(Competency.framework_id == framework_id)))


def _max_completion_id() -> int:
    return db.session.scalar(select(func.coalesce(func.max(Completion.id), 0))) or 0


def _dirty_users(upto: int) -> Select:
    return select(Completion.user_id).where(Completion.id > upto - IN_FLIGHT).distinct()


def rebuild(framework_id: int, now: datetime) -> int:
    """Recompute a framework's holdings from scratch; the rows written."""
    upto, mark = _max_completion_id(), fingerprint()
    ids = _competencies_of(framework_id)
    db.session.execute(delete(CompetencyHolding)
                       .where(CompetencyHolding.competency_id.in_(ids)))
    written = 0
    if ids:
        written = len(db.session.execute(
            insert(CompetencyHolding).from_select(
                ["user_id", "competency_id", "held_until"], held_rows(ids))
            .returning(CompetencyHolding.user_id)).all())
    _set_state(framework_id, mark, upto, now)
    return written


def fold(framework_id: int, now: datetime) -> int:
    """Bring a built framework up to date with the completions recorded since (rebuild when
    the retraining fingerprint changed or it was never built); the rows written."""
    state = db.session.get(HoldingState, framework_id)
    if state is None or state.fingerprint != fingerprint():
        return rebuild(framework_id, now)
    upto = _max_completion_id()
    ids = _competencies_of(framework_id)
    dirty = _dirty_users(state.upto_completion_id)
    db.session.execute(delete(CompetencyHolding).where(
        CompetencyHolding.competency_id.in_(ids), CompetencyHolding.user_id.in_(dirty)))
    written = 0
    if ids:
        written = len(db.session.execute(
            insert(CompetencyHolding).from_select(
                ["user_id", "competency_id", "held_until"], held_rows(ids, dirty))
            .returning(CompetencyHolding.user_id)).all())
    _set_state(framework_id, state.fingerprint, upto, now)
    return written


def _set_state(framework_id: int, mark: str, upto: int, now: datetime) -> None:
    state = db.session.get(HoldingState, framework_id)
    if state is None:
        db.session.add(HoldingState(framework_id=framework_id, fingerprint=mark,
                                    upto_completion_id=upto, built_at=now))
    else:
        state.fingerprint, state.upto_completion_id, state.built_at = mark, upto, now
    db.session.flush()


def stored_since(competency_ids: list[int]) -> int | None:
    """The completion id the table is good up to for all of ``competency_ids`` (the oldest
    of their frameworks' builds), or None when any of them must be computed live."""
    if not competency_ids:
        return None
    rows = db.session.execute(
        select(Competency.framework_id, HoldingState.fingerprint,
               HoldingState.upto_completion_id)
        .outerjoin(HoldingState, HoldingState.framework_id == Competency.framework_id)
        .where(Competency.id.in_(competency_ids)).distinct()).all()
    mark = fingerprint()
    if any(row.fingerprint != mark for row in rows):
        return None
    return min(row.upto_completion_id for row in rows)


def held_now(now: datetime, competency_ids: list[int], upto: int,
             live: Callable[[Select], Select]) -> Subquery:
    """(user_id, competency_id) held at ``now``: the table for everyone but the people with
    completions since ``upto`` (computed live by ``live(users)``)."""
    dirty = _dirty_users(upto)
    stored = (select(CompetencyHolding.user_id, CompetencyHolding.competency_id)
              .where(CompetencyHolding.competency_id.in_(competency_ids),
                     or_(CompetencyHolding.held_until.is_(None),
                         CompetencyHolding.held_until > now),
                     CompetencyHolding.user_id.not_in(dirty)))
    return union_all(stored, live(dirty)).subquery("held")

