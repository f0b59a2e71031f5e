"""Item analysis for authors (issue 16): per question of one module version, the % correct,
the corrected point-biserial discrimination, how often each option was chosen, and flags,
with the number of answers behind every figure.

Data: every graded answer of every submitted, non-preview attempt on the version (each
attempt counted as independent, as Moodle's statistics allow for quizzes with several
attempts: docs.moodle.org/dev/Quiz_statistics_calculations, "Quizzes that allow multiple
attempts").

* **% correct**: share of answers graded fully correct (``AttemptAnswer.correct``).
* **Discrimination**: the *corrected* point-biserial correlation, Pearson's r between the
  item score x (``fraction``, 0..1) and the rest score y (the attempt's other items' total),
  so the item does not correlate with itself (Moodle "Discrimination index" = 100 r(x, X - x),
  Quiz_statistics_calculations). The database returns n, Σx, Σy, Σxy, Σx², Σy² per question
  in ONE grouped statement; only r's closed form is evaluated here. None when n < 2 or either
  variance is 0.
* **Options** (single choice, multiple response, true/false): answers per distinct response,
  grouped in the database; the counts per option are summed from those groups.
* **Flags**: too easy (> 90 % correct), too hard (< 20 % correct), negative discrimination
  (r < 0), possibly miskeyed (a distractor chosen more often than the key; for multiple
  response, a distractor chosen more than the least-chosen key option). Thresholds: the
  30-70 % facility band item-analysis guides aim for, widened so only clear outliers flag.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, and_, case, cast, func, literal, select

from lms_plugin.catalog.models import Module, ModuleVersion, Question
from lms_plugin.errors import NotFound
from lms_plugin.extensions import db
from lms_plugin.quizzes.models import Attempt, AttemptAnswer
from lms_plugin.reports.exports import Table

TOO_EASY = 90.0
TOO_HARD = 20.0
CHOICE_TYPES = ("single_choice", "multiple_response", "true_false")


@dataclass
class ItemStats:
    question_id: int
    position: int
    key: str
    type: str
    prompt: str
    answers: int
    percent_correct: float | None
    discrimination: float | None
    #: (option id, option text, times chosen, is a key)
    options: list[tuple[str, str, int, bool]] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


def module_versions(organisation_id: int, slug: str) -> tuple[Module, list[ModuleVersion]]:
    module = db.session.scalar(select(Module).where(Module.organisation_id == organisation_id,
                                                    Module.slug == slug))
    if module is None:
        raise NotFound("There is no such module.")
    return module, sorted(module.versions, key=lambda v: v.number, reverse=True)


def _graded(version: ModuleVersion):
    """Answers to the version's questions in its submitted, non-preview attempts. The
    answers are found through their question ids (indexed), not by scanning every answer
    for the attempt ids (which the planner does when a version has many attempts)."""
    return and_(AttemptAnswer.question_id.in_([q.id for q in version.questions]),
                Attempt.module_version_id == version.id, Attempt.status == "submitted",
                Attempt.preview.is_(False))


def _sums(version: ModuleVersion) -> dict[int, tuple[int, int, float, float, float, float,
                                                     float]]:
    """question id -> (n, correct, Σx, Σy, Σxy, Σx², Σy²) with y = attempt total - x.

    One pass: each answer carries its attempt's total through a window (``SUM … OVER
    (PARTITION BY attempt_id)``), then one GROUP BY question."""
    per_answer = (select(AttemptAnswer.question_id.label("q"), AttemptAnswer.correct.label("ok"),
                         AttemptAnswer.fraction.label("x"),
                         (func.sum(AttemptAnswer.fraction)
                          .over(partition_by=AttemptAnswer.attempt_id)
                          - AttemptAnswer.fraction).label("y"))
                  .join(Attempt, Attempt.id == AttemptAnswer.attempt_id)
                  .where(_graded(version)).subquery("per_answer"))
    x, y = per_answer.c.x, per_answer.c.y
    rows = db.session.execute(
        select(per_answer.c.q, func.count(),
               func.sum(case((per_answer.c.ok.is_(True), literal(1)), else_=0)),
               func.sum(x), func.sum(y), func.sum(x * y), func.sum(x * x), func.sum(y * y))
        .group_by(per_answer.c.q)).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def pearson(n: int, sx: float, sy: float, sxy: float, sxx: float, syy: float) -> float | None:
    """Pearson's r from sums; None when undefined (n < 2 or a variance of 0)."""
    if n < 2:
        return None
    cov = n * sxy - sx * sy
    vx = n * sxx - sx * sx
    vy = n * syy - sy * sy
    if vx <= 1e-12 or vy <= 1e-12:
        return None
    return cov / math.sqrt(vx * vy)


