"""Quiz rules: drawing an attempt's questions, grading answers, submitting exactly once.

Grading is a pure function of (item type, the question's ``data``, the response) so the rules
content authors rely on (see ``content/README.md``) are tested without a database. Submission
is idempotent: the attempt row is locked (``SELECT … FOR UPDATE`` on PostgreSQL) and moved out
of ``in_progress`` with a compare-and-set update, so a double click, a replayed form or two
tabs grade it once and every later call returns the first result.

Services flush and never commit: the view (or test) commits once.
"""

from __future__ import annotations

import math
import random
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select, update

from lms_plugin.catalog.models import ITEM_TYPES, ModuleVersion, Question
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.quizzes.models import Attempt, AttemptAnswer

# A submission that left the browser just before the deadline still counts.
GRACE = timedelta(seconds=30)
CHOICE_TYPES = ("single_choice", "multiple_response")


# --------------------------------------------------------------------------- grading
@dataclass(frozen=True)
class GradeResult:
    """The share of a question's points earned, whether it was fully right, and feedback."""

    fraction: float
    correct: bool
    feedback: str = ""


def _result(fraction: float, feedback: str = "") -> GradeResult:
    fraction = max(0.0, min(1.0, fraction))
    return GradeResult(fraction=fraction, correct=fraction >= 1.0, feedback=feedback)


def _blank(response: Any) -> bool:
    return response is None or (isinstance(response, str) and not response.strip())


def _ids(items: Sequence[Mapping[str, Any]] | None) -> list[str]:
    return [str(item["id"]) for item in items or []]


def _check_ids(chosen: Sequence[Any], valid: Sequence[str], what: str) -> list[str]:
    out = []
    for value in chosen:
        if not isinstance(value, str | int) or isinstance(value, bool) or str(value) not in valid:
            raise ValidationFailed(f"{value!r} is not one of this question's {what}",
                                   field="responses")
        out.append(str(value))
    return out


def _option_feedback(options: Sequence[Mapping[str, Any]], chosen: Sequence[str]) -> str:
    texts = {str(o["id"]): str(o.get("feedback") or "") for o in options}
    return " ".join(texts[c] for c in chosen if texts.get(c))


_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


def parse_number(value: Any) -> Decimal:
    """A learner's number: plain decimal, optional thousands commas; anything else is a 422."""
    if isinstance(value, bool):
        raise ValidationFailed("A number is required", field="responses")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationFailed("A number is required", field="responses")
        return Decimal(str(value))
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if _THOUSANDS.match(text):
            text = text.replace(",", "")
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = None
        if number is not None and number.is_finite():
            return number
        raise ValidationFailed(f"{value!r} is not a number", field="responses")
    raise ValidationFailed("A number is required", field="responses")


def normalise_text(text: str) -> str:
    """Case-insensitive, surrounding and repeated whitespace ignored (the short_text rule)."""
    return " ".join(text.split()).casefold()


def grade_question(question_type: str, data: Mapping[str, Any], response: Any) -> GradeResult:
    """Grade one response. A blank response scores 0; a malformed one raises ValidationFailed.

    ``response`` shapes: single_choice an option id; multiple_response a list of option ids;
    true_false a bool (or "true"/"false"); ordering a list of item ids by position (blanks
    allowed); matching a mapping pair id -> match text; numeric a number or numeric string;
    short_text a string.
    """
    if question_type not in ITEM_TYPES:
        raise ValidationFailed(f"Unknown question type {question_type!r}")
    grader = _GRADERS[question_type]
    return grader(data, response)


def _grade_single(data: Mapping[str, Any], response: Any) -> GradeResult:
    if _blank(response):
        return _result(0.0, "No answer given.")
    options = data.get("options") or []
    (chosen,) = _check_ids([response], _ids(options), "options")
    return _result(1.0 if chosen == str(data.get("answer")) else 0.0,
                   _option_feedback(options, [chosen]))


def _grade_multiple(data: Mapping[str, Any], response: Any) -> GradeResult:
    if _blank(response):
        response = []
    if isinstance(response, str | int):
        response = [response]
    if not isinstance(response, list | tuple | set | frozenset):
        raise ValidationFailed("A list of option ids is required", field="responses")
    options = data.get("options") or []
    chosen = list(dict.fromkeys(_check_ids(list(response), _ids(options), "options")))
    correct = {str(a) for a in data.get("answer") or []}
    if not chosen:
        return _result(0.0, "No answer given.")
    feedback = _option_feedback(options, chosen)
    if data.get("scoring", "partial") == "all_or_nothing":
        return _result(1.0 if set(chosen) == correct else 0.0, feedback)
    right = sum(1 for c in chosen if c in correct)
    wrong = len(chosen) - right
    return _result(max(0.0, (right - wrong) / len(correct)) if correct else 0.0, feedback)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValidationFailed(f"{value!r} is not true or false", field="responses")


