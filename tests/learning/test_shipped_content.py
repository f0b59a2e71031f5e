"""Every shipped module (content/) can be previewed by an admin end to end and passed with its
own answer key through the learner pages: lessons render, every question is answerable."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from lms_plugin.accounts import services as accounts
from lms_plugin.catalog import services as catalog
from lms_plugin.catalog.content_format import load_content
from lms_plugin.catalog.models import Question
from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion
from lms_plugin.quizzes.models import Attempt
from tests.conftest import csrf_token

CONTENT = Path(__file__).resolve().parents[2] / "lms_plugin" / "content"


def answer_fields(question: Question) -> dict[str, Any]:
    """The form fields that answer ``question`` exactly as its key says."""
    data, name = question.data, f"q{question.id}"
    if question.type in ("single_choice", "multiple_response"):
        return {name: data["answer"]}
    if question.type == "true_false":
        return {name: "true" if data["answer"] else "false"}
    if question.type == "ordering":
        return {f"{name}-{n}": item for n, item in enumerate(data["answer"], start=1)}
    if question.type == "matching":
        return {f"{name}-{pair['id']}": pair["match"] for pair in data["pairs"]}
    if question.type == "numeric":
        return {name: str(data["answer"])}
    return {name: data["accepted"][0]}


def test_admin_previews_and_passes_every_shipped_module(app, client, login_as):
    with app.app_context():
        bundle = load_content(CONTENT)
        assert bundle.ok, bundle.problems
        # As a demo organisation imports it: published with the suggested local wording.
        catalog.import_content(bundle, accounts.get_or_create_organisation("General Hospital"),
                               publish=True, local_markers_ok=True)
        db.session.commit()
        slugs = [m.slug for m in catalog.list_modules(
            accounts.get_or_create_organisation("General Hospital").id)]
    assert len(slugs) >= 6
    admin_id = login_as("admin")
    for slug in slugs:
        page = client.get(f"/modules/{slug}?preview=1")
        assert page.status_code == 200, slug
        positions = sorted(set(re.findall(rf"/modules/{slug}/lessons/(\d+)\?preview=1",
                                          page.get_data(as_text=True))))
        assert 2 <= len(positions) <= 5, slug
        for position in positions:
            lesson = client.get(f"/modules/{slug}/lessons/{position}?preview=1")
            assert lesson.status_code == 200, (slug, position)
            article = lesson.get_data(as_text=True).split('<article class="lesson">')[1]
            assert "<script" not in article
            assert "[[local" not in article  # learners never see a raw marker
            for src in re.findall(r'<img src="(/content/[^"]+)"', article):
                assert client.get(src).status_code == 200, (slug, src)

        token = csrf_token(client, f"/modules/{slug}?preview=1")
        started = client.post(f"/modules/{slug}/quiz/start",
                              data={"csrf_token": token, "preview": "1"})
        assert started.status_code == 302, (slug, started.get_data(as_text=True))
        html = client.get(f"/modules/{slug}/quiz?preview=1").get_data(as_text=True)
        fields = dict(re.findall(r'name="(csrf_token|attempt_id|submission_key|preview)"'
                                 r'[^>]*?value="([^"]*)"', html))
        with app.app_context():
            attempt = db.session.get(Attempt, int(fields["attempt_id"]))
            for question in db.session.scalars(
                    select(Question).where(Question.id.in_(attempt.question_ids))):
                fields.update(answer_fields(question))
        result = client.post(f"/modules/{slug}/quiz/submit", data=fields,
                             follow_redirects=True)
        text = result.get_data(as_text=True)
        assert result.status_code == 200, (slug, text[:500])
        assert "<strong>100%</strong>" in text, slug
    with app.app_context():
        assert db.session.scalar(select(func.count(Attempt.id)).where(
            Attempt.user_id == admin_id, Attempt.preview.is_(True))) == len(slugs)
        assert db.session.scalar(select(func.count(Completion.id))) == 0
