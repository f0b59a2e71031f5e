"""Registry exports: exactly the consenting learners, formatted fields, corrections listed,
streamed CSV, officer-only, audited (issue 15 acceptance)."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select, update

from lms_plugin.accounts.models import AuditEvent, User
from lms_plugin.credits.models import CeProfile, CreditClaim
from lms_plugin.extensions import db
from tests.conftest import login
from tests.credits.helpers import claim, evaluate, make_activity, pass_module
from tests.learning.builders import build_module

RANGE = "start=2026-11-01&end=2026-11-30"


def _learner(app, factory, module, activity_id, name, **claim_fields) -> int:
    user_id = factory.user("learner", email=f"{name.split()[0].lower()}@example.org")
    with app.app_context():
        db.session.get(User, user_id).name = name
        db.session.commit()
    pass_module(app, user_id, module["module_id"], module["version_id"])
    evaluate(app, user_id, activity_id)
    claim(app, user_id, activity_id, **claim_fields)
    return user_id


@pytest.fixture
def world(app, factory):
    module = build_module(app)
    aid = make_activity(app, module["module_id"], module["organisation_id"])
    people = {
        "npi": _learner(app, factory, module, aid, "Zoë Ñúñez"),
        "licence": _learner(app, factory, module, aid, "Sam Lee", npi="",
                            licence_state="ma", licence_number="123456", credits="1.5"),
        "no_consent": _learner(app, factory, module, aid, "Nora Quiet", consent=False),
        "broken": _learner(app, factory, module, aid, "Bob Broken"),
        "pharmacist": _learner(app, factory, module, aid, "Pat Pharm", profession="pharmacist",
                               credit_type="acpe", npi="", nabp_eprofile_id="1234567",
                               birth_month="12", birth_day="3", credits="1"),
        "nurse": _learner(app, factory, module, aid, "Nina Nurse", profession="nurse",
                          credit_type="ancc", npi="", licence_state="NY",
                          licence_number="RN-778899", birth_month="", birth_day="",
                          credits="0.75"),
        "revoked": _learner(app, factory, module, aid, "Rev Oked"),
    }
    with app.app_context():
        # An identifier that went bad after the claim (e.g. an import from the old system).
        db.session.execute(update(CeProfile).where(CeProfile.user_id == people["broken"])
                           .values(npi="1234567890"))
        db.session.execute(update(CreditClaim).where(CreditClaim.user_id == people["revoked"])
                           .values(status="revoked", current=None))
        db.session.commit()
    # Another organisation's consenting physician never appears.
    other = build_module(app, org="Other Health", slug="other-mod")
    other_aid = make_activity(app, other["module_id"], other["organisation_id"])
    other_user = factory.user("learner", org="Other Health", email="other@example.org")
    pass_module(app, other_user, other["module_id"], other["version_id"])
    evaluate(app, other_user, other_aid)
    claim(app, other_user, other_aid)
    return {"activity_id": aid, "people": people}


def _csv(client, registry: str, query: str = RANGE) -> list[list[str]]:
    response = client.get(f"/officer/credits/exports/{registry}.csv?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    assert response.is_streamed
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_pars_holds_exactly_the_consenting_physicians(app, client, factory, world):
    login(client, factory.email_of(factory.user("officer")))
    rows = _csv(client, "pars")
    aid = str(world["activity_id"])
    assert rows == [
        ["Activity ID", "First Name", "Last Name", "NPI", "License State", "License Number",
         "DOB Month", "DOB Day", "Completion Date", "CME Credits"],
        [aid, "Zoë", "Ñúñez", "1234567893", "", "", "04", "17", "11/02/2026", "1.25"],
        [aid, "Sam", "Lee", "", "MA", "123456", "04", "17", "11/02/2026", "1.5"],
    ]
    html = client.get(f"/officer/credits/exports?{RANGE}").get_data(as_text=True)
    assert "Bob Broken" in html and "the NPI fails its check digit" in html
    assert "Nora Quiet" not in html  # no consent: neither exported nor listed
    with app.app_context():
        assert db.session.scalar(select(AuditEvent.details).where(
            AuditEvent.action == "credits.registry_export")) == {
            "start": "2026-11-01", "end": "2026-11-30"}


def test_cpe_monitor_and_ce_broker_formats(app, client, factory, world):
    login(client, factory.email_of(factory.user("admin")))
    assert _csv(client, "cpe_monitor") == [
        ["ePID", "DOB", "UAN", "Participation Date", "Contact Hours", "Participant Type",
         "First Name", "Last Name"],
        ["1234567", "1203", "JA0000000-0000-26-001-H04-P", "11/02/2026", "1", "P", "Pat",
         "Pharm"],
    ]
    assert _csv(client, "ce_broker") == [
        ["License Number", "License State", "First Name", "Last Name", "Date Completed",
         "Hours"],
        ["RN-778899", "NY", "Nina", "Nurse", "11/02/2026", "0.75"],
    ]


def test_the_range_is_inclusive_and_checked(app, client, factory, world):
    login(client, factory.email_of(factory.user("officer")))
    assert len(_csv(client, "pars", "start=2026-11-02&end=2026-11-02")) == 3
    assert len(_csv(client, "pars", "start=2026-11-03&end=2026-11-30")) == 1  # header only
    response = client.get("/officer/credits/exports?start=2026-11-30&end=2026-11-01")
    assert response.status_code == 422
    assert 'id="end-error"' in response.get_data(as_text=True)
    assert client.get(f"/officer/credits/exports/nope.csv?{RANGE}").status_code == 404


def test_learners_cannot_export(app, client, factory, world):
    login(client, factory.email_of(world["people"]["npi"]))
    assert client.get(f"/officer/credits/exports/pars.csv?{RANGE}").status_code == 403