def _grade_true_false(data: Mapping[str, Any], response: Any) -> GradeResult:
    if _blank(response):
        return _result(0.0, "No answer given.")
    given = _as_bool(response)
    feedback_map = data.get("feedback") or {}
    key = "true" if given else "false"
    feedback = feedback_map.get(key) or feedback_map.get(given) or ""
    return _result(1.0 if given == _as_bool(data.get("answer")) else 0.0, str(feedback))


def _grade_ordering(data: Mapping[str, Any], response: Any) -> GradeResult:
    if _blank(response):
        response = []
    if not isinstance(response, list | tuple):
        raise ValidationFailed("A list of item ids in order is required", field="responses")
    items = _ids(data.get("items"))
    answer = [str(a) for a in data.get("answer") or []]
    if len(response) > len(items):
        raise ValidationFailed("More positions than items were given", field="responses")
    given = [None if _blank(r) else _check_ids([r], items, "items")[0] for r in response]
    if not any(given):
        return _result(0.0, "No answer given.")
    given += [None] * (len(answer) - len(given))
    in_place = sum(1 for g, a in zip(given, answer, strict=False) if g == a)
    if data.get("scoring", "all_or_nothing") == "partial":
        return _result(in_place / len(answer) if answer else 0.0)
    return _result(1.0 if in_place == len(answer) else 0.0)


def matching_choices(data: Mapping[str, Any]) -> list[str]:
    """Every match text a learner may pick: the pairs' matches plus distractors, deduplicated."""
    texts = [str(p["match"]) for p in data.get("pairs") or []]
    texts += [str(d) for d in data.get("distractors") or []]
    return list(dict.fromkeys(texts))


def _grade_matching(data: Mapping[str, Any], response: Any) -> GradeResult:
    if _blank(response):
        response = {}
    if not isinstance(response, Mapping):
        raise ValidationFailed("A mapping of prompt ids to matches is required",
                               field="responses")
    pairs = data.get("pairs") or []
    pair_ids = _ids(pairs)
    choices = set(matching_choices(data))
    _check_ids(list(response.keys()), pair_ids, "prompts")
    given: dict[str, str] = {}
    for key, value in response.items():
        if _blank(value):
            continue
        if not isinstance(value, str) or value not in choices:
            raise ValidationFailed(f"{value!r} is not one of this question's matches",
                                   field="responses")
        given[str(key)] = value
    if not given:
        return _result(0.0, "No answer given.")
    right = sum(1 for p in pairs if given.get(str(p["id"])) == str(p["match"]))
    return _result(right / len(pairs) if pairs else 0.0)


def _grade_numeric(data: Mapping[str, Any], response: Any) -> GradeResult:
    if _blank(response):
        return _result(0.0, "No answer given.")
    given = parse_number(response)
    answer = Decimal(str(data.get("answer")))
    tolerance = Decimal(str(data.get("tolerance") or 0))
    if data.get("tolerance_type", "absolute") == "percent":
        tolerance = tolerance * abs(answer) / Decimal(100)
    return _result(1.0 if abs(given - answer) <= tolerance else 0.0)


def _grade_short_text(data: Mapping[str, Any], response: Any) -> GradeResult:
    if _blank(response):
        return _result(0.0, "No answer given.")
    if not isinstance(response, str):
        raise ValidationFailed("A text answer is required", field="responses")
    accepted = {normalise_text(str(a)) for a in data.get("accepted") or []}
    return _result(1.0 if normalise_text(response) in accepted else 0.0)


_GRADERS = {
    "single_choice": _grade_single,
    "multiple_response": _grade_multiple,
    "true_false": _grade_true_false,
    "ordering": _grade_ordering,
    "matching": _grade_matching,
    "numeric": _grade_numeric,
    "short_text": _grade_short_text,
}


def points_of(question: Question) -> float:
    return float((question.data or {}).get("points", 1))


