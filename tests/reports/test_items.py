"""Item analysis against hand-computed figures, including a miskeyed question.

Five graded attempts (all-or-nothing items; totals in brackets), plus a preview attempt and
an unfinished one that must not count:

====  ========  ========  ========  =====
      q1 (a)    q2 (a)    q3 (T)    total
====  ========  ========  ========  =====
A1    a  1      b  0      T  1      2
A2    a  1      b  0      T  1      2
A3    a  1      a  1      T  1      3
A4    b  0      a  1      F  0      1
A5    c  0      b  0      T  1      1
====  ========  ========  ========  =====

Corrected point-biserial r(x, total - x) from n, Σx, Σy, Σxy, Σx², Σy²:

* q1: x 1,1,1,0,0; y 1,1,2,1,1: cov 5·4-3·6 = 2, vx 5·3-9 = 6, vy 5·8-36 = 4,
  r = 2/√24 = 0.41; 60.0 % correct; chosen a 3, b 1, c 1.
* q2 (miskeyed: b is the right answer): x 0,0,1,1,0; y 2,2,2,0,1: cov 5·2-2·7 = -4,
  vx 6, vy 5·13-49 = 16, r = -4/√96 = -0.41; 40.0 %; a 2, b 3, c 0 -> negative
  discrimination, possibly miskeyed.
* q3: x 1,1,1,0,1; y 1,1,2,1,0: cov 5·4-4·5 = 0 -> r 0.00; 80.0 %; true 4, false 1.
"""

from __future__ import annotations

import csv
import io

from lms_plugin.extensions import db
from lms_plugin.quizzes.models import Attempt, AttemptAnswer
from tests.learning.builders import build_module

OPTIONS = [{"id": "a", "text": "Alpha"}, {"id": "b", "text": "Bravo"},
           {"id": "c", "text": "Charlie"}]
QUESTIONS = [
    {"key": "q1", "type": "single_choice", "prompt": "First?",
     "data": {"options": OPTIONS, "answer": "a"}},
    {"key": "q2", "type": "single_choice", "prompt": "Second?",
     "data": {"options": OPTIONS, "answer": "a"}},
    {"key": "q3", "type": "true_false", "prompt": "Third?", "data": {"answer": True}},
]
SITTINGS = [("a", "b", True), ("a", "b", True), ("a", "a", True), ("b", "a", False),
            ("c", "b", True)]


def _build(app, factory):
    factory.organisation()
    module = build_module(app, slug="items-module", questions=QUESTIONS)
    q = module["questions"]
    keys = {"q1": "a", "q2": "a", "q3": True}
    with app.app_context():
        def sit(user_id, answers, *, preview=False, status="submitted"):
            number = 2 if preview else 3 if status != "submitted" else 1
            attempt = Attempt(user_id=user_id, module_version_id=module["version_id"],
                              number=number, preview=preview, status=status, seed=1,
                              question_ids=list(q.values()))
            db.session.add(attempt)
            db.session.flush()
            for key, response in zip(("q1", "q2", "q3"), answers, strict=True):
                correct = response == keys[key]
                db.session.add(AttemptAnswer(attempt_id=attempt.id, question_id=q[key],
                                             response=response, fraction=float(correct),
                                             correct=correct))

        people = [factory.user("learner") for _ in SITTINGS]
        for user_id, answers in zip(people, SITTINGS, strict=True):
            sit(user_id, answers)
        sit(people[0], ("c", "c", False), preview=True)  # a preview: excluded
        sit(people[1], ("c", "c", False), status="in_progress")  # not graded: excluded
        db.session.commit()
    return module


def test_item_figures_match_hand_computation(app, client, login_as, factory):
    _build(app, factory)
    login_as("author")
    page = client.get("/reports/items/items-module")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "possibly miskeyed" in html and 'src="data:image/svg+xml;base64,' in html
    assert "1 flagged for review: #2 q2 (negative discrimination, possibly miskeyed)" in html
    response = client.get("/reports/items/items-module/export?format=csv")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows == [
        ["#", "Question", "Type", "Answers", "% correct", "Discrimination",
         "Options chosen (* key)", "Flags"],
        ["1", "q1", "single_choice", "5", "60.0", "0.41", "*a: 3; b: 1; c: 1", ""],
        ["2", "q2", "single_choice", "5", "40.0", "-0.41", "*a: 2; b: 3; c: 0",
         "negative discrimination, possibly miskeyed"],
        ["3", "q3", "true_false", "5", "80.0", "0.0", "*true: 4; false: 1", ""],
    ]


def test_item_analysis_access_and_bad_input(app, client, login_as, factory):
    _build(app, factory)
    build_module(app, slug="theirs", org="Other Health")
    login_as("learner")
    assert client.get("/reports/items/items-module").status_code == 403
    login_as("author")
    assert client.get("/reports/items/theirs").status_code == 404
    assert client.get("/reports/items/items-module?version=9").status_code == 404
    assert client.get("/reports/items/items-module?version=x").status_code == 422
    assert client.get("/reports/items/items-module/export?format=doc").status_code == 422
    assert "items-module" in client.get("/reports/items").get_data(as_text=True)
