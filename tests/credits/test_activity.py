"""The CE activity as YAML (the credit: block) and the author page that edits it."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent
from lms_plugin.credits.models import CreditActivity, CreditOffer
from lms_plugin.credits.spec import parse_credit_text
from lms_plugin.extensions import db
from tests.conftest import csrf_token
from tests.credits.helpers import SPEC, make_activity
from tests.learning.builders import build_module


def test_a_valid_block_gives_the_activity_spec():
    spec, problems = parse_credit_text(SPEC)
    assert problems == []
    assert spec["acpe_audience"] == "pharmacist"
    assert spec["release_date"] == date(2026, 1, 1)
    assert spec["faculty"][0] == {"name": "Ana Ruiz", "credentials": "MD, FAMIA",
                                  "disclosure": "none"}
    assert str(spec["credits"]["ama_pra_1"]["max"]) == "1.5"
    assert spec["credits"]["other"]["designation"] == "Certificate of participation"


def test_every_mistake_is_reported_with_its_line():
    text = SPEC.replace("ama_pra_1: 1.5", "ama_pra_1: 1.3").replace(
        "termination_date: 2028-12-31", "termination_date: 2029-06-30").replace(
        'acpe: {uan: "JA0000000-0000-26-001-H04-P"}', 'acpe: {uan: "12345"}').replace(
        '  - {name: "Ana Ruiz", credentials: "MD, FAMIA", disclosure: "none"}',
        '  - {name: "Ana Ruiz", credentials: "MD, FAMIA"}') + "colour: blue\n"
    spec, problems = parse_credit_text(text, "cpoe/module.yaml")
    assert spec is None
    lines = {p.line: p.message for p in problems}
    rendered = [str(p) for p in problems]
    line_of: dict[str, int] = {}  # the first line holding each key
    for n, line in reversed(list(enumerate(text.splitlines(), start=1))):
        for key in ("ama_pra_1", "termination_date", "acpe:", "colour", "Ana Ruiz"):
            if line.lstrip(" -").startswith(key) or (key == "Ana Ruiz" and key in line):
                line_of[key] = n
    assert "steps of 0.25" in lines[line_of["ama_pra_1"]]
    assert "more than 3 years" in lines[line_of["termination_date"]]
    assert "is not a UAN" in lines[line_of["acpe:"]]
    assert "unknown key 'colour'" in lines[line_of["colour"]]
    assert "disclosure of Ana Ruiz" in lines[line_of["Ana Ruiz"]]
    assert all(r.startswith("cpoe/module.yaml:") for r in rendered)


def test_yaml_syntax_errors_are_problems_not_500s():
    spec, problems = parse_credit_text("title: [unclosed\n")
    assert spec is None and problems and problems[0].line is not None


def test_author_page_creates_and_updates_with_audit(app, client, login_as):
    module = build_module(app)
    login_as("author")
    url = f"/author/credits/{module['slug']}"
    assert "CE activity for cpoe-basics" in client.get(url).get_data(as_text=True)
    response = client.post(url, data={"spec": SPEC, "csrf_token": csrf_token(client, url)})
    assert response.status_code == 302
    edited = SPEC.replace("cphims: 1.5", "cphims: 2")
    html = client.get(url).get_data(as_text=True)
    assert "Safe CPOE ordering: CE edition" in html  # the saved YAML is shown to edit
    assert client.post(url, data={"spec": edited, "csrf_token": csrf_token(client, url)}
                       ).status_code == 302
    with app.app_context():
        offer = db.session.scalar(select(CreditOffer).where(CreditOffer.credit_type == "cphims"))
        assert str(offer.max_credits) in ("2", "2.00")
        audit = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action.like("credits.activity_%")).order_by(AuditEvent.id)).all()
        assert [a.action for a in audit] == ["credits.activity_created",
                                            "credits.activity_updated"]
        assert audit[1].details == {"credits": {
            "before": {"ama_pra_1": "1.5", "ancc": "1.5", "acpe": "1.5", "cphims": "1.5",
                       "other": "1"},
            "after": {"ama_pra_1": "1.5", "ancc": "1.5", "acpe": "1.5", "cphims": "2",
                      "other": "1"}}}


def test_author_page_refuses_bad_yaml_and_writes_nothing(app, client, login_as):
    module = build_module(app)
    login_as("author")
    url = f"/author/credits/{module['slug']}"
    response = client.post(url, data={"spec": SPEC.replace("ancc: 1.5", "ancc: -1"),
                                      "csrf_token": csrf_token(client, url)})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Nothing was saved" in html and "cpoe-basics/credit:" in html
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CreditActivity)) == 0


def test_authors_are_warned_when_review_is_due(app, client, login_as):
    module = build_module(app)
    activity_id = make_activity(app, module["module_id"], module["organisation_id"],
                                SPEC.replace("last_review_date: 2026-01-01",
                                             "last_review_date: 2024-01-01")
                                .replace("release_date: 2026-01-01",
                                         "release_date: 2024-01-01")
                                .replace("termination_date: 2028-12-31",
                                         "termination_date: 2026-12-31"))
    assert activity_id
    login_as("author")
    html = client.get(f"/author/credits/{module['slug']}").get_data(as_text=True)
    assert "Review due" in html and "2026-12-31" in html


def test_another_organisations_module_is_a_404(app, client, login_as):
    build_module(app, org="Other Health", slug="theirs")
    login_as("author")
    assert client.get("/author/credits/theirs").status_code == 404
