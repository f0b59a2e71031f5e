"""Attempts through the services: drawing, limits, time limits, grading exactly once."""

from __future__ import annotations

import threading
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.learning import services as learning
from lms_plugin.learning.models import Completion
from lms_plugin.quizzes import services
from lms_plugin.quizzes.models import Attempt, AttemptAnswer
from tests.dbapi import rowcount_unknown
from tests.learning.builders import CORRECT, build_module

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def correct_responses(content) -> dict[int, object]:
    return {content["questions"][key]: value for key, value in CORRECT.items()}


@pytest.fixture
def learner(factory) -> int:
    return factory.user("learner")


def test_start_draws_every_question_in_authored_order_without_shuffle(app, learner):
    content = build_module(app)
    with app.app_context():
        attempt = services.start_attempt(learner, content["version_id"], NOW, seed=7)
        db.session.commit()
        assert attempt.number == 1 and attempt.status == "in_progress"
        assert attempt.question_ids == list(content["questions"].values())
        assert attempt.deadline_at is None
        single = content["questions"]["verify-patient"]
        assert attempt.option_orders[str(single)] == ["a", "b", "c"]
        # Ordering items and matching choices are shuffled even without shuffle_options.
        ordering = content["questions"]["downtime-order"]
        assert sorted(attempt.option_orders[str(ordering)]) == ["a", "b", "c"]
        matching = content["questions"]["match-alerts"]
        assert attempt.option_orders[str(matching)] == ["p1", "p2"]
        assert sorted(attempt.option_orders[f"{matching}:choices"]) == sorted(
            ["Review and document override reason", "Discontinue one order",
             "Ignore the alert"])


def test_draw_n_of_m_is_stable_within_an_attempt_and_varies_with_the_seed(app, learner):
    content = build_module(app, draw_count=3, shuffle_questions=True, shuffle_options=True)
    pool = set(content["questions"].values())
    with app.app_context():
        first = services.start_attempt(learner, content["version_id"], NOW, seed=1)
        db.session.commit()
        drawn, orders = list(first.question_ids), dict(first.option_orders)
        assert len(drawn) == 3 and set(drawn) <= pool
        # Reloading the quiz (or a second tab) resumes the same attempt, same draw.
        again = services.start_attempt(learner, content["version_id"], NOW, seed=999)
        assert again.id == first.id
        assert again.question_ids == drawn and again.option_orders == orders
        assert count(Attempt) == 1

        from lms_plugin.catalog.models import ModuleVersion

        version = db.session.get(ModuleVersion, content["version_id"])
        kwargs = {"draw_count": 3, "shuffle_questions": True, "shuffle_options": True}
        assert services.draw(version.questions, seed=1, **kwargs) == (drawn, orders)
        outcomes = {tuple(services.draw(version.questions, seed=s, **kwargs)[0])
                    for s in range(20)}
        assert len(outcomes) > 5  # different seeds draw different questions / orders
        option_orders = {tuple(services.draw(version.questions, seed=s, **kwargs)[1].get(
            str(content["questions"]["verify-patient"]), ())) for s in range(40)}
        assert len(option_orders - {()}) > 1  # options are shuffled per attempt


def test_attempt_limit_counts_real_attempts_not_previews(app, learner):
    content = build_module(app, attempt_limit=2)
    with app.app_context():
        for n in (1, 2):
            attempt = services.start_attempt(learner, content["version_id"], NOW)
            assert attempt.number == n
            services.submit_attempt(attempt.id, learner, {}, NOW)
            db.session.commit()
        with pytest.raises(Conflict, match="used all 2 attempts"):
            services.start_attempt(learner, content["version_id"], NOW)
        db.session.rollback()
        preview = services.start_attempt(learner, content["version_id"], NOW, preview=True)
        db.session.commit()
        assert preview.preview and preview.number == 3
        assert services.attempts_used(learner, content["version_id"]) == 2
        assert count(Attempt) == 3


def test_time_limit_is_enforced_on_the_server(app, learner):
    content = build_module(app, time_limit_minutes=10, attempt_limit=2)
    with app.app_context():
        attempt = services.start_attempt(learner, content["version_id"], NOW)
        db.session.commit()
        assert attempt.deadline_at == NOW + timedelta(minutes=10)
        late = NOW + timedelta(minutes=10) + services.GRACE + timedelta(seconds=1)
        with pytest.raises(Conflict, match="time limit"):
            services.submit_attempt(attempt.id, learner, correct_responses(content), late)
        db.session.rollback()
        assert count(AttemptAnswer) == 0
        assert db.session.get(Attempt, attempt.id).status == "in_progress"
        # Starting again after the deadline closes the old attempt and starts attempt 2.
        second = services.start_attempt(learner, content["version_id"], late)
        db.session.commit()
        assert second.number == 2
        assert db.session.get(Attempt, attempt.id).status == "expired"
        with pytest.raises(Conflict):
            services.submit_attempt(attempt.id, learner, {}, late)
        db.session.rollback()
        # Within the grace period after the deadline a submission still counts.
        just_in = late + timedelta(minutes=10) - timedelta(seconds=1)
        outcome = services.submit_attempt(second.id, learner, correct_responses(content),
                                          just_in)
        db.session.commit()
        assert outcome.attempt.status == "submitted" and outcome.attempt.score == 100.0


