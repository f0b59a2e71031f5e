"""Learner pages: home, module overview, lessons, quiz attempt, submission and result.

Views stay thin: they read the request, call one service and render or redirect; grading and
every rule live in ``quizzes.services`` and ``learning.services``. Authors, officers and admins
"preview as learner" with ``?preview=1`` (forced for people without the learner role): the same
pages, on the newest draft or published version, with attempts marked as preview that never
count against a limit nor become completions.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from lms_plugin.authz import allow
from lms_plugin.db import utcnow
from lms_plugin.errors import Forbidden, NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.learning import services
from lms_plugin.learning.forms import (
    StartQuizForm,
    SubmitQuizForm,
    answered,
    field_name,
    responses_from_form,
)
from lms_plugin.markdown import render_markdown
from lms_plugin.quizzes import services as quizzes
from lms_plugin.routing import query_int

bp = Blueprint("learning", __name__, template_folder="templates")

LEARNER_PAGES = ("learner", "author", "officer", "admin")
PREVIEWERS = frozenset({"author", "officer", "admin"})


def _preview_mode() -> bool:
    wanted = (request.values.get("preview") or "") == "1"
    if wanted or not current_user.has_role("learner"):
        if not current_user.role_names & PREVIEWERS:
            raise Forbidden("Only authors, officers and admins can preview modules as a learner.")
        return True
    return False


def _module_for(slug: str):
    """Preview mode for this request, and the module with the version this person sees."""
    preview = _preview_mode()
    mod, version = services.module_and_version(current_user.organisation_id, slug,
                                               preview=preview)
    return preview, mod, version


def _pv(preview: bool) -> dict[str, str]:
    """URL arguments that keep preview mode on the next page."""
    return {"preview": "1"} if preview else {}


@bp.get("/home")
@allow(*LEARNER_PAGES)
def home():
    lti = session.get("lti") or {}
    training = services.my_training(current_user.id, current_user.organisation_id, utcnow(),
                                    launched_slug=lti.get("module_slug"))
    previewable = (services.organisation_modules(current_user.organisation_id)
                   if current_user.role_names & PREVIEWERS else [])
    return render_template("learning/home.html", t=training, previewable=previewable)


@bp.get("/modules/<slug>")
@allow(*LEARNER_PAGES)
def module(slug: str):
    preview, mod, version = _module_for(slug)
    overview = services.module_overview(current_user.id, mod, version, utcnow(),
                                        preview=preview, grade_note=True)
    form = StartQuizForm(preview="1" if preview else "")
    return render_template("learning/module.html", o=overview, form=form, pv=_pv(preview))


@bp.get("/modules/<slug>/lessons/<int:position>")
@allow(*LEARNER_PAGES)
def lesson(slug: str, position: int):
    preview, mod, version = _module_for(slug)
    if preview:
        page = services.get_lesson(version, position)
    else:
        page = services.record_lesson_view(current_user.id, version, position, utcnow())
        try:
            db.session.commit()
        except IntegrityError:  # another tab recorded the first view at the same moment
            db.session.rollback()
            page = services.get_lesson(version, position)
    previous, following = services.lesson_neighbours(version, position)
    body = render_markdown(services.lesson_body(page), mod.id,
                           highlight_local=version.status == "draft")
    return render_template("learning/lesson.html", module=mod, version=version, lesson=page,
                           body=body, previous=previous, following=following,
                           index=[lsn.position for lsn in version.lessons].index(position) + 1,
                           pv=_pv(preview), preview=preview)


@bp.post("/modules/<slug>/quiz/start")
@allow(*LEARNER_PAGES)
def start_quiz(slug: str):
    preview, _, version = _module_for(slug)
    try:
        services.start_quiz(current_user.id, version.id, utcnow(), preview=preview)
        db.session.commit()
    except IntegrityError:  # a second tab started one at the same moment: resume that one
        db.session.rollback()
    return redirect(url_for("learning.attempt", slug=slug, **_pv(preview)))


@bp.get("/modules/<slug>/quiz")
@allow(*LEARNER_PAGES)
def attempt(slug: str):
    preview, mod, version = _module_for(slug)
    now = utcnow()
    current = quizzes.open_attempt(current_user.id, version.id, now, preview=preview)
    if current is None:
        db.session.commit()  # keeps an attempt marked expired when its time ran out
        flash("There is no quiz attempt in progress. Start the quiz from the module page.",
              "info")
        return redirect(url_for("learning.module", slug=slug, **_pv(preview)))
    return _attempt_page(mod, version, current, preview, now)


def _attempts_note(mod, version, sitting, preview: bool, now) -> str:
    """How many attempts remain after this one (the limit counts in the learner's current
    validity period: learning.services.module_overview)."""
    if preview:
        return "Preview attempts are not counted."
    if version.attempt_limit is None:
        return "There is no limit on attempts."
    left = services.module_overview(current_user.id, mod, version, now).attempts_left or 0
    after = (f"after it you have {left} attempt{'' if left == 1 else 's'} left" if left
             else "it is your last one")
    return f"This is attempt {sitting.number} of {version.attempt_limit}; {after}."


def _attempt_page(mod, version, sitting, preview: bool, now, *, given=None,
                  unanswered=(), status: int = 200):
    """The quiz page of an attempt in progress; ``given`` re-fills the answers (shapes of
    :func:`responses_from_form`) and ``unanswered`` (question numbers) asks to confirm."""
    questions = quizzes.drawn_questions(sitting)
    form = SubmitQuizForm(attempt_id=sitting.id, submission_key=uuid.uuid4().hex,
                          preview="1" if preview else "")
    minutes_left = seconds_left = None
    if sitting.deadline_at is not None:
        seconds_left = max(0, int((sitting.deadline_at - now).total_seconds()))
        minutes_left = seconds_left // 60
    return render_template("learning/attempt.html", module=mod, version=version,
                           attempt=sitting, questions=questions, form=form,
                           orders=sitting.option_orders, field_name=field_name,
                           choices_of=quizzes.matching_choices, minutes_left=minutes_left,
                           seconds_left=seconds_left, given=given or {},
                           unanswered=list(unanswered),
                           attempts_note=_attempts_note(mod, version, sitting, preview, now),
                           render_markdown=render_markdown, pv=_pv(preview),
                           preview=preview), status


@bp.post("/modules/<slug>/quiz/submit")
@allow(*LEARNER_PAGES)
def submit(slug: str):
    preview, mod, _ = _module_for(slug)
    form = SubmitQuizForm()
    if not form.validate_on_submit():
        raise ValidationFailed("The quiz form did not say which attempt it belongs to; "
                               "reload the quiz page and submit again.", field="attempt_id")
    sitting = quizzes.get_attempt(form.attempt_id.data, current_user.id)
    if services.module_of_version(sitting.module_version_id) != mod.id:
        raise NotFound("This quiz attempt does not belong to this module")
    questions = quizzes.drawn_questions(sitting)
    responses = responses_from_form(questions, sitting.option_orders, request.form)
    now = utcnow()
    missing = [n for n, q in enumerate(questions, start=1) if not answered(responses.get(q.id))]
    in_time = sitting.deadline_at is None or now < sitting.deadline_at
    if (missing and in_time and sitting.status == "in_progress"
            and not request.form.get("confirm_unanswered")):
        # Ask first (issue 12.8): nothing is graded, the answers given are kept on the page.
        # When the time is up (the countdown submits by itself) there is nothing to ask.
        return _attempt_page(mod, services.version_by_id(sitting.module_version_id),
                             sitting, bool(sitting.preview), now, given=responses,
                             unanswered=missing)
    outcome = services.submit_quiz(sitting.id, current_user.id, responses, utcnow(),
                                   submission_key=form.submission_key.data or None)
    db.session.commit()
    if outcome.already_graded:
        flash("This attempt had already been submitted, so it was not graded again. "
              "Here is its result.", "info")
    return redirect(url_for("learning.result", slug=slug, attempt=outcome.attempt.id,
                            **_pv(outcome.attempt.preview)))


@bp.get("/modules/<slug>/result")
@allow(*LEARNER_PAGES)
def result(slug: str):
    preview, mod, version = _module_for(slug)
    attempt_id = query_int(request.args, "attempt", minimum=1, label="The attempt number")
    if attempt_id is not None:
        graded = quizzes.get_attempt(attempt_id, current_user.id)
        if services.module_of_version(graded.module_version_id) != mod.id \
                or graded.status != "submitted":
            raise NotFound("There is no graded attempt at this address")
    else:
        graded = services.submitted_attempt(current_user.id, version.id, preview=preview)
        if graded is None:
            flash("You have not submitted a quiz attempt for this module yet.", "info")
            return redirect(url_for("learning.module", slug=slug, **_pv(preview)))
    shown_version = services.version_by_id(graded.module_version_id)
    overview = services.module_overview(current_user.id, mod, shown_version, utcnow(),
                                        preview=graded.preview, grade_note=True)
    by_question = {a.question_id: a for a in graded.answers}
    rows = [(q, by_question.get(q.id)) for q in quizzes.drawn_questions(graded)]
    return render_template("learning/result.html", module=mod, version=shown_version,
                           attempt=graded, rows=rows, o=overview,
                           describe=quizzes.describe_response, pv=_pv(graded.preview),
                           preview=graded.preview)
