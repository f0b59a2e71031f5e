"""Learner rules: which version a learner sees, lesson progress, completions, the home list.

Module lookups go through ``catalog.services`` (organisation-scoped ``get_module``, newest
published ``current_version``).
Services flush and never commit: the view commits once.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select, union

from lms_plugin.catalog import services as catalog
from lms_plugin.catalog.models import Lesson, Module, ModuleVersion, Question
from lms_plugin.errors import NotFound
from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion, LessonProgress
from lms_plugin.lti import ags_jobs
from lms_plugin.quizzes import services as quizzes
from lms_plugin.quizzes.models import Attempt


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months later, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


# --------------------------------------------------------------------------- modules
def find_module(organisation_id: int, slug: str) -> Module:
    """A module of this organisation; another organisation's module is a 404."""
    return catalog.get_module(organisation_id, slug)


def current_version(module: Module) -> ModuleVersion | None:
    """The newest published version: what learners take."""
    return catalog.current_version(module)


def preview_version(module: Module) -> ModuleVersion | None:
    """For "preview as learner": the newest draft or published version (what authors work on)."""
    return db.session.scalar(
        select(ModuleVersion)
        .where(ModuleVersion.module_id == module.id, ModuleVersion.status != "retired")
        .order_by(ModuleVersion.number.desc()).limit(1))


def module_and_version(organisation_id: int, slug: str, *,
                       preview: bool = False) -> tuple[Module, ModuleVersion]:
    module = find_module(organisation_id, slug)
    version = preview_version(module) if preview else current_version(module)
    if version is None:
        raise NotFound("This module has not been published yet")
    return module, version


def get_lesson(version: ModuleVersion, position: int) -> Lesson:
    for lesson in version.lessons:
        if lesson.position == position:
            return lesson
    raise NotFound(f"This module has no lesson {position}")


def lesson_body(lesson: Lesson) -> str:
    """The lesson's Markdown without its leading "# Title" line (the page shows the title)."""
    lines = (lesson.body_markdown or "").lstrip("\n").split("\n")
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(lines)


def version_by_id(version_id: int) -> ModuleVersion:
    version = db.session.get(ModuleVersion, version_id)
    if version is None:
        raise NotFound("This module version does not exist")
    return version


def module_of_version(version_id: int) -> int | None:
    return db.session.scalar(select(ModuleVersion.module_id).where(
        ModuleVersion.id == version_id))


def lesson_neighbours(version: ModuleVersion, position: int) -> tuple[int | None, int | None]:
    positions = [lesson.position for lesson in version.lessons]
    index = positions.index(position)
    previous = positions[index - 1] if index > 0 else None
    following = positions[index + 1] if index + 1 < len(positions) else None
    return previous, following


def progress_of(user_id: int, version_id: int) -> LessonProgress | None:
    return db.session.scalar(select(LessonProgress).where(
        LessonProgress.user_id == user_id, LessonProgress.module_version_id == version_id))


def record_lesson_view(user_id: int, version: ModuleVersion, position: int,
                       now: datetime) -> Lesson:
    """Remember the lesson as viewed and as the place to resume. Two tabs opening the first
    lesson at once may collide on the unique row; the view treats that as already recorded."""
    lesson = get_lesson(version, position)
    progress = progress_of(user_id, version.id)
    if progress is None:
        progress = LessonProgress(user_id=user_id, module_version_id=version.id,
                                  viewed_positions=[])
        db.session.add(progress)
    progress.last_position = position
    if position not in (progress.viewed_positions or []):
        progress.viewed_positions = sorted({*(progress.viewed_positions or []), position})
    progress.updated_at = now
    db.session.flush()
    return lesson


# --------------------------------------------------------------------------- completions
def attempt_graded(attempt: Attempt, version: ModuleVersion, now: datetime) -> Completion | None:
    """Called by ``quizzes.services.submit_attempt`` once, in the grading transaction.

    A passed, non-preview attempt records the Completion here.
    NEXT ISSUE (LTI AGS): enqueue the outbox job that sends this attempt's score to the LMS
    gradebook here, in this same transaction, so the grade is sent exactly once per change.
    """
    ags_jobs.enqueue_attempt_score(attempt, version, now)  # LTI AGS: outbox job, same txn
    if attempt.preview or not attempt.passed:
        return None
    expires = add_months(now, version.validity_months) if version.validity_months else None
    completion = Completion(user_id=attempt.user_id, module_id=version.module_id,
                            module_version_id=version.id, attempt_id=attempt.id,
                            score=attempt.score or 0.0, passed=True, completed_at=now,
                            expires_at=expires)
    db.session.add(completion)
    db.session.flush()
    return completion


