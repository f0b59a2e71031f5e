"""Issue 18 item 6: the learner home, the previewers' list, the deep-linking picker and the
course list cost the same number of statements with 7 modules (or courses) as with 70."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from lms_plugin.accounts.models import User
from lms_plugin.catalog.models import Module, ModuleVersion
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion, LessonProgress
from lms_plugin.lti import deep_linking, nrps
from lms_plugin.lti.models import LtiContext, LtiMembership, LtiPlatform
from lms_plugin.quizzes.models import Attempt
from tests.learning.builders import build_module
from tests.statements import counted


def _modules(app, start: int, stop: int) -> None:
    for i in range(start, stop):
        build_module(app, slug=f"module-{i:03d}", attempt_limit=3 if i % 2 else None)


def _history(app, user_id: int) -> None:
    """The learner has opened, attempted and completed every module (some twice)."""
    now = utcnow()
    with app.app_context():
        done = set(db.session.scalars(select(LessonProgress.module_version_id).where(
            LessonProgress.user_id == user_id)))
        for module, version in db.session.execute(
                select(Module, ModuleVersion).join(ModuleVersion)).all():
            if version.id in done:
                continue
            db.session.add(LessonProgress(user_id=user_id, module_version_id=version.id,
                                          last_position=1, viewed_positions=[1],
                                          updated_at=now))
            first = Attempt(user_id=user_id, module_version_id=version.id, number=1,
                            status="submitted", seed=1, submitted_at=now, score=100.0,
                            passed=True)
            second = Attempt(user_id=user_id, module_version_id=version.id, number=2,
                             status="in_progress", seed=2)
            db.session.add_all([first, second])
            db.session.flush()
            db.session.add(Completion(user_id=user_id, module_id=module.id,
                                      module_version_id=version.id, attempt_id=first.id,
                                      score=100.0, passed=True, completed_at=now,
                                      expires_at=now + timedelta(days=300)))
        db.session.commit()


def _statements(client, path: str) -> tuple[int, str]:
    with counted() as seen:
        response = client.get(path)
    assert response.status_code == 200
    return len(seen), response.get_data(as_text=True)


def test_learner_home_and_preview_list_cost_the_same_with_7_and_70_modules(app, client,
                                                                           login_as):
    learner = login_as("learner", "author")  # an author also sees the preview list
    _modules(app, 0, 7)
    _history(app, learner)
    client.get("/home")  # warm-up
    few, html = _statements(client, "/home")
    assert html.count("Status:</strong> Completed") == 7
    _modules(app, 7, 70)
    _history(app, learner)
    many, html = _statements(client, "/home")
    assert html.count("Status:</strong> Completed") == 70
    assert html.count("Preview as learner") >= 1 or "preview=1" in html
    assert many == few, (few, many)
    assert many <= 15  # was ~12 per module (83 with 7 modules)


def test_picker_costs_the_same_with_7_and_70_modules(app):
    _modules(app, 0, 7)
    with app.app_context():
        org = db.session.scalar(select(Module.organisation_id))
        with counted() as seen:
            rows = deep_linking.picker_modules(org)
            deep_linking.picker_audiences(org)
        few = len(seen)
        assert len(rows) == 7
    _modules(app, 7, 70)
    with app.app_context():
        with counted() as seen:
            rows = deep_linking.picker_modules(org, q="module")
            deep_linking.picker_audiences(org)
        assert len(rows) == 70 and len(seen) == few == 2
        assert deep_linking.picker_modules(org, q="module_%") == []  # literal, no wildcard


def test_course_list_costs_the_same_with_7_and_70_courses(app, factory):
    user = factory.user("learner")
    with app.app_context():
        platform = LtiPlatform(organisation_id=factory.org_of(user), issuer="https://lms",
                               client_id="c", auth_login_url="https://lms/login",
                               auth_token_url="https://lms/token")
        db.session.add(platform)
        db.session.commit()
        platform_id = platform.id

    def courses(start: int, stop: int) -> int:
        with app.app_context():
            for i in range(start, stop):
                context = LtiContext(platform_id=platform_id, context_id=f"c{i}",
                                     title=f"Course {i}", memberships_url="https://x/m")
                db.session.add(context)
                db.session.flush()
                db.session.add(LtiMembership(user_id=user, context_id=context.id, roles=[],
                                             active=bool(i % 2)))
            db.session.commit()
            org = db.session.get(LtiPlatform, platform_id).organisation_id
            with counted() as seen:
                listed = nrps.list_courses(org)
            assert len(listed) == stop
            assert db.session.get(User, user) is not None
            return len(seen)

    assert courses(0, 7) == courses(7, 70) == 2
