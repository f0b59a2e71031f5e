"""Which completion counts as valid (DESIGN "Versions", issue 11 item 10).

A completion counts while it has not expired, and only when it was earned on or after the
newest *published* version marked ``retraining_required`` (an EHR upgrade that changes a
workflow): publishing an ordinary new version keeps earlier completions valid, a draft
changes nothing. The rule is read in three places, and each is checked here through what
uses it: the learner's module page and home list (``module_overviews``), the service
``valid_completion``, and the grade the LMS gradebook is sent (``policy_score``).

History is written through the learning services at its own time; pages are read through
the test client with a frozen clock (time-machine).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import select

from lms_plugin.catalog.models import Module, ModuleVersion, Question
from lms_plugin.extensions import db
from lms_plugin.learning import services as learning
from lms_plugin.learning.models import Completion
from tests.conftest import login
from tests.learning.builders import add_version, build_module

#: Two one-point questions on version 1: both right = 100 %, one right = 50 %.
TWO = [{"key": f"q{i}", "type": "single_choice", "prompt": f"Question {i}?",
        "data": {"options": [{"id": "a", "text": "Right"}, {"id": "b", "text": "Wrong"}],
                 "answer": "a"}} for i in range(2)]
JAN_10 = datetime(2025, 1, 10, 9, tzinfo=UTC)


def _sit(app, user_id: int, version_id: int, *, right: bool, at: datetime) -> float:
    """One attempt on ``version_id``, every answer right (or every one wrong), graded at
    ``at`` through the learning services (committed); its score."""
    with app.app_context():
        attempt = learning.start_quiz(user_id, version_id, at)
        ids = db.session.scalars(select(Question.id).where(
            Question.version_id == version_id)).all()
        outcome = learning.submit_quiz(attempt.id, user_id,
                                       dict.fromkeys(ids, "a" if right else "b"), at)
        db.session.commit()
        return float(outcome.attempt.score)


def _status(client, path: str) -> str:
    """The "Status:" line of a learner page (module page, or the first entry of home)."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r"<strong>Status:</strong>\s*(.*?)</p>", html, re.S)
    assert match, html
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def _valid(app, user_id: int, module_id: int, at: datetime) -> tuple[int | None, int | None]:
    """The version number of the valid completion by each service that decides it:
    (``valid_completion``, the overview the module page and home list show)."""
    with app.app_context():
        module = db.session.get(Module, module_id)
        version = learning.current_version(module)
        by_service = learning.valid_completion(user_id, module, at)
        overview = learning.module_overview(user_id, module, version, at)
        numbers = tuple(
            db.session.get(ModuleVersion, c.module_version_id).number
            if c is not None else None
            for c in (by_service, overview.completion))
        db.session.remove()
        return numbers


# --------------------------------------------------------------------------- retraining
def test_a_retraining_required_version_invalidates_earlier_completions(app, client,
                                                                       login_as):
    content = build_module(app, questions=TWO, validity_months=12)
    module_id = content["module_id"]
    view_at = datetime(2025, 3, 1, 9, tzinfo=UTC)  # every completion below is unexpired
    with time_machine.travel(view_at, tick=False):
        user_id = login_as("learner")
    assert _sit(app, user_id, content["version_id"], right=True, at=JAN_10) == 100

    def state() -> tuple[tuple[int | None, int | None], str, str]:
        with time_machine.travel(view_at, tick=False):
            return (_valid(app, user_id, module_id, view_at),
                    _status(client, "/modules/cpoe-basics"), _status(client, "/home"))

    (valid, page, home) = state()
    assert valid == (1, 1) and page.startswith("Completed") and home.startswith("Completed")

    # An ordinary new version: earlier completions stay valid until they expire.
    add_version(app, module_id, number=2, validity_months=12)
    assert state()[0] == (1, 1)
    # A draft that will require retraining changes nothing until it is published.
    add_version(app, module_id, number=3, status="draft", retraining_required=True,
                validity_months=12)
    (valid, page, _) = state()
    assert valid == (1, 1) and page.startswith("Completed")

    # Published: the version-1 completion no longer counts, though it has not expired, and
    # the learner is told why (not that it expired).
    v4 = add_version(app, module_id, number=4, retraining_required=True, validity_months=12)
    (valid, page, home) = state()
    assert valid == (None, None)
    assert page.startswith("Retraining required") and "version 4" in page, page
    assert "expired" not in page
    assert home.startswith("Retraining required"), home

    # Passing the retraining version itself counts (earned *on or after* it).
    assert _sit(app, user_id, v4, right=True, at=JAN_10 + timedelta(days=30)) == 100
    (valid, page, home) = state()
    assert valid == (4, 4) and page.startswith("Completed") and home.startswith("Completed")

    # The newest retraining-required version is the floor, not the first one.
    add_version(app, module_id, number=5, retraining_required=True, validity_months=12)
    (valid, page, _) = state()
    assert valid == (None, None) and page.startswith("Retraining required")
    with app.app_context():  # nothing was written by reading
        assert len(db.session.scalars(select(Completion)).all()) == 2


