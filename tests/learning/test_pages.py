"""The learner pages through the test client, CSRF on, checking the database afterwards."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion, LessonProgress
from lms_plugin.quizzes.models import Attempt, AttemptAnswer
from tests.conftest import csrf_token
from tests.learning.builders import CORRECT, build_module


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def text_of(response) -> str:
    return response.get_data(as_text=True)


def start(client, slug="cpoe-basics", **extra):
    token = csrf_token(client, f"/modules/{slug}" + ("?preview=1" if extra else ""))
    return client.post(f"/modules/{slug}/quiz/start", data={"csrf_token": token, **extra})


def quiz_form(client, slug="cpoe-basics", query="") -> dict[str, str]:
    html = text_of(client.get(f"/modules/{slug}/quiz{query}"))
    fields = dict(re.findall(r'name="(csrf_token|attempt_id|submission_key|preview)"'
                             r'[^>]*?value="([^"]*)"', html))
    # "Submit anyway": these tests grade partly answered forms on purpose (the question
    # asked first is tested in tests/learning/test_quiz_confirm.py).
    fields["confirm_unanswered"] = "1"
    return fields


def correct_form(content) -> dict[str, object]:
    q = content["questions"]
    return {
        f"q{q['verify-patient']}": "a",
        f"q{q['high-alert']}": ["a", "b"],
        f"q{q['read-back']}": "true",
        f"q{q['downtime-order']}-1": "b",
        f"q{q['downtime-order']}-2": "a",
        f"q{q['downtime-order']}-3": "c",
        f"q{q['match-alerts']}-p1": CORRECT["match-alerts"]["p1"],
        f"q{q['match-alerts']}-p2": CORRECT["match-alerts"]["p2"],
        f"q{q['heparin-rate']}": "10.05",
        f"q{q['name-the-form']}": "paper mar",
    }


def test_module_page_shows_what_to_expect_before_starting(app, client, login_as):
    build_module(app, attempt_limit=3, time_limit_minutes=20)
    login_as("learner")
    html = text_of(client.get("/modules/cpoe-basics"))
    assert "EHR order entry (CPOE): safe ordering basics" in html
    assert "Place a medication order with the correct dose" in html
    assert "about 20 minutes" in html
    assert "Pass mark: 80%" in html
    assert "Attempts left: 3 of 3" in html
    assert "Time limit: 20 minutes" in html
    assert "0 of 2 lessons viewed" in html
    assert "Start the lessons" in html


def test_lessons_render_sanitized_markdown_and_record_progress(app, client, login_as):
    content = build_module(app)
    user_id = login_as("learner")
    response = client.get("/modules/cpoe-basics/lessons/1")
    html = text_of(response)
    assert response.status_code == 200
    article = html.split('<article class="lesson">')[1].split("</article>")[0]
    assert "<script" not in article and "&lt;script&gt;" in article  # shown, never run
    assert f'src="/content/{content["module_id"]}/images/order.png"' in html
    assert 'alt="Order screen"' in html
    assert 'href="/modules/cpoe-basics/lessons/2"' in html  # next
    assert html.count("Why safe ordering matters") >= 1
    second = text_of(client.get("/modules/cpoe-basics/lessons/2"))
    assert 'href="/modules/cpoe-basics/lessons/1"' in second  # previous
    assert "Go to the quiz" in second and "<strong>two identifiers</strong>" in second
    with app.app_context():
        progress = db.session.scalars(select(LessonProgress)).one()
        assert (progress.user_id, progress.last_position) == (user_id, 2)
        assert progress.viewed_positions == [1, 2]
    client.get("/modules/cpoe-basics/lessons/1")
    overview = text_of(client.get("/modules/cpoe-basics"))
    assert "2 of 2 lessons viewed" in overview and "Resume lessons" in overview
    assert 'href="/modules/cpoe-basics/lessons/1">Resume' in overview.replace(
        ' class="button"', "")
    assert client.get("/modules/cpoe-basics/lessons/9").status_code == 404
    assert count(app, LessonProgress) == 1


def test_quiz_start_needs_csrf(app, client, login_as):
    build_module(app)
    login_as("learner")
    assert client.post("/modules/cpoe-basics/quiz/start").status_code == 400
    assert count(app, Attempt) == 0


def test_attempt_page_has_labelled_controls_for_every_item_type(app, client, login_as):
    content = build_module(app, time_limit_minutes=15)
    login_as("learner")
    assert start(client).headers["Location"] == "/modules/cpoe-basics/quiz"
    html = text_of(client.get("/modules/cpoe-basics/quiz"))
    q = content["questions"]
    assert html.count("<fieldset>") == 5 and html.count("<legend") == 5
    assert f'type="radio" name="q{q["verify-patient"]}"' in html
    assert f'type="checkbox" name="q{q["high-alert"]}"' in html
    assert f'name="q{q["downtime-order"]}-3"' in html
    assert f'<label for="q{q["match-alerts"]}-p1">Drug-drug interaction</label>' in html
    assert 'inputmode="decimal"' in html and "mL/hour" in html
    for control_id in re.findall(r'<(?:input|select)[^>]* id="(q[^"]+)"', html):
        assert f'for="{control_id}"' in html, f"control {control_id} has no label"
    assert "Time remaining: about 1" in html  # 14 or 15 minutes
    # Reloading or starting again resumes the same attempt.
    start(client)
    assert count(app, Attempt) == 1


def test_submit_grades_shows_feedback_and_records_completion(app, client, login_as):
    content = build_module(app)
    user_id = login_as("learner")
    start(client)
    fields = quiz_form(client)
    response = client.post("/modules/cpoe-basics/quiz/submit",
                           data={**fields, **correct_form(content)})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/modules/cpoe-basics/result?attempt=")
    html = text_of(client.get(response.headers["Location"]))
    assert "100%" in html and "passed" in html
    assert "Correct: two identifiers." in html  # option feedback
    assert "Two identifiers prevent wrong-patient orders." in html  # explanation
    assert "Your completion is recorded" in html
    with app.app_context():
        completion = db.session.scalars(select(Completion)).one()
        assert completion.user_id == user_id and completion.score == 100.0
    # Resubmitting the same form (back button, double click) grades nothing new.
    again = client.post("/modules/cpoe-basics/quiz/submit",
                        data={**fields, **correct_form(content)}, follow_redirects=True)
    assert "already been submitted" in text_of(again)
    assert count(app, AttemptAnswer) == len(CORRECT)
    assert count(app, Completion) == 1
    assert count(app, Attempt) == 1
    home = text_of(client.get("/home"))
    assert "EHR order entry" in home and "Completed" in home


def test_failed_attempt_says_what_to_do_next(app, client, login_as):
    build_module(app, attempt_limit=2)
    login_as("learner")
    start(client)
    response = client.post("/modules/cpoe-basics/quiz/submit", data=quiz_form(client),
                           follow_redirects=True)
    html = text_of(response)
    assert "0%" in html and "not passed" in html and "You have 1 attempt left" in html
    assert "No answer given" in html
    start(client)
    client.post("/modules/cpoe-basics/quiz/submit", data=quiz_form(client))
    assert "used all your attempts" in text_of(client.get("/modules/cpoe-basics"))
    refused = start(client)
    assert refused.status_code == 409 and "used all 2 attempts" in text_of(refused)
    assert count(app, Attempt) == 2 and count(app, Completion) == 0


@pytest.mark.parametrize("tamper", ["option", "question", "number"])
def test_an_answer_outside_the_attempt_is_422_and_nothing_is_stored(
        app, client, login_as, tamper):
    content = build_module(app)
    login_as("learner")
    start(client)
    data = {**quiz_form(client), **correct_form(content)}
    q = content["questions"]
    if tamper == "option":
        data[f"q{q['verify-patient']}"] = "zzz"
    elif tamper == "question":
        data[f"q{q['high-alert']}"] = ["a", "b", "not-an-option"]
    else:
        data[f"q{q['heparin-rate']}"] = "ten"
    response = client.post("/modules/cpoe-basics/quiz/submit", data=data)
    assert response.status_code == 422
    assert "not" in text_of(response)
    assert count(app, AttemptAnswer) == 0 and count(app, Completion) == 0
    with app.app_context():
        assert db.session.scalars(select(Attempt)).one().status == "in_progress"


def test_submission_after_the_time_limit_is_refused_with_a_message(app, client, login_as):
    content = build_module(app, time_limit_minutes=5)
    login_as("learner")
    start(client)
    fields = quiz_form(client)
    with app.app_context():
        attempt = db.session.scalars(select(Attempt)).one()
        attempt.deadline_at = attempt.started_at - timedelta(minutes=1)
        db.session.commit()
    response = client.post("/modules/cpoe-basics/quiz/submit",
                           data={**fields, **correct_form(content)})
    assert response.status_code == 409
    assert "time limit" in text_of(response)
    assert count(app, AttemptAnswer) == 0 and count(app, Completion) == 0


def test_submit_without_attempt_is_a_clear_4xx(app, client, login_as):
    build_module(app)
    login_as("learner")
    token = csrf_token(client, "/modules/cpoe-basics")
    response = client.post("/modules/cpoe-basics/quiz/submit", data={"csrf_token": token})
    assert response.status_code == 422 and "which attempt" in text_of(response)


def test_another_learners_attempt_cannot_be_submitted_or_viewed(app, client, factory,
                                                                 login_as):
    content = build_module(app)
    login_as("learner")
    start(client)
    fields = quiz_form(client)
    other = app.test_client()
    from tests.conftest import login

    login(other, factory.email_of(factory.user("learner")))
    token = csrf_token(other, "/modules/cpoe-basics")
    response = other.post("/modules/cpoe-basics/quiz/submit",
                          data={**fields, "csrf_token": token, **correct_form(content)})
    assert response.status_code == 404
    assert other.get(f"/modules/cpoe-basics/result?attempt={fields['attempt_id']}") \
        .status_code == 404
    assert count(app, AttemptAnswer) == 0


def test_modules_are_organisation_scoped_and_drafts_hidden_from_learners(app, client,
                                                                        login_as):
    build_module(app, org="Other Health", slug="elsewhere")
    build_module(app, slug="draft-module", status="draft")
    login_as("learner")
    assert client.get("/modules/elsewhere").status_code == 404
    assert client.get("/modules/elsewhere/lessons/1").status_code == 404
    assert client.get("/modules/draft-module").status_code == 404
    assert client.get("/modules/no-such-module").status_code == 404
    assert client.get("/modules/draft-module?preview=1").status_code == 403


def test_author_previews_a_draft_as_a_learner_without_completions(app, client, login_as):
    content = build_module(app, slug="draft-module", status="draft", attempt_limit=1)
    login_as("author")
    home = text_of(client.get("/home"))
    assert "Preview as learner" in home and "/modules/draft-module?preview=1" in home
    page = client.get("/modules/draft-module?preview=1")
    assert page.status_code == 200 and "Preview as learner." in text_of(page)
    assert client.get("/modules/draft-module/lessons/1?preview=1").status_code == 200
    for _ in range(2):  # preview ignores the attempt limit
        response = start(client, slug="draft-module", preview="1")
        assert response.headers["Location"] == "/modules/draft-module/quiz?preview=1"
        data = {**quiz_form(client, "draft-module", "?preview=1"), **correct_form(content)}
        result = client.post("/modules/draft-module/quiz/submit", data=data,
                             follow_redirects=True)
        assert "100%" in text_of(result) and "Preview attempts are not recorded" in \
            text_of(result)
    assert count(app, Completion) == 0 and count(app, LessonProgress) == 0
    with app.app_context():
        assert all(a.preview for a in db.session.scalars(select(Attempt)))
    assert client.get("/modules/cpoe-basics").status_code == 404  # other org's slug absent


def test_home_lists_the_launched_module_and_started_ones(app, client, login_as):
    build_module(app)
    build_module(app, slug="bcma-workflow")
    build_module(app, slug="never-touched")
    login_as("learner")
    assert "You have no modules yet" in text_of(client.get("/home"))
    with client.session_transaction() as sess:
        sess["lti"] = {"module_slug": "cpoe-basics", "platform_id": 1, "deployment_id": 1,
                       "context_pk": 1, "resource_link_pk": 1,
                       "message_type": "LtiResourceLinkRequest"}
    client.get("/modules/bcma-workflow/lessons/1")
    html = text_of(client.get("/home"))
    assert "/modules/cpoe-basics" in html and "/modules/bcma-workflow" in html
    # Untouched modules are listed only below, as "Other available modules" (issue 14).
    mine, _, available = html.partition("Other available modules")
    assert "/modules/never-touched" not in mine and "/modules/never-touched" in available
    assert "Lessons viewed: 1 of 2" in html and "Not started" in html
    assert "Preview as learner" not in html


@pytest.mark.parametrize("ref", ["images/../../../../auth/logout", "../secret.png",
                                 "./images/../../x.png", "/admin/jobs", "images//x.png"])
def test_lesson_images_never_point_outside_the_module(app, client, login_as, ref):
    """The ``..`` guard on lesson asset paths (issue 11 item 10): a lesson image is served
    from the module's own images (``/content/<module>/images/…``) or not at all; a path that
    climbs out (or an absolute one) is shown as its alt text, never left for the browser to
    resolve against the page (it would request any URL of this site)."""
    body = f"# Images\n\n![Order screen](images/order.png)\n\n![Escape]({ref})\n"
    content = build_module(app, lessons=[("images", "Images", body)])
    login_as("learner")
    html = text_of(client.get("/modules/cpoe-basics/lessons/1"))
    article = html.split('<article class="lesson">')[1].split("</article>")[0]
    srcs = re.findall(r'<img[^>]*src="([^"]*)"', article)
    assert srcs == [f"/content/{content['module_id']}/images/order.png"], srcs
    assert "Escape" in article
    # The asset route itself answers a climbing path with a 404, never a file.
    assert client.get(f"/content/{content['module_id']}/images/../order.png").status_code == 404