def _choices(version: ModuleVersion) -> dict[int, list[tuple[Any, int]]]:
    """question id -> [(decoded response, answers)] for the choice questions, grouped in SQL
    on the response's JSON text."""
    text = cast(AttemptAnswer.response, String)
    rows = db.session.execute(
        select(AttemptAnswer.question_id, text, func.count())
        .join(Attempt, Attempt.id == AttemptAnswer.attempt_id)
        .join(Question, Question.id == AttemptAnswer.question_id)
        .where(_graded(version), Question.type.in_(CHOICE_TYPES))
        .group_by(AttemptAnswer.question_id, text)).all()
    result: dict[int, list[tuple[Any, int]]] = {}
    for question_id, raw, count in rows:
        try:
            value = json.loads(raw) if raw is not None else None
        except ValueError:
            value = raw
        result.setdefault(question_id, []).append((value, count))
    return result


def _as_tf(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower()
    return None


def _options(question: Question, groups: list[tuple[Any, int]]) -> list[tuple[str, str, int, bool]]:
    data = question.data or {}
    counts: Counter[str] = Counter()
    if question.type == "true_false":
        for value, n in groups:
            if (tf := _as_tf(value)) is not None:
                counts[tf] += n
        key = "true" if data.get("answer") in (True, "true") else "false"
        return [(v, v.capitalize(), counts[v], v == key) for v in ("true", "false")]
    keys = data.get("answer")
    keys = {str(k) for k in keys} if isinstance(keys, list) else {str(keys)}
    for value, n in groups:
        for chosen in value if isinstance(value, list) else [value]:
            if chosen not in (None, ""):
                counts[str(chosen)] += n
    return [(str(o["id"]), str(o.get("text", o["id"])), counts[str(o["id"])],
             str(o["id"]) in keys) for o in data.get("options") or []]


def _flags(stats: ItemStats) -> list[str]:
    flags = []
    if stats.percent_correct is not None and stats.percent_correct > TOO_EASY:
        flags.append("too easy")
    if stats.percent_correct is not None and stats.percent_correct < TOO_HARD:
        flags.append("too hard")
    if stats.discrimination is not None and stats.discrimination < 0:
        flags.append("negative discrimination")
    keyed = [n for _, _, n, is_key in stats.options if is_key]
    distractors = [n for _, _, n, is_key in stats.options if not is_key]
    if keyed and distractors and max(distractors) > min(keyed):
        flags.append("possibly miskeyed")
    return flags


def item_analysis(version: ModuleVersion) -> list[ItemStats]:
    """The version's questions in position order with their statistics (two grouped
    statements plus the questions)."""
    sums = _sums(version)
    choices = _choices(version)
    result = []
    for question in sorted(version.questions, key=lambda q: q.position):
        n, correct, sx, sy, sxy, sxx, syy = sums.get(question.id, (0, 0, 0, 0, 0, 0, 0))
        r = pearson(n, sx or 0, sy or 0, sxy or 0, sxx or 0, syy or 0)
        stats = ItemStats(
            question_id=question.id, position=question.position, key=question.key,
            type=question.type, prompt=question.prompt, answers=n,
            percent_correct=round(100.0 * (correct or 0) / n, 1) if n else None,
            discrimination=round(r, 2) if r is not None else None,
            options=_options(question, choices.get(question.id, []))
            if question.type in CHOICE_TYPES else [])
        stats.flags = _flags(stats)
        result.append(stats)
    return result


HEADERS = ["#", "Question", "Type", "Answers", "% correct", "Discrimination",
           "Options chosen (* key)", "Flags"]


def options_text(stats: ItemStats) -> str:
    return "; ".join(f"{'*' if is_key else ''}{oid}: {n}"
                     for oid, _, n, is_key in stats.options)


def item_rows(items: list[ItemStats]) -> list[tuple[Any, ...]]:
    """The page's (and the export's) rows."""
    return [(s.position, s.key, s.type, s.answers, s.percent_correct, s.discrimination,
             options_text(s), ", ".join(s.flags)) for s in items]


def item_table(version: ModuleVersion, filters: dict[str, str]) -> Table:
    """The item analysis as an export :class:`Table` (one row per question: computed rows,
    no streaming needed)."""
    rows = item_rows(item_analysis(version))
    return Table(report="item_analysis", title="Item analysis", headers=HEADERS,
                 rows=rows, filters=dict(filters))