def attempt_score(weighted: Sequence[tuple[float, float]]) -> float:
    """100 × Σ(points × fraction) / Σ(points), rounded to 2 decimals."""
    total = sum(points for points, _ in weighted)
    if total <= 0:
        return 0.0
    return round(100 * sum(points * fraction for points, fraction in weighted) / total, 2)


def attempt_passes(score: float, pass_mark: int, critical_missed: Sequence[Question]) -> bool:
    """Pass = score (percent) at least ``pass_mark`` AND no critical question missed: a
    critical item (a high-alert dose, a wrong-patient scenario) not fully right fails the
    attempt whatever the score, 95% included (issue 17). "Missed" = not fully correct, so a
    partly right critical multiple-response item fails too."""
    return score >= pass_mark and not critical_missed


# --------------------------------------------------------------------------- drawing
def _shown_ids(question: Question) -> list[str] | None:
    data = question.data or {}
    if question.type in CHOICE_TYPES:
        return _ids(data.get("options"))
    if question.type == "ordering":
        return _ids(data.get("items"))
    if question.type == "matching":
        return _ids(data.get("pairs"))
    return None


def draw(questions: Sequence[Question], *, draw_count: int | None, shuffle_questions: bool,
         shuffle_options: bool, seed: int) -> tuple[list[int], dict[str, list[str]]]:
    """Pick and order an attempt's questions and options from ``seed`` alone (reproducible).

    Ordering items and matching choices are always shuffled (shown in authored order they
    would give the answer away); choice options and matching prompts follow the version's
    ``shuffle_options``.
    """
    rng = random.Random(seed)
    pool = sorted(questions, key=lambda q: q.position)
    if draw_count is not None and 0 < draw_count < len(pool):
        chosen = rng.sample(pool, draw_count)
    else:
        chosen = list(pool)
    if shuffle_questions:
        rng.shuffle(chosen)
    else:
        chosen.sort(key=lambda q: q.position)
    orders: dict[str, list[str]] = {}
    for question in chosen:
        ids = _shown_ids(question)
        if ids is None:
            continue
        if question.type == "ordering" or shuffle_options:
            rng.shuffle(ids)
        orders[str(question.id)] = ids
        if question.type == "matching":
            choices = matching_choices(question.data or {})
            rng.shuffle(choices)
            orders[f"{question.id}:choices"] = choices
    return [q.id for q in chosen], orders


# --------------------------------------------------------------------------- attempts
def _past_deadline(attempt: Attempt, now: datetime) -> bool:
    return attempt.deadline_at is not None and now > attempt.deadline_at + GRACE


def past_deadline(attempt: Attempt, now: datetime) -> bool:
    """Whether an in-progress attempt's time limit (plus the grace period) has passed."""
    return _past_deadline(attempt, now)


def in_progress_attempt(user_id: int, version_id: int, *, preview: bool) -> Attempt | None:
    return db.session.scalar(
        select(Attempt)
        .where(Attempt.user_id == user_id, Attempt.module_version_id == version_id,
               Attempt.status == "in_progress", Attempt.preview.is_(preview))
        .order_by(Attempt.number.desc())
    )


def open_attempt(user_id: int, version_id: int, now: datetime, *,
                 preview: bool = False) -> Attempt | None:
    """The attempt the learner may still answer, or None (a timed-out one is marked expired)."""
    attempt = in_progress_attempt(user_id, version_id, preview=preview)
    if attempt is not None and _past_deadline(attempt, now):
        attempt.status = "expired"
        db.session.flush()
        return None
    return attempt


def _counted(user_id: int, version_id: int, counted_since: datetime | None) -> list[Any]:
    """The conditions of an attempt that counts against the limit: this person and version,
    not a preview, started in the counting window (``counted_since`` onwards)."""
    conditions = [Attempt.user_id == user_id, Attempt.module_version_id == version_id,
                  Attempt.preview.is_(False)]
    if counted_since is not None:
        conditions.append(Attempt.started_at >= counted_since)
    return conditions


def attempts_used(user_id: int, version_id: int, *,
                  counted_since: datetime | None = None) -> int:
    """Attempts that count against the limit (preview sittings never do).

    ``counted_since`` is the start of the learner's current validity period
    (``learning.services.validity_period_start``): attempts started before it belong to an
    earlier period and no longer count, so a learner recertifying a year later has the full
    limit again (issue 18 item 7). None counts every attempt on the version.
    """
    return db.session.scalar(
        select(func.count(Attempt.id)).where(*_counted(user_id, version_id, counted_since))
    ) or 0


