"""Learner rules: which version a learner sees, lesson progress, completions, the home list.

Module lookups go through ``catalog.services`` (organisation-scoped ``get_module``, newest
published ``current_version``).
Services flush and never commit: the view commits once.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, or_, select, union

from lms_plugin import events
from lms_plugin.accounts.models import (
    GRADE_POLICY_HIGHEST,
    GRADE_POLICY_MOST_RECENT,
    Organisation,
)
from lms_plugin.catalog import services as catalog
from lms_plugin.catalog.models import Lesson, Module, ModuleVersion, Question, live_version
from lms_plugin.errors import NotFound
from lms_plugin.extensions import db
from lms_plugin.learning import assignments
from lms_plugin.learning.models import Completion, LessonProgress
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


# --------------------------------------------------------------------------- validity periods
def validity_period_start(user_id: int, module_id: int, now: datetime) -> datetime | None:
    """When the learner's current validity period on this module began (UTC), or None for
    the first period (no completion has lapsed yet: it runs from the beginning).

    A period starts when the previous completion expires (DESIGN: recertification): the
    completions up to ``now`` are merged into spans of continuous validity, and the period
    starts at the end of the latest span that ended at or before ``now``. A re-sit passed
    while an earlier completion was still valid extends the span, so a completion that is
    valid now always lies inside the current period. The one definition of "current
    validity period" for the attempt limit (:func:`start_quiz`, :func:`submit_quiz`,
    :func:`module_overview`) and for the grade policy (:func:`policy_score`).
    """
    rows = db.session.execute(
        select(Completion.completed_at, Completion.expires_at)
        .where(Completion.user_id == user_id, Completion.module_id == module_id,
               Completion.completed_at <= now)).all()
    return period_start_of(rows, now)


def period_start_of(completions: Iterable[tuple[datetime, datetime | None]],
                    now: datetime) -> datetime | None:
    """:func:`validity_period_start` over (completed_at, expires_at) pairs already read, in
    any order; completions after ``now`` are ignored."""
    rows = sorted((c for c in completions if c[0] <= now), key=lambda c: c[0])
    start: datetime | None = None
    span_end: datetime | None = None  # end of the current span of validity
    forever = False  # the current span contains a completion that never expires
    for completed_at, expires_at in rows:
        if span_end is not None and not forever and completed_at > span_end:
            start, span_end = span_end, None  # a lapse: a new span (and period) began
        if expires_at is None:
            forever = True
        elif span_end is None or expires_at > span_end:
            span_end = expires_at
    if span_end is not None and not forever and span_end <= now:
        start = span_end
    return start


def counting_start(user_id: int, module_id: int, now: datetime) -> datetime | None:
    """Where the attempt limit starts counting: the later of the validity period's start
    (:func:`validity_period_start`) and the go-live of the module's live retraining-required
    version (a new assignment cycle, issue 14), None = from the beginning. Extra attempts an
    admin granted count from the same moment (``assignments.extra_attempts``)."""
    since = validity_period_start(user_id, module_id, now)
    floor = retraining_floor_of([module_id], now).get(module_id)
    if floor is not None and (since is None or floor[1] > since):
        since = floor[1]
    return since


def retraining_floor_of(module_ids: Iterable[int],
                        now: datetime) -> dict[int, tuple[int, datetime]]:
    """module id -> (number, go-live) of its newest published retraining-required version
    live at ``now``: completions of earlier versions no longer count. The one retraining
    rule (``assignments.retraining_floors``), read for several modules in one statement."""
    ids = list(module_ids)
    if not ids:
        return {}
    floor = assignments.retraining_floors(now)
    return {module_id: (number, go_live) for module_id, number, go_live in db.session.execute(
        select(floor.c.module_id, floor.c.number, floor.c.go_live)
        .where(floor.c.module_id.in_(ids)))}


def start_quiz(user_id: int, version_id: int, now: datetime, *,
               preview: bool = False) -> Attempt:
    """Start (or resume) a quiz attempt, counting the attempt limit in the learner's current
    validity period (issue 18 item 7): attempts of an earlier period do not count, so a
    learner who used every attempt last year can recertify this year. Conflict (409) when
    the limit of this period is used up; NotFound for an unknown version."""
    module_id = module_of_version(version_id)
    if module_id is None:
        raise NotFound("This module version does not exist")
    since = None if preview else counting_start(user_id, module_id, now)
    extra = 0 if preview else assignments.extra_attempts(user_id, module_id, since)
    return quizzes.start_attempt(user_id, version_id, now, preview=preview,
                                 counted_since=since, extra_attempts=extra)


def submit_quiz(attempt_id: int, user_id: int, responses: Mapping[Any, Any], now: datetime,
                *, submission_key: str | None = None) -> quizzes.SubmitOutcome:
    """Submit a quiz attempt: grade it once, record the completion, announce both.

    Grades with ``quizzes.submit_attempt``, checking the limit in the validity period the
    attempt was started in (the window :func:`start_quiz` counted); the first grading call
    then records the Completion (:func:`attempt_graded`) and sends
    ``events.attempt_graded`` / ``events.completion_recorded`` in this same transaction
    (the LMS gradebook update is an ``lti`` subscriber). A replay (double click, second
    tab) returns the first result and announces nothing. Raises what ``submit_attempt``
    raises (NotFound, Conflict, ValidationFailed) and whatever a subscriber raises; the
    caller commits, or rolls everything back on an exception.
    """
    attempt = quizzes.get_attempt(attempt_id, user_id)
    module_id = module_of_version(attempt.module_version_id)
    since = (None if attempt.preview or module_id is None
             else counting_start(user_id, module_id, attempt.started_at))
    extra = (0 if attempt.preview or module_id is None
             else assignments.extra_attempts(user_id, module_id, since))
    outcome = quizzes.submit_attempt(attempt_id, user_id, responses, now,
                                     submission_key=submission_key, counted_since=since,
                                     extra_attempts=extra)
    if not outcome.already_graded:
        attempt_graded(outcome.attempt, version_by_id(outcome.attempt.module_version_id), now)
    return outcome


# --------------------------------------------------------------------------- grade policy
@dataclass(frozen=True)
class PolicyScore:
    """The score the LMS gradebook should show for one learner and module, and why.

    ``score`` is a percentage (0–100); ``chosen`` is the attempt it comes from; ``latest``
    the most recent graded attempt of the period (the same one under "most_recent").
    """

    policy: str
    score: float
    chosen: Attempt
    latest: Attempt

    @property
    def comment(self) -> str:
        """The gradebook comment: which attempt counts and, when different, the latest."""
        verdict = "passed" if self.chosen.passed else "not passed"
        if self.policy == GRADE_POLICY_HIGHEST:
            text = (f"Highest attempt of the current period: attempt {self.chosen.number}, "
                    f"{self.score:g}% ({verdict})")
        else:
            text = f"Most recent attempt: attempt {self.chosen.number}, {self.score:g}% ({verdict})"
        if self.latest.id != self.chosen.id:
            text += (f"; latest attempt {self.latest.number}: {self.latest.score:g}% "
                     f"({'passed' if self.latest.passed else 'not passed'})")
        return text


def grade_policy_of(organisation_id: int) -> str:
    """The organisation's grade policy ("highest" when the organisation is unknown)."""
    policy = db.session.scalar(select(Organisation.grade_policy).where(
        Organisation.id == organisation_id))
    return policy or GRADE_POLICY_HIGHEST