def test_the_gradebook_counts_only_attempts_from_the_retraining_version_on(app, login_as):
    """``policy_score`` (what the worker sends to the LMS gradebook) applies the same floor:
    a 100 % on version 1 does not hold the grade up once version 2 requires retraining."""
    content = build_module(app, questions=TWO, validity_months=12)
    user_id = login_as("learner")
    assert _sit(app, user_id, content["version_id"], right=True, at=JAN_10) == 100
    later = JAN_10 + timedelta(days=20)
    with app.app_context():
        assert learning.policy_score(user_id, content["module_id"], later).score == 100
    add_version(app, content["module_id"], number=2, status="draft", retraining_required=True,
                validity_months=12)
    with app.app_context():  # a draft changes nothing
        assert learning.policy_score(user_id, content["module_id"], later).score == 100
    v3 = add_version(app, content["module_id"], number=3, retraining_required=True,
                     validity_months=12)
    with app.app_context():  # no attempt on the new version yet: nothing to send
        assert learning.policy_score(user_id, content["module_id"], later) is None
    assert _sit(app, user_id, v3, right=False, at=later) == 0
    with app.app_context():
        chosen = learning.policy_score(user_id, content["module_id"], later)
        assert chosen.score == 0 and chosen.chosen.module_version_id == v3


# --------------------------------------------------------------------------- expiry
def test_an_expired_completion_does_not_count(app, client, login_as, factory):
    content = build_module(app, questions=TWO, validity_months=12)
    module_id = content["module_id"]
    with time_machine.travel(JAN_10, tick=False):
        user_id = login_as("learner")
    _sit(app, user_id, content["version_id"], right=True, at=JAN_10)
    with app.app_context():
        expires = db.session.scalar(select(Completion.expires_at))
    assert expires == datetime(2026, 1, 10, 9, tzinfo=UTC)

    assert _valid(app, user_id, module_id, expires - timedelta(seconds=1)) == (1, 1)
    assert _valid(app, user_id, module_id, expires) == (None, None)  # valid *until* then
    assert _valid(app, user_id, module_id, expires + timedelta(days=30)) == (None, None)

    with time_machine.travel(expires - timedelta(minutes=1), tick=False):
        login(client, factory.email_of(user_id))
        assert _status(client, "/modules/cpoe-basics").startswith("Completed")
        assert _status(client, "/home").startswith("Completed")
    with time_machine.travel(expires + timedelta(days=30), tick=False):
        login(client, factory.email_of(user_id))
        page = _status(client, "/modules/cpoe-basics")
        assert page.startswith("Expired") and "expired 10 Jan 2026" in page, page
        assert _status(client, "/home").startswith("Expired")
    with app.app_context():  # the record is kept (reports need it), only no longer valid
        assert len(db.session.scalars(select(Completion)).all()) == 1


def test_a_completion_without_validity_never_expires(app, factory):
    content = build_module(app, questions=TWO, validity_months=None)
    user_id = factory.user("learner")
    _sit(app, user_id, content["version_id"], right=True, at=JAN_10)
    assert _valid(app, user_id, content["module_id"], datetime(2040, 1, 1, tzinfo=UTC)) \
        == (1, 1)