def attempts_left(user_id: int, version: ModuleVersion, *,
                  counted_since: datetime | None = None) -> int | None:
    """None = unlimited; otherwise the attempts left in the counting window."""
    if version.attempt_limit is None:
        return None
    return max(0, version.attempt_limit
               - attempts_used(user_id, version.id, counted_since=counted_since))


def start_attempt(user_id: int, module_version_id: int, now: datetime, *,
                  preview: bool = False, seed: int | None = None,
                  counted_since: datetime | None = None, extra_attempts: int = 0) -> Attempt:
    """Start a quiz sitting, or resume the one still in progress (a reload, a second tab).

    The attempt limit counts the attempts started since ``counted_since`` (the start of the
    learner's validity period, see :func:`attempts_used`); ``extra_attempts`` an admin granted
    in that window raise the limit (issue 14). Conflict (409) when it is used up.
    Two simultaneous starts collide on the unique (user, version, number) constraint; the
    caller rolls back and finds the other one's attempt with ``open_attempt``.
    """
    version = db.session.get(ModuleVersion, module_version_id)
    if version is None:
        raise NotFound("This module version does not exist")
    current = open_attempt(user_id, version.id, now, preview=preview)
    if current is not None:
        return current
    if (not preview and version.attempt_limit is not None
            and attempts_used(user_id, version.id, counted_since=counted_since)
            >= version.attempt_limit + extra_attempts):
        raise Conflict(f"You have used all {version.attempt_limit + extra_attempts} attempts "
                       "allowed for this quiz, so a new attempt cannot be started.")
    if not version.questions:
        raise Conflict("This module has no quiz questions yet.")
    seed = secrets.randbelow(2**31) if seed is None else seed
    question_ids, orders = draw(
        version.questions, draw_count=version.draw_count,
        shuffle_questions=version.shuffle_questions, shuffle_options=version.shuffle_options,
        seed=seed)
    number = (db.session.scalar(
        select(func.max(Attempt.number)).where(Attempt.user_id == user_id,
                                               Attempt.module_version_id == version.id)
    ) or 0) + 1
    deadline = (now + timedelta(minutes=version.time_limit_minutes)
                if version.time_limit_minutes else None)
    attempt = Attempt(user_id=user_id, module_version_id=version.id, number=number,
                      preview=preview, status="in_progress", seed=seed,
                      question_ids=question_ids, option_orders=orders, started_at=now,
                      deadline_at=deadline)
    db.session.add(attempt)
    db.session.flush()
    return attempt


def get_attempt(attempt_id: int, user_id: int) -> Attempt:
    """Someone else's attempt is indistinguishable from a missing one (404)."""
    attempt = db.session.scalar(
        select(Attempt).where(Attempt.id == attempt_id, Attempt.user_id == user_id))
    if attempt is None:
        raise NotFound("This quiz attempt does not exist")
    return attempt


def drawn_questions(attempt: Attempt) -> list[Question]:
    """The attempt's questions in the order they were shown."""
    rows = db.session.scalars(
        select(Question).where(Question.id.in_(attempt.question_ids),
                               Question.version_id == attempt.module_version_id)).all()
    by_id = {q.id: q for q in rows}
    return [by_id[qid] for qid in attempt.question_ids if qid in by_id]


@dataclass
class SubmitOutcome:
    attempt: Attempt
    already_graded: bool  # True when this call found the attempt graded by an earlier one
    answers: list[AttemptAnswer] = field(default_factory=list)