def policy_score(user_id: int, module_id: int, now: datetime) -> PolicyScore | None:
    """The one rule for which graded attempt the LMS gradebook shows (issue 9 item 2).

    Among the learner's graded, non-preview attempts on this module (any version from the
    newest published *retraining required* one on, as :func:`valid_completion` counts) that
    were submitted in the current validity period (:func:`validity_period_start`) — every
    one graded so far, whatever ``now`` says, so a worker whose clock lags the web node's by
    a few milliseconds still counts the attempt that queued it — the organisation's policy
    picks:

    * ``"highest"`` (default; Moodle quiz's default grading method "Highest grade"): the
      highest score, so a failed re-sit never lowers a recorded completion — the completion's
      own attempt is in the period and is counted;
    * ``"most_recent"`` (Moodle's "Last attempt"): the latest attempt's score, which may be
      lower than a completion that still counts in the tool.

    None when there is no graded attempt in the period (nothing to send).
    """
    module = db.session.get(Module, module_id)
    if module is None:
        return None
    since = validity_period_start(user_id, module_id, now)
    retrain_from = _floor_number(module_id, now)
    query = (select(Attempt).join(ModuleVersion,
                                  ModuleVersion.id == Attempt.module_version_id)
             .where(Attempt.user_id == user_id, ModuleVersion.module_id == module_id,
                    Attempt.status == "submitted", Attempt.preview.is_(False),
                    Attempt.score.is_not(None)))
    if since is not None:
        query = query.where(Attempt.submitted_at >= since)
    if retrain_from is not None:
        query = query.where(ModuleVersion.number >= retrain_from)
    attempts = db.session.scalars(query).all()
    if not attempts:
        return None
    latest = max(attempts, key=lambda a: (a.submitted_at, a.id))
    policy = grade_policy_of(module.organisation_id)
    if policy == GRADE_POLICY_MOST_RECENT:
        chosen = latest
    else:
        chosen = max(attempts, key=lambda a: (float(a.score or 0), a.submitted_at, a.id))
    return PolicyScore(policy=policy, score=float(chosen.score or 0), chosen=chosen,
                       latest=latest)