def valid_completion(user_id: int, module: Module, now: datetime) -> Completion | None:
    """The latest completion still valid: not expired, and earned on or after the newest
    published version that requires retraining."""
    retrain_from = db.session.scalar(
        select(func.max(ModuleVersion.number)).where(
            ModuleVersion.module_id == module.id, ModuleVersion.status == "published",
            ModuleVersion.retraining_required.is_(True)))
    query = (select(Completion).join(ModuleVersion,
                                     ModuleVersion.id == Completion.module_version_id)
             .where(Completion.user_id == user_id, Completion.module_id == module.id,
                    or_(Completion.expires_at.is_(None), Completion.expires_at > now))
             .order_by(Completion.completed_at.desc()))
    if retrain_from is not None:
        query = query.where(ModuleVersion.number >= retrain_from)
    return db.session.scalars(query.limit(1)).first()


def latest_completion(user_id: int, module_id: int) -> Completion | None:
    return db.session.scalars(
        select(Completion).where(Completion.user_id == user_id, Completion.module_id == module_id)
        .order_by(Completion.completed_at.desc()).limit(1)).first()


def submitted_attempt(user_id: int, version_id: int, *, preview: bool,
                      number: int | None = None) -> Attempt | None:
    """The learner's latest graded attempt (or attempt ``number``) on this version."""
    query = select(Attempt).where(
        Attempt.user_id == user_id, Attempt.module_version_id == version_id,
        Attempt.status == "submitted", Attempt.preview.is_(preview))
    if number is not None:
        query = query.where(Attempt.number == number)
    return db.session.scalars(query.order_by(Attempt.number.desc()).limit(1)).first()


# --------------------------------------------------------------------------- overview
@dataclass
class ModuleOverview:
    """Everything the module page and the home list show about one learner and module."""

    module: Module
    version: ModuleVersion
    preview: bool
    lesson_count: int
    viewed: set[int] = field(default_factory=set)
    resume_position: int | None = None
    open_attempt: Attempt | None = None
    last_attempt: Attempt | None = None
    attempts_used: int = 0
    attempts_left: int | None = None  # None = unlimited
    completion: Completion | None = None
    expired_completion: Completion | None = None
    question_count: int = 0

    @property
    def percent_viewed(self) -> int:
        return round(100 * len(self.viewed) / self.lesson_count) if self.lesson_count else 100

    @property
    def can_start(self) -> bool:
        return self.question_count > 0 and (
            self.preview or self.open_attempt is not None
            or self.attempts_left is None or self.attempts_left > 0)

    @property
    def status(self) -> str:
        if self.completion is not None:
            return "Completed"
        if self.open_attempt is not None:
            return "Quiz in progress"
        if self.expired_completion is not None:
            return "Expired"
        if self.last_attempt is not None and not self.last_attempt.passed:
            return "Not passed yet" if self.attempts_left != 0 else "Failed"
        if self.viewed:
            return "In progress"
        return "Not started"


def module_overview(user_id: int, module: Module, version: ModuleVersion, now: datetime, *,
                    preview: bool = False) -> ModuleOverview:
    """Everything the module page shows about one learner and module (see
    :func:`module_overviews`, which it shares with the home list)."""
    return module_overviews(user_id, [(module, version)], now, preview=preview)[0]


def _completion_valid(completion: Completion, version_number: int,
                      retrain_from: int | None, now: datetime) -> bool:
    """The rule of :func:`valid_completion` for one completion already loaded."""
    return ((completion.expires_at is None or completion.expires_at > now)
            and (retrain_from is None or version_number >= retrain_from))


