"""The learner's CE flow over HTTP: disclosure, evaluation, claim and every refusal
(issue 15 acceptance), with the database checked afterwards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent
from lms_plugin.credits.models import (
    CeProfile,
    Certificate,
    CreditClaim,
    EvaluationResponse,
)
from lms_plugin.extensions import db
from tests.conftest import csrf_token
from tests.credits.helpers import evaluate, make_activity, pass_module
from tests.learning.builders import build_module

CLAIM = {"profession": "physician", "credit_type": "ama_pra_1", "credits": "1.25",
         "consent": "y", "npi": "1234567893", "birth_month": "4", "birth_day": "17"}


@pytest.fixture
def setup(app, client, login_as):
    module = build_module(app)
    activity_id = make_activity(app, module["module_id"], module["organisation_id"])
    user_id = login_as("learner")
    return {"module": module, "activity_id": activity_id, "user_id": user_id,
            "url": f"/credits/{module['slug']}"}


def _ready(app, setup):
    m = setup["module"]
    pass_module(app, setup["user_id"], m["module_id"], m["version_id"])
    evaluate(app, setup["user_id"], setup["activity_id"])


def _post_claim(client, setup, **changes):
    data = {**CLAIM, **changes}
    data = {k: v for k, v in data.items() if v is not None}
    data["csrf_token"] = csrf_token(client, setup["url"] + "/claim")
    return client.post(setup["url"] + "/claim", data=data)


def _claims(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(CreditClaim))


def test_disclosure_page_shows_everything_before_starting(app, client, setup):
    html = client.get(setup["url"]).get_data(as_text=True)
    for text in ("Place a medication order with the correct dose", "Ana Ruiz, MD, FAMIA",
                 "no relevant financial relationships to disclose",
                 "Consultant for Acme EHR", "about 20 minutes", "at least 80%",
                 "2026-01-01", "2028-12-31", "General Hospital CME Office",
                 "AMA PRA Category 1 Credit™: up to 1.5", "UAN JA0000000-0000-26-001-H04-P",
                 "in steps of 0.25", "accredited by the Accreditation Council"):
        assert text in html, text


def test_the_module_page_points_to_the_disclosure_before_the_start(app, client, setup):
    """A learner sees that the module offers CE credit, with a link to its disclosure page,
    on the module page itself, before starting (issue 15); a module without an activity
    says nothing of the kind."""
    html = client.get(f"/modules/{setup['module']['slug']}").get_data(as_text=True)
    assert f'href="{setup["url"]}"' in html
    assert html.index(setup["url"]) < html.index('id="quiz"')
    build_module(app, slug="no-ce")
    other = client.get("/modules/no-ce").get_data(as_text=True)
    assert "/credits/no-ce" not in other and "continuing-education credit" not in other


def test_a_module_without_an_activity_is_a_404(app, client, login_as):
    build_module(app, slug="no-ce")
    login_as("learner")
    assert client.get("/credits/no-ce").status_code == 404


def test_claim_refused_before_the_pass(app, client, setup):
    evaluate(app, setup["user_id"], setup["activity_id"])
    response = _post_claim(client, setup)
    assert response.status_code == 409
    assert "after you pass the post-test" in response.get_data(as_text=True)
    assert _claims(app) == 0


def test_claim_refused_before_the_evaluation(app, client, setup):
    m = setup["module"]
    pass_module(app, setup["user_id"], m["module_id"], m["version_id"])
    response = _post_claim(client, setup)
    assert response.status_code == 409
    assert "evaluation before claiming" in response.get_data(as_text=True)
    assert _claims(app) == 0


def _set_termination(app, activity_id, day):
    from lms_plugin.credits.models import CreditActivity

    with app.app_context():
        db.session.get(CreditActivity, activity_id).termination_date = day
        db.session.commit()


def test_claim_refused_after_the_termination_date(app, client, setup):
    from lms_plugin.credits.services import local_today
    from lms_plugin.db import utcnow

    _ready(app, setup)
    today = local_today("America/New_York", utcnow())  # the organisation's calendar day
    _set_termination(app, setup["activity_id"], today - timedelta(days=1))
    response = _post_claim(client, setup)
    assert response.status_code == 409
    assert "no new claims are accepted" in response.get_data(as_text=True)
    assert _claims(app) == 0
    _set_termination(app, setup["activity_id"], today)  # the last day itself is accepted
    assert _post_claim(client, setup).status_code == 302
    assert _claims(app) == 1


@pytest.mark.parametrize(("credits", "message"), [
    ("1.75", "At most 1.5 may be claimed"),
    ("1.3", "steps of 0.25"),
    ("0", "more than 0"),
    ("abc", "as a number"),
    ("NaN", "more than 0"),
])
def test_claim_refused_above_the_maximum_or_off_the_grid(app, client, setup, credits,
                                                         message):
    _ready(app, setup)
    response = _post_claim(client, setup, credits=credits)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in html
    assert 'id="credits-error"' in html  # the message is tied to the field
    assert _claims(app) == 0


def test_claim_refused_for_an_ineligible_profession(app, client, setup):
    _ready(app, setup)
    response = _post_claim(client, setup, profession="nurse")
    assert response.status_code == 422
    assert "cannot be claimed by a nurse" in response.get_data(as_text=True)
    # ACPE (UAN ending P) is for pharmacists, not technicians.
    response = _post_claim(client, setup, profession="pharmacy_technician",
                           credit_type="acpe", nabp_eprofile_id="1234567")
    assert response.status_code == 422
    assert "is for pharmacists" in response.get_data(as_text=True)
    assert _claims(app) == 0


def test_claim_refused_twice_and_other_types_still_allowed(app, client, setup):
    _ready(app, setup)
    response = _post_claim(client, setup)
    assert response.status_code == 302
    code = response.headers["Location"].rsplit("/", 1)[1]
    response = _post_claim(client, setup, credits="0.25")
    assert response.status_code == 409
    assert "already claimed this credit type" in response.get_data(as_text=True)
    # A second credit type of the same activity is a separate claim.
    assert _post_claim(client, setup, credit_type="cphims", credits="1.5").status_code == 302
    with app.app_context():
        claims = db.session.scalars(select(CreditClaim).order_by(CreditClaim.id)).all()
        assert [(c.credit_type, str(c.credits)) for c in claims] == [
            ("ama_pra_1", "1.25"), ("cphims", "1.50")]
        assert db.session.scalar(select(Certificate.code).where(
            Certificate.claim_id == claims[0].id)) == code
        profile = db.session.scalar(select(CeProfile))
        assert (profile.npi, profile.birth_month, profile.birth_day,
                profile.consent_to_report) == ("1234567893", 4, 17, True)
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "credits.claimed")) == 2


def test_registry_identifiers_are_required_and_checked(app, client, setup):
    _ready(app, setup)
    response = _post_claim(client, setup, npi="1234567890")  # bad check digit
    assert response.status_code == 422
    assert "valid check digit" in response.get_data(as_text=True)
    response = _post_claim(client, setup, npi="", birth_month="", birth_day="")
    assert response.status_code == 422
    assert "PARS needs your NPI" in response.get_data(as_text=True)
    assert _claims(app) == 0


def test_without_consent_no_identifier_is_kept(app, client, setup):
    _ready(app, setup)
    assert _post_claim(client, setup, consent=None).status_code == 302
    with app.app_context():
        profile = db.session.scalar(select(CeProfile))
        assert profile.profession == "physician"
        assert (profile.npi, profile.birth_month, profile.consent_to_report) == (
            None, None, False)


def test_evaluation_is_required_answer_by_answer_and_kept_once(app, client, setup):
    url = setup["url"] + "/evaluation"
    html = client.get(url).get_data(as_text=True)
    assert "Will you change your practice" in html
    with app.app_context():
        from lms_plugin.credits.models import CreditActivity

        questions = db.session.get(CreditActivity, setup["activity_id"]).questions
        ids = {q.kind: [x.id for x in questions if x.kind == q.kind] for q in questions}
    data = {f"q{i}": "5" for i in ids["likert"]}
    data["csrf_token"] = csrf_token(client, url)
    response = client.post(url, data=data)  # change-practice question unanswered
    assert response.status_code == 422
    assert f'id="q{ids["change_practice"][0]}-error"' in response.get_data(as_text=True)
    data[f"q{ids['change_practice'][0]}"] = "yes"
    data[f"q{ids['text'][0]}"] = "Use two identifiers."
    assert client.post(url, data=data).status_code == 302
    assert client.post(url, data=data).status_code == 409
    assert "You have submitted the evaluation" in client.get(url).get_data(as_text=True)
    with app.app_context():
        responses = db.session.scalars(select(EvaluationResponse)).all()
        assert len(responses) == 1
        assert responses[0].answers[str(ids["text"][0])] == "Use two identifiers."


def test_evaluation_results_are_shown_to_authors_without_names(app, client, setup,
                                                              factory):
    _ready(app, setup)
    from tests.conftest import login

    author = factory.user("author", email="author-eval@example.org")
    login(client, factory.email_of(author))
    html = client.get(f"/author/credits/{setup['module']['slug']}").get_data(as_text=True)
    assert "Evaluation results (anonymous)" in html
    assert html.count("<li>Agree: 1</li>") == 3 and "<li>Good.</li>" in html
    assert factory.email_of(setup["user_id"]).split("@")[0] not in html


def test_a_racing_second_claim_is_a_409_not_a_500(app, client, setup, monkeypatch):
    """Two tabs claim at once: the second passes the service's check before the first
    commits; the unique constraint refuses it and the page says so."""
    from lms_plugin.credits import services

    _ready(app, setup)
    assert _post_claim(client, setup).status_code == 302
    real = services.claim_state

    def before_the_first_commit(*args, **kwargs):
        state = real(*args, **kwargs)
        state.claims = []  # what the second tab saw
        return state

    monkeypatch.setattr(services, "claim_state", before_the_first_commit)
    response = _post_claim(client, setup, credits="0.5")
    assert response.status_code == 409
    assert "already claimed this credit type" in response.get_data(as_text=True)
    assert _claims(app) == 1