# --------------------------------------------------------------------------- completions
def attempt_graded(attempt: Attempt, version: ModuleVersion, now: datetime) -> Completion | None:
    """Called by :func:`submit_quiz` once, in the grading transaction, for a newly graded
    ``attempt`` of ``version`` (``now``: the UTC grading time).

    Announces ``events.attempt_graded`` (subscribers such as the LMS gradebook update
    write their outbox rows in this same transaction); a passed, non-preview attempt then
    records the Completion and announces ``events.completion_recorded``. Returns the new
    Completion, or None.
    """
    events.announce(events.attempt_graded, events.AttemptGraded(
        attempt_id=attempt.id, user_id=attempt.user_id, module_id=version.module_id,
        version_id=version.id, attempt_number=attempt.number,
        score=float(attempt.score or 0.0), passed=bool(attempt.passed),
        preview=bool(attempt.preview), when=now))
    if attempt.preview or not attempt.passed:
        return None
    expires = add_months(now, version.validity_months) if version.validity_months else None
    completion = Completion(user_id=attempt.user_id, module_id=version.module_id,
                            module_version_id=version.id, attempt_id=attempt.id,
                            score=attempt.score or 0.0, passed=True, completed_at=now,
                            expires_at=expires)
    db.session.add(completion)
    db.session.flush()
    events.announce(events.completion_recorded, events.CompletionRecorded(
        completion_id=completion.id, attempt_id=attempt.id, user_id=attempt.user_id,
        module_id=version.module_id, version_id=version.id, score=completion.score,
        when=now, expires_at=expires))
    return completion


def _floor_number(module_id: int, now: datetime) -> int | None:
    floor = retraining_floor_of([module_id], now).get(module_id)
    return floor[0] if floor else None


def valid_completion(user_id: int, module: Module, now: datetime) -> Completion | None:
    """The latest completion still valid: not expired, and earned on or after the newest
    published version that requires retraining."""
    retrain_from = _floor_number(module.id, now)
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
    #: The latest completion when it has expired (and none is valid): "complete it again".
    expired_completion: Completion | None = None
    #: When the latest completion has not expired but predates the newest published
    #: retraining-required version (DESIGN "Versions"): that version's number.
    retraining_version: int | None = None
    question_count: int = 0
    #: Critical questions in the pool (issue 17): one missed fails the attempt, so the module
    #: page says so before the learner starts.
    critical_count: int = 0
    #: What the LMS gradebook shows under the organisation's grade policy (module and result
    #: pages only: ``module_overview(..., grade_note=True)``), to tell a learner who has
    #: passed what a new, optional attempt can change.
    gradebook: PolicyScore | None = None

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
        if self.retraining_version is not None:
            return "Retraining required"
        if self.last_attempt is not None and not self.last_attempt.passed:
            return "Not passed yet" if self.attempts_left != 0 else "Failed"
        if self.viewed:
            return "In progress"
        return "Not started"