def _normalise_responses(attempt: Attempt, responses: Mapping[Any, Any]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    drawn = set(attempt.question_ids)
    for key, value in responses.items():
        try:
            qid = int(key)
        except (TypeError, ValueError):
            qid = None
        if qid is None or qid not in drawn:
            raise ValidationFailed(f"Question {key!r} is not part of this attempt",
                                   field="responses")
        out[qid] = value
    return out


def submit_attempt(attempt_id: int, user_id: int, responses: Mapping[Any, Any],
                   now: datetime, *, submission_key: str | None = None,
                   counted_since: datetime | None = None,
                   extra_attempts: int = 0) -> SubmitOutcome:
    """Grade the attempt once. Later calls (double click, second tab) return the first result.

    ``counted_since``: the start of the validity period the attempt was started in (the same
    window :func:`start_attempt` counted); attempts before it do not count against the limit.

    Refused with nothing written: another person's attempt (404), a closed or timed-out
    attempt (409), an attempt beyond the limit (409), a response naming an option, item,
    prompt or question that is not in this attempt (422).
    """
    attempt = db.session.scalar(
        select(Attempt)
        .where(Attempt.id == attempt_id, Attempt.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if attempt is None:
        raise NotFound("This quiz attempt does not exist")
    if attempt.status == "submitted":
        return SubmitOutcome(attempt, already_graded=True, answers=list(attempt.answers))
    if attempt.status == "expired" or _past_deadline(attempt, now):
        raise Conflict("The time limit for this attempt has passed, so these answers were not "
                       "graded. Return to the module to start a new attempt if you have "
                       "attempts left.")
    version = db.session.get(ModuleVersion, attempt.module_version_id)
    if not attempt.preview and version.attempt_limit is not None:
        earlier = db.session.scalar(select(func.count(Attempt.id)).where(
            *_counted(user_id, version.id, counted_since),
            Attempt.number <= attempt.number)) or 0
        if earlier > version.attempt_limit + extra_attempts:
            raise Conflict("This attempt is beyond the limit of "
                           f"{version.attempt_limit + extra_attempts} attempts, so it was "
                           "not graded.")

    given = _normalise_responses(attempt, responses)
    graded: list[tuple[Question, Any, GradeResult]] = []
    for question in drawn_questions(attempt):  # validate and grade everything before writing
        response = given.get(question.id)
        graded.append((question, response, grade_question(question.type, question.data or {},
                                                          response)))
    score = attempt_score([(points_of(q), r.fraction) for q, _, r in graded])
    passed = attempt_passes(score, version.pass_mark,
                            [q for q, _, r in graded if q.critical and not r.correct])

    # Compare-and-set: only the call that moves the row out of in_progress grades it (the
    # row lock already serialises PostgreSQL; this also holds where FOR UPDATE is a no-op).
    # RETURNING tells whether this call moved it; ``rowcount`` may be -1 (issue 9).
    moved = db.session.execute(
        update(Attempt)
        .where(Attempt.id == attempt.id, Attempt.status == "in_progress")
        .values(status="submitted", submitted_at=now, score=score, passed=passed,
                submission_key=submission_key)
        .returning(Attempt.id)
        .execution_options(synchronize_session=False)
    ).first()
    if moved is None:
        db.session.refresh(attempt)
        if attempt.status == "submitted":
            return SubmitOutcome(attempt, already_graded=True, answers=list(attempt.answers))
        raise Conflict("This attempt is no longer open, so these answers were not graded.")
    db.session.refresh(attempt)

    answers = []
    for question, response, result in graded:
        answer = AttemptAnswer(attempt_id=attempt.id, question_id=question.id,
                               response=_jsonable(response), fraction=result.fraction,
                               correct=result.correct, feedback=result.feedback[:4000])
        db.session.add(answer)
        answers.append(answer)
    db.session.flush()
    # What follows a grade (the completion, the domain events that reach the LMS) is the
    # caller's: ``learning.services.submit_quiz`` orchestrates it, so quizzes knows neither.
    return SubmitOutcome(attempt, already_graded=False, answers=answers)


def _jsonable(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return value


def describe_response(question: Question, response: Any) -> str:
    """A learner-readable rendering of a stored response for the result page."""
    data = question.data or {}
    if _blank(response) or response in ([], {}):
        return "No answer given"
    if question.type in CHOICE_TYPES:
        texts = {str(o["id"]): str(o.get("text", o["id"])) for o in data.get("options") or []}
        chosen = response if isinstance(response, list) else [response]
        return "; ".join(texts.get(str(c), str(c)) for c in chosen)
    if question.type == "true_false":
        return "True" if _as_bool(response) else "False"
    if question.type == "ordering":
        texts = {str(i["id"]): str(i.get("text", i["id"])) for i in data.get("items") or []}
        return " → ".join(texts.get(str(r), "(blank)") if r else "(blank)" for r in response)
    if question.type == "matching":
        prompts = {str(p["id"]): str(p.get("prompt", p["id"])) for p in data.get("pairs") or []}
        return "; ".join(f"{prompts.get(str(k), k)}: {v or '(blank)'}"
                         for k, v in response.items())
    if question.type == "numeric":
        units = data.get("units")
        return f"{response} {units}" if units else str(response)
    return str(response)