def module_overviews(user_id: int, pairs: list[tuple[Module, ModuleVersion]], now: datetime,
                     *, preview: bool = False) -> list[ModuleOverview]:
    """Overviews of several (module, version) pairs for one learner, in the given order.

    A constant number of statements whatever the number of modules (issue 18 item 6):
    lesson positions, question counts, lesson progress, attempts and attempt counts,
    completions and the retraining floor are each read for every pair at once. A timed-out
    open attempt is marked expired (as :func:`quizzes.open_attempt` does).
    """
    if not pairs:
        return []
    version_ids = [version.id for _, version in pairs]
    module_ids = [module.id for module, _ in pairs]
    positions: dict[int, list[int]] = {vid: [] for vid in version_ids}
    for vid, position in db.session.execute(
            select(Lesson.version_id, Lesson.position)
            .where(Lesson.version_id.in_(version_ids))
            .order_by(Lesson.version_id, Lesson.position)):
        positions[vid].append(position)
    questions = dict.fromkeys(version_ids, 0)
    questions.update(db.session.execute(
        select(Question.version_id, func.count(Question.id))
        .where(Question.version_id.in_(version_ids))
        .group_by(Question.version_id)).all())
    progress: dict[int, LessonProgress] = {}
    attempts: dict[int, list[Attempt]] = {vid: [] for vid in version_ids}
    completions: dict[int, list[tuple[Completion, int]]] = {mid: [] for mid in module_ids}
    retrain_from: dict[int, int] = {}
    used = dict.fromkeys(version_ids, 0)
    for attempt in db.session.scalars(
            select(Attempt).where(Attempt.user_id == user_id,
                                  Attempt.module_version_id.in_(version_ids),
                                  Attempt.preview.is_(preview))
            .order_by(Attempt.number.desc())):
        attempts[attempt.module_version_id].append(attempt)
    if not preview:
        progress = {p.module_version_id: p for p in db.session.scalars(
            select(LessonProgress).where(LessonProgress.user_id == user_id,
                                         LessonProgress.module_version_id.in_(version_ids)))}
        for completion, number in db.session.execute(
                select(Completion, ModuleVersion.number)
                .join(ModuleVersion, ModuleVersion.id == Completion.module_version_id)
                .where(Completion.user_id == user_id, Completion.module_id.in_(module_ids))
                .order_by(Completion.completed_at.desc(), Completion.id.desc())):
            completions[completion.module_id].append((completion, number))
        retrain_from = dict(db.session.execute(
            select(ModuleVersion.module_id, func.max(ModuleVersion.number))
            .where(ModuleVersion.module_id.in_(module_ids),
                   ModuleVersion.status == "published",
                   ModuleVersion.retraining_required.is_(True))
            .group_by(ModuleVersion.module_id)).all())
        used = quizzes.attempts_used_by_version(user_id, version_ids)
    expired = False
    overviews = []
    for module, version in pairs:
        lesson_positions = positions[version.id]
        mine = progress.get(version.id)
        viewed = set(mine.viewed_positions or []) & set(lesson_positions) if mine else set()
        resume = None
        if lesson_positions:
            unviewed = [p for p in lesson_positions if p not in viewed]
            if mine and mine.last_position in lesson_positions:
                resume = mine.last_position
            else:
                resume = unviewed[0] if unviewed else lesson_positions[0]
        open_attempt = next((a for a in attempts[version.id] if a.status == "in_progress"),
                            None)
        if open_attempt is not None and quizzes.past_deadline(open_attempt, now):
            open_attempt.status = "expired"
            open_attempt, expired = None, True
        last = next((a for a in attempts[version.id] if a.status == "submitted"), None)
        history = completions.get(module.id, [])
        completion = next((c for c, number in history if _completion_valid(
            c, number, retrain_from.get(module.id), now)), None)
        latest = history[0][0] if history else None
        question_count = questions[version.id]
        if version.draw_count:
            question_count = min(question_count, version.draw_count)
        attempts_used = 0 if preview else used[version.id]
        overviews.append(ModuleOverview(
            module=module, version=version, preview=preview,
            lesson_count=len(lesson_positions), viewed=viewed, resume_position=resume,
            open_attempt=open_attempt, last_attempt=last, attempts_used=attempts_used,
            attempts_left=None if preview or version.attempt_limit is None
            else max(0, version.attempt_limit - attempts_used),
            completion=completion,
            expired_completion=latest if (latest is not None and completion is None) else None,
            question_count=question_count,
        ))
    if expired:
        db.session.flush()
    return overviews


def _with_newest_version(query, *, published_only: bool):
    """``query`` (selecting Module) joined to each module's newest published version (or,
    for previews, newest not retired): one statement for any number of modules."""
    newest = select(ModuleVersion.module_id,
                    func.max(ModuleVersion.number).label("number"))
    newest = newest.where(ModuleVersion.status == "published") if published_only \
        else newest.where(ModuleVersion.status != "retired")
    newest = newest.group_by(ModuleVersion.module_id).subquery()
    return (query.add_columns(ModuleVersion)
            .join(newest, newest.c.module_id == Module.id)
            .join(ModuleVersion, (ModuleVersion.module_id == Module.id)
                  & (ModuleVersion.number == newest.c.number)))


def home_modules(user_id: int, organisation_id: int, now: datetime, *,
                 launched_slug: str | None = None) -> list[ModuleOverview]:
    """The learner's modules: the one their LMS link launched, and any they have started
    (lessons opened, attempts, completions), newest activity first.

    A constant number of statements however many modules the learner has (one for the
    modules with their current versions, then :func:`module_overviews`).
    """
    started = union(
        select(ModuleVersion.module_id.label("module_id")).join(
            LessonProgress, LessonProgress.module_version_id == ModuleVersion.id)
        .where(LessonProgress.user_id == user_id),
        select(ModuleVersion.module_id).join(
            Attempt, Attempt.module_version_id == ModuleVersion.id)
        .where(Attempt.user_id == user_id, Attempt.preview.is_(False)),
        select(Completion.module_id).where(Completion.user_id == user_id),
    ).subquery()
    chosen = Module.id.in_(select(started.c.module_id))
    if launched_slug:
        chosen = or_(chosen, Module.slug == launched_slug)
    pairs = db.session.execute(
        _with_newest_version(select(Module), published_only=True)
        .where(Module.organisation_id == organisation_id, chosen)
        .order_by(Module.slug)).all()
    entries = module_overviews(user_id, list(pairs), now)
    entries.sort(key=lambda e: (e.module.slug != launched_slug, e.version.title.lower()))
    return entries


def organisation_modules(organisation_id: int) -> list[tuple[Module, ModuleVersion]]:
    """Every module an author/officer/admin may preview, with the version a preview shows
    (newest draft or published): one statement."""
    out = list(db.session.execute(
        _with_newest_version(select(Module), published_only=False)
        .where(Module.organisation_id == organisation_id)).all())
    out.sort(key=lambda mv: mv[1].title.lower())
    return out