def module_overview(user_id: int, module: Module, version: ModuleVersion, now: datetime, *,
                    preview: bool = False, grade_note: bool = False) -> ModuleOverview:
    """Everything the module page shows about one learner and module (see
    :func:`module_overviews`, which it shares with the home list); ``grade_note`` also fills
    ``gradebook`` (:func:`policy_score`) when the learner holds a valid completion."""
    overview = module_overviews(user_id, [(module, version)], now, preview=preview)[0]
    if grade_note and overview.completion is not None:
        overview.gradebook = policy_score(user_id, module.id, now)
    return overview


def _completion_valid(completion: Completion, version_number: int,
                      retrain_from: int | None, now: datetime) -> bool:
    """The rule of :func:`valid_completion` for one completion already loaded."""
    return ((completion.expires_at is None or completion.expires_at > now)
            and (retrain_from is None or version_number >= retrain_from))


def module_overviews(user_id: int, pairs: list[tuple[Module, ModuleVersion]], now: datetime,
                     *, preview: bool = False) -> list[ModuleOverview]:
    """Overviews of several (module, version) pairs for one learner, in the given order.

    A constant number of statements whatever the number of modules (issue 18 item 6):
    lesson positions, question counts, lesson progress, attempts, completions and the
    retraining floor are each read for every pair at once. Attempts used and left count in
    the current validity period (:func:`period_start_of`, the rule of
    :func:`validity_period_start`, over the completions already read). A timed-out open
    attempt is marked expired (as :func:`quizzes.open_attempt` does).
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
    critical = dict.fromkeys(version_ids, 0)
    for vid, total, critical_total in db.session.execute(
            select(Question.version_id, func.count(Question.id),
                   func.sum(case((Question.critical, 1), else_=0)))
            .where(Question.version_id.in_(version_ids))
            .group_by(Question.version_id)):
        questions[vid], critical[vid] = total, int(critical_total or 0)
    progress: dict[int, LessonProgress] = {}
    attempts: dict[int, list[Attempt]] = {vid: [] for vid in version_ids}
    completions: dict[int, list[tuple[Completion, int]]] = {mid: [] for mid in module_ids}
    retrain_from: dict[int, int] = {}
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
        retrain_from = {module_id: number for module_id, (number, _) in
                        retraining_floor_of(module_ids, now).items()}
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
        lapsed = latest if (latest is not None and completion is None) else None
        retraining = None
        if lapsed is not None and (lapsed.expires_at is None or lapsed.expires_at > now):
            # Not expired, so it predates a retraining-required version: say which.
            lapsed, retraining = None, retrain_from.get(module.id)
        question_count = questions[version.id]
        if version.draw_count:
            question_count = min(question_count, version.draw_count)
        attempts_used = 0
        if not preview:  # what quizzes.attempts_used counts, in the current period
            since = period_start_of(((c.completed_at, c.expires_at) for c, _ in history), now)
            attempts_used = sum(1 for a in attempts[version.id]
                                if since is None or a.started_at >= since)
        overviews.append(ModuleOverview(
            module=module, version=version, preview=preview,
            lesson_count=len(lesson_positions), viewed=viewed, resume_position=resume,
            open_attempt=open_attempt, last_attempt=last, attempts_used=attempts_used,
            attempts_left=None if preview or version.attempt_limit is None
            else max(0, version.attempt_limit - attempts_used),
            completion=completion,
            expired_completion=lapsed, retraining_version=retraining,
            question_count=question_count, critical_count=critical[version.id],
        ))
    if expired:
        db.session.flush()
    return overviews


def _with_newest_version(query, *, published_only: bool, live: bool = True):
    """``query`` (selecting Module) joined to each module's newest published version (or,
    for previews, newest not retired): one statement for any number of modules.
    ``live`` False: the newest published version even if its go-live is still ahead."""
    newest = select(ModuleVersion.module_id,
                    func.max(ModuleVersion.number).label("number"))
    if published_only:
        newest = newest.where(live_version() if live else ModuleVersion.status == "published")
    else:
        newest = newest.where(ModuleVersion.status != "retired")
    newest = newest.group_by(ModuleVersion.module_id).subquery()
    return (query.add_columns(ModuleVersion)
            .join(newest, newest.c.module_id == Module.id)
            .join(ModuleVersion, (ModuleVersion.module_id == Module.id)
                  & (ModuleVersion.number == newest.c.number)))


def home_modules(user_id: int, organisation_id: int, now: datetime, *,
                 launched_slug: str | None = None,
                 also_module_ids: Iterable[int] = ()) -> list[ModuleOverview]:
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
    extra = list(also_module_ids)
    if extra:
        chosen = or_(chosen, Module.id.in_(extra))
    if launched_slug:
        chosen = or_(chosen, Module.slug == launched_slug)
    pairs = db.session.execute(
        _with_newest_version(select(Module), published_only=True)
        .where(Module.organisation_id == organisation_id, chosen)
        .order_by(Module.slug)).all()
    entries = module_overviews(user_id, list(pairs), now)
    entries.sort(key=lambda e: (e.module.slug != launched_slug, e.version.title.lower()))
    return entries


def organisation_modules(organisation_id: int, *, published: bool = False,
                         ) -> list[tuple[Module, ModuleVersion]]:
    """Every module an author/officer/admin may preview, with the version a preview shows
    (newest draft or published): one statement. ``published``: only modules with a
    published version, with the newest one (go-live ahead or not; a draft open beside it
    does not hide it), as the assignment rule form offers them."""
    out = list(db.session.execute(
        _with_newest_version(select(Module), published_only=published, live=False)
        .where(Module.organisation_id == organisation_id)).all())
    out.sort(key=lambda mv: mv[1].title.lower())
    return out


# --------------------------------------------------------------------------- my training
@dataclass
class TrainingEntry:
    """One module on "My training": what the learner sees of it, and its assignment status
    (None when the module is not assigned to them)."""

    overview: ModuleOverview
    assignment: assignments.StatusRow | None = None


@dataclass
class MyTraining:
    """The learner home (issue 14): ``todo`` (assigned, not currently complete, most urgent
    first), ``completed`` (assigned and valid, with expiry), ``others`` (started or launched
    but not assigned), ``available`` (the rest of the published catalogue: (module,
    version)), and the progress figure ``done`` of ``assigned``."""

    todo: list[TrainingEntry]
    completed: list[TrainingEntry]
    others: list[TrainingEntry]
    available: list[tuple[Module, ModuleVersion]]

    @property
    def assigned(self) -> int:
        return len(self.todo) + len(self.completed)

    @property
    def done(self) -> int:
        return len(self.completed)

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.assigned) if self.assigned else 100


def my_training(user_id: int, organisation_id: int, now: datetime, *,
                launched_slug: str | None = None) -> MyTraining:
    """Everything "My training" shows, in a constant number of statements whatever the
    catalogue size: the assignment statuses (``assignments.module_statuses``, the same
    function reminders and reports use), the overviews of assigned, started and launched
    modules (:func:`home_modules`), and the rest of the published catalogue (one query).
    "Completed" means valid now, expiring soon included (it is listed with its expiry)."""
    statuses = assignments.module_statuses(organisation_id, user_id, now)
    entries = home_modules(user_id, organisation_id, now, launched_slug=launched_slug,
                           also_module_ids=statuses)
    todo, completed, others = [], [], []
    for overview in entries:
        row = statuses.get(overview.module.id)
        entry = TrainingEntry(overview, row)
        if row is None:
            others.append(entry)
        elif row.status in ("completed", "expiring_soon"):
            completed.append(entry)
        else:
            todo.append(entry)
    todo.sort(key=lambda e: e.assignment.urgency)
    completed.sort(key=lambda e: (e.assignment.due_at or assignments.FAR_FUTURE))
    shown = {e.module.id for e in entries}
    available = [(module, version) for module, version in db.session.execute(
        _with_newest_version(select(Module), published_only=True)
        .where(Module.organisation_id == organisation_id)).all() if module.id not in shown]
    available.sort(key=lambda mv: mv[1].title.lower())
    return MyTraining(todo=todo, completed=completed, others=others, available=available)