@pytest.mark.parametrize("rowcount", ["reported", "unknown"])
def test_submit_grades_once_and_records_a_completion(app, learner, rowcount):
    """Also when the driver reports ``rowcount`` -1 (issue 9): the compare-and-set that
    grades the attempt must not then mistake its own submission for an earlier one."""
    content = build_module(app, validity_months=12)
    unknown = rowcount_unknown(app) if rowcount == "unknown" else nullcontext()
    with unknown, app.app_context():
        attempt = services.start_attempt(learner, content["version_id"], NOW)
        outcome = learning.submit_quiz(attempt.id, learner, correct_responses(content), NOW,
                                       submission_key="k1")
        db.session.commit()
        assert not outcome.already_graded
        assert (outcome.attempt.score, outcome.attempt.passed) == (100.0, True)
        assert outcome.attempt.submission_key == "k1"
        assert count(AttemptAnswer) == len(CORRECT)
        completion = db.session.scalars(select(Completion)).one()
        assert completion.attempt_id == attempt.id and completion.score == 100.0
        assert completion.module_version_id == content["version_id"]
        assert completion.expires_at == datetime(2027, 3, 1, 9, 0, tzinfo=UTC)

        replay = learning.submit_quiz(attempt.id, learner, {}, NOW + timedelta(minutes=1),
                                      submission_key="k2")
        db.session.commit()
        assert replay.already_graded and replay.attempt.score == 100.0
        assert replay.attempt.submission_key == "k1"
        assert count(AttemptAnswer) == len(CORRECT) and count(Completion) == 1


def test_partial_answers_give_a_weighted_score_and_fail_without_completion(app, learner):
    questions = [
        {"key": "q1", "type": "true_false", "prompt": "A?", "data": {"answer": True,
                                                                     "points": 3}},
        {"key": "q2", "type": "multiple_response", "prompt": "B?",
         "data": {"options": [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}],
                  "answer": ["a", "b"]}},
    ]
    content = build_module(app, questions=questions, pass_mark=90)
    with app.app_context():
        attempt = services.start_attempt(learner, content["version_id"], NOW)
        outcome = learning.submit_quiz(
            attempt.id, learner,
            {str(content["questions"]["q1"]): "true", content["questions"]["q2"]: ["a"]}, NOW)
        db.session.commit()
        assert outcome.attempt.score == 87.5  # (3×1 + 1×0.5) / 4
        assert outcome.attempt.passed is False
        assert count(Completion) == 0


def test_preview_attempts_never_become_completions(app, learner):
    content = build_module(app)
    with app.app_context():
        attempt = services.start_attempt(learner, content["version_id"], NOW, preview=True)
        outcome = learning.submit_quiz(attempt.id, learner, correct_responses(content), NOW)
        db.session.commit()
        assert outcome.attempt.passed and outcome.attempt.preview
        assert count(Completion) == 0


@pytest.mark.parametrize("bad", [
    ("verify-patient", "z"),
    ("high-alert", ["a", "nope"]),
    ("downtime-order", ["b", "zz", "c"]),
    ("match-alerts", {"p1": "Made up"}),
    ("heparin-rate", "ten"),
])
def test_invalid_responses_are_422_and_nothing_is_stored(app, learner, bad):
    content = build_module(app)
    with app.app_context():
        attempt = services.start_attempt(learner, content["version_id"], NOW)
        db.session.commit()
        responses = correct_responses(content)
        responses[content["questions"][bad[0]]] = bad[1]
        with pytest.raises(ValidationFailed) as info:
            services.submit_attempt(attempt.id, learner, responses, NOW)
        assert info.value.status_code == 422
        db.session.rollback()
        assert count(AttemptAnswer) == 0 and count(Completion) == 0
        assert db.session.get(Attempt, attempt.id).status == "in_progress"


def test_a_question_outside_the_attempt_is_422(app, learner):
    content = build_module(app, draw_count=2)
    with app.app_context():
        attempt = services.start_attempt(learner, content["version_id"], NOW)
        db.session.commit()
        not_drawn = next(q for q in content["questions"].values()
                         if q not in attempt.question_ids)
        with pytest.raises(ValidationFailed, match="not part of this attempt"):
            services.submit_attempt(attempt.id, learner, {not_drawn: "a"}, NOW)
        with pytest.raises(ValidationFailed):
            services.submit_attempt(attempt.id, learner, {"junk": "a"}, NOW)
        db.session.rollback()
        assert count(AttemptAnswer) == 0


def test_someone_elses_attempt_is_not_found(app, factory, learner):
    content = build_module(app)
    other = factory.user("learner")
    with app.app_context():
        attempt = services.start_attempt(learner, content["version_id"], NOW)
        db.session.commit()
        with pytest.raises(NotFound):
            services.submit_attempt(attempt.id, other, {}, NOW)
        db.session.rollback()
        assert db.session.get(Attempt, attempt.id).status == "in_progress"


def test_twenty_concurrent_submissions_grade_exactly_once(app, learner):
    content = build_module(app)
    with app.app_context():
        attempt = services.start_attempt(learner, content["version_id"], NOW)
        db.session.commit()
        attempt_id = attempt.id
    responses = correct_responses(content)
    barrier = threading.Barrier(20)
    results: list[tuple[bool, float]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def submit(n: int) -> None:
        try:
            with app.app_context():  # its own app context, so its own session/connection
                barrier.wait(timeout=30)
                outcome = learning.submit_quiz(attempt_id, learner, responses, NOW,
                                               submission_key=f"tab-{n}")
                db.session.commit()
                with lock:
                    results.append((outcome.already_graded, outcome.attempt.score))
                db.session.remove()
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            with lock:
                errors.append(error)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(results) == 20
    assert sum(1 for already, _ in results if not already) == 1
    assert {score for _, score in results} == {100.0}
    with app.app_context():
        assert count(AttemptAnswer) == len(CORRECT)
        assert count(Completion) == 1
        graded = db.session.get(Attempt, attempt_id)
        assert graded.status == "submitted" and graded.submission_key.startswith("tab-")
