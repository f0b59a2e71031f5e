"""Certificates (PDF text, QR, immutability), public verification, corrections, transcript
and retention (issue 15 acceptance)."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import subprocess
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from lms_plugin.accounts.models import User
from lms_plugin.credits import services
from lms_plugin.credits.models import CeProfile, Certificate, CreditClaim, EvaluationResponse
from lms_plugin.credits.pdf import verify_qr
from lms_plugin.errors import Conflict
from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion
from tests.conftest import login
from tests.credits.helpers import claim, evaluate, make_activity, pass_module
from tests.learning.builders import build_module

NAME = "Zoë Ñúñez"


@pytest.fixture
def issued(app, client, factory):
    """A physician named Zoë Ñúñez with a 1.25 AMA PRA certificate, signed in on client."""
    module = build_module(app)
    activity_id = make_activity(app, module["module_id"], module["organisation_id"])
    user_id = factory.user("learner", email="zoe@example.org")
    with app.app_context():
        db.session.get(User, user_id).name = NAME
        db.session.commit()
    pass_module(app, user_id, module["module_id"], module["version_id"],
                when=datetime(2026, 11, 2, 15, tzinfo=UTC))
    evaluate(app, user_id, activity_id)
    claim_id = claim(app, user_id, activity_id)
    login(client, "zoe@example.org")
    with app.app_context():
        code = db.session.scalar(select(Certificate.code).where(
            Certificate.claim_id == claim_id))
    return {"module": module, "activity_id": activity_id, "user_id": user_id,
            "claim_id": claim_id, "code": code}


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_certificate_pdf_holds_every_required_field(app, client, issued):
    response = client.get(f"/credits/certificates/{issued['code']}.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    text = " ".join(_pdf_text(response.data).split())
    for field in (NAME, "Safe CPOE ordering: CE edition", "enduring material",
                  "November 2, 2026", "1.25 AMA PRA Category 1 Credit™",
                  "General Hospital CME Office", "1 Main Street, Boston, MA 02114",
                  "accredited by the Accreditation Council for Continuing Medical Education",
                  "designates this enduring material for a maximum of 1.5",
                  issued["code"], f"/verify/{issued['code']}"):
        assert field in text, field


def test_redownload_returns_identical_stored_bytes(app, client, issued):
    first = client.get(f"/credits/certificates/{issued['code']}.pdf").data
    second = client.get(f"/credits/certificates/{issued['code']}.pdf").data
    assert first == second
    with app.app_context():
        cert = db.session.scalar(select(Certificate).where(Certificate.code == issued["code"]))
        assert cert.pdf == first
        assert cert.sha256 == hashlib.sha256(first).hexdigest()


def test_qr_in_the_pdf_is_the_verification_url(app, client, issued):
    """The image embedded in the PDF is, module for module, segno's QR of the verification
    URL (so a phone decodes that URL); rendered and decoded with zbar too when installed."""
    url = f"http://localhost/verify/{issued['code']}"
    pdf = client.get(f"/credits/certificates/{issued['code']}.pdf").data
    assert url in " ".join(_pdf_text(pdf).split())
    images = PdfReader(io.BytesIO(pdf)).pages[0].images
    assert len(images) == 1
    picture = images[0].image.convert("L")
    qr = verify_qr(url)
    size = qr.symbol_size(scale=1, border=0)[0]
    scale = picture.width // (size + 4)  # saved with border=2 on each side
    assert picture.width == (size + 4) * scale
    read = [[picture.getpixel(((col + 2) * scale + scale // 2,
                               (row + 2) * scale + scale // 2)) < 128
             for col in range(size)] for row in range(size)]
    assert read == [[bool(bit) for bit in row] for row in qr.matrix]
    if shutil.which("pdftoppm") and shutil.which("zbarimg"):
        png = subprocess.run(["pdftoppm", "-png", "-r", "150", "-singlefile", "-", "-"],
                             input=pdf, capture_output=True, check=True).stdout
        decoded = subprocess.run(["zbarimg", "--raw", "-q", "-"], input=png,
                                 capture_output=True, check=True).stdout.decode().strip()
        assert decoded == url


def test_certificate_of_another_learner_is_a_404(app, client, issued, factory):
    other = factory.user("learner", email="other@example.org")
    login(client, factory.email_of(other))
    assert client.get(f"/credits/certificates/{issued['code']}.pdf").status_code == 404
    assert client.get(f"/credits/certificates/{issued['code']}").status_code == 404


def test_verify_valid_revoked_and_unknown(app, client, issued, factory):
    anonymous = app.test_client()
    html = anonymous.get(f"/verify/{issued['code']}").get_data(as_text=True)
    assert "Valid certificate" in html
    for text in (NAME, "Safe CPOE ordering: CE edition", "2026-11-02", "1.25",
                 "AMA PRA Category 1 Credit™"):
        assert text in html
    assert "zoe@example.org" not in html and "1234567893" not in html  # nothing else
    # Lower case and surrounding spaces still verify; unknown codes are a plain 404.
    assert anonymous.get(f"/verify/{issued['code'].lower()}").status_code == 200
    unknown = anonymous.get("/verify/AAAA-BBBB-CCCC")
    assert unknown.status_code == 404
    assert "AAAA-BBBB-CCCC" not in unknown.get_data(as_text=True)
    assert anonymous.get("/verify/" + "X" * 200).status_code == 404

    officer = factory.user("officer")
    with app.app_context():
        new = services.revoke_and_reissue(
            issued["module"]["organisation_id"], issued["claim_id"],
            db.session.get(User, officer), "Participation was 1 hour", "1", datetime.now(UTC),
            lambda code: f"http://localhost/verify/{code}")
        db.session.commit()
        new_code = new.certificate.code
        old = db.session.get(CreditClaim, issued["claim_id"])
        assert (old.status, old.current, new.replaces_id) == ("revoked", None, old.id)
    html = anonymous.get(f"/verify/{issued['code']}").get_data(as_text=True)
    assert "Revoked" in html and "Valid certificate" not in html
    html = anonymous.get(f"/verify/{new_code}").get_data(as_text=True)
    assert "Valid certificate" in html and ">1<" in html
    # The revoked certificate's stored bytes are unchanged.
    with app.app_context():
        cert = db.session.scalar(select(Certificate).where(Certificate.code == issued["code"]))
        assert hashlib.sha256(cert.pdf).hexdigest() == cert.sha256


def test_correction_needs_a_reason_and_valid_credits(app, issued, factory):
    from lms_plugin.errors import Conflict, ValidationFailed

    officer = factory.user("officer")
    org = issued["module"]["organisation_id"]
    with app.app_context():
        actor = db.session.get(User, officer)
        with pytest.raises(ValidationFailed):
            services.revoke_and_reissue(org, issued["claim_id"], actor, " ", None,
                                        datetime.now(UTC), str)
        with pytest.raises(ValidationFailed):
            services.revoke_and_reissue(org, issued["claim_id"], actor, "x", "9",
                                        datetime.now(UTC), str)
        db.session.rollback()
        services.revoke_and_reissue(org, issued["claim_id"], actor, "withdrawn", None,
                                    datetime.now(UTC), str)
        db.session.commit()
        with pytest.raises(Conflict):
            services.revoke_and_reissue(org, issued["claim_id"], actor, "again", None,
                                        datetime.now(UTC), str)


def test_deleting_a_person_keeps_their_credit_record(app, issued, factory):
    admin = factory.user("admin")
    with app.app_context():
        services.anonymise_person(issued["module"]["organisation_id"], issued["user_id"],
                                  db.session.get(User, admin))
        db.session.commit()
    with app.app_context():
        user = db.session.get(User, issued["user_id"])
        assert (user.email, user.active, user.grants, user.credential) == (None, False, [],
                                                                           None)
        assert user.name == f"Removed person {user.id}"
        claim_row = db.session.get(CreditClaim, issued["claim_id"])
        assert claim_row.learner_name == NAME and claim_row.status == "active"
        assert claim_row.certificate is not None
        assert db.session.scalar(select(Completion.id).where(
            Completion.user_id == issued["user_id"])) is not None
        profile = db.session.scalar(select(CeProfile).where(
            CeProfile.user_id == issued["user_id"]))
        assert (profile.npi, profile.birth_month, profile.consent_to_report) == (None, None,
                                                                                 False)
        assert db.session.scalar(select(EvaluationResponse.user_id)) is None
    assert app.test_client().get(f"/verify/{issued['code']}").status_code == 200


def test_the_database_refuses_to_delete_a_person_with_credit(app, issued):
    """PostgreSQL enforces RESTRICT (SQLite runs without foreign keys: the service is the
    only way a person leaves there)."""
    from sqlalchemy.exc import IntegrityError

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite does not enforce foreign keys in this app")
        with pytest.raises(IntegrityError):
            db.session.execute(db.delete(User).where(User.id == issued["user_id"]))
            db.session.flush()
        db.session.rollback()


def _add_claim(app, user_id, activity_id, credit_type, credits, completed_on):
    """A claim row as if from other activities (``current`` NULL: no uniqueness clash)."""
    with app.app_context():
        db.session.execute(db.insert(CreditClaim).values(
            organisation_id=db.session.get(User, user_id).organisation_id,
            activity_id=activity_id, user_id=user_id, credit_type=credit_type,
            credits=Decimal(credits), learner_name=NAME, profession="physician",
            completed_on=completed_on, claimed_at=datetime.now(UTC), current=None,
            status="active"))
        db.session.commit()


def test_transcript_totals_and_cycle_edges(app, client, issued):
    # The fixture's claim: 1.25 AMA PRA on 2026-11-02. Add CPHIMS hours at the cycle edges:
    # a 3-year cycle ending 2026-11-30 runs from 2023-12-01 to 2026-11-30 inclusive.
    aid, uid = issued["activity_id"], issued["user_id"]
    _add_claim(app, uid, aid, "cphims", "10", date(2023, 11, 30))  # the day before: out
    _add_claim(app, uid, aid, "cphims", "20", date(2023, 12, 1))  # first day: in
    _add_claim(app, uid, aid, "cphims", "7.5", date(2026, 11, 30))  # last day: in
    _add_claim(app, uid, aid, "cphims", "4", date(2026, 12, 1))  # the day after: out
    with app.app_context():
        _, totals = services.transcript(uid, date(2026, 11, 30))
        by_type = {t.credit_type: t for t in totals}
        assert (by_type["cphims"].start, by_type["cphims"].end) == (date(2023, 12, 1),
                                                                    date(2026, 11, 30))
        assert by_type["cphims"].total == Decimal("27.5")
        assert (by_type["cphims"].target, by_type["cphims"].percent) == (Decimal(45), 61)
        assert by_type["ama_pra_1"].total == Decimal("1.25")
        # A leap day: the cycle ending 2028-02-29 starts 2025-03-01.
        assert services.cycle_window(date(2028, 2, 29), 3) == (date(2025, 3, 1),
                                                               date(2028, 2, 29))
    html = client.get("/credits/transcript?cycle_end=2026-11-30").get_data(as_text=True)
    assert "27.5 of 45" in html and "target: 61%" in html
    assert "27.5 in the cycle 2023-12-01 – 2026-11-30" in html
    response = client.get("/credits/transcript?cycle_end=2026-11-30&format=csv")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["completed_on", "activity", "credit_type", "credits",
                       "certificate_code"]
    assert ["2026-11-02", "Safe CPOE ordering: CE edition", "AMA PRA Category 1 Credit™",
            "1.25", issued["code"]] in rows
    assert len(rows) == 6
    pdf = client.get("/credits/transcript?cycle_end=2026-11-30&format=pdf")
    text = " ".join(_pdf_text(pdf.data).split())
    assert "Continuing-education transcript" in text and "27.5" in text and "45 (61%)" in text
    assert client.get("/credits/transcript?cycle_end=30/11/2026").status_code == 422


def test_an_officer_corrects_a_claim_over_http(app, client, issued, factory):
    from tests.conftest import csrf_token

    login(client, factory.email_of(factory.user("officer")))
    page = f"/credits/certificates/{issued['code']}"
    html = client.get(page).get_data(as_text=True)
    assert f"CE certificate of {NAME}" in html and "Correct this claim" in html
    url = f"/officer/credits/certificates/{issued['code']}/correct"
    response = client.post(url, data={"reason": "", "credits": "1",
                                      "csrf_token": csrf_token(client, page)})
    assert response.status_code == 422 and 'id="reason-error"' in response.get_data(
        as_text=True)
    response = client.post(url, data={"reason": "Attended 1 hour", "credits": "1.1",
                                      "csrf_token": csrf_token(client, page)})
    assert response.status_code == 422 and "steps of 0.25" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(CreditClaim, issued["claim_id"]).status == "active"
    response = client.post(url, data={"reason": "Attended 1 hour", "credits": "1",
                                      "csrf_token": csrf_token(client, page)})
    assert response.status_code == 302
    new_code = response.headers["Location"].rsplit("/", 1)[1]
    assert new_code != issued["code"]
    assert "Revoked" in client.get(f"/verify/{issued['code']}").get_data(as_text=True)
    response = client.post(url, data={"reason": "again", "csrf_token": csrf_token(client, page)})
    assert response.status_code == 409
    with app.app_context():
        claims = db.session.scalars(select(CreditClaim).order_by(CreditClaim.id)).all()
        assert [(c.status, str(c.credits)) for c in claims] == [("revoked", "1.25"),
                                                               ("active", "1.00")]


def test_learners_cannot_correct(app, client, issued):
    from tests.conftest import csrf_token

    token = csrf_token(client, f"/credits/certificates/{issued['code']}")
    response = client.post(f"/officer/credits/certificates/{issued['code']}/correct",
                           data={"reason": "mine", "credits": "1.5", "csrf_token": token})
    assert response.status_code == 403


def test_the_transcript_costs_the_same_statements_for_1_or_12_credits(app, client, issued):
    from tests.statements import counted

    with counted() as few:
        assert client.get("/credits/transcript?cycle_end=2026-11-30").status_code == 200
    for day in range(1, 12):
        _add_claim(app, issued["user_id"], issued["activity_id"], "cphims", "1",
                   date(2026, 10, day))
    with counted() as many:
        html = client.get("/credits/transcript?cycle_end=2026-11-30").get_data(as_text=True)
    assert html.count('data-label="Completed"') == 12
    assert len(many) == len(few), many
    assert not any("certificate.pdf" in s.lower() for s in many)  # the PDF bytes stay put


def test_only_covered_versions_earn_credit(app, client, factory):
    from tests.credits.helpers import SPEC
    from tests.learning.builders import add_version

    module = build_module(app)
    v2 = add_version(app, module["module_id"], number=2)
    activity_id = make_activity(app, module["module_id"], module["organisation_id"],
                                SPEC.replace('title: "Safe', 'versions: [2]\ntitle: "Safe'))
    user_id = factory.user("learner", email="v1@example.org")
    pass_module(app, user_id, module["module_id"], module["version_id"])  # version 1
    evaluate(app, user_id, activity_id)
    with app.app_context(), pytest.raises(Conflict):
        claim(app, user_id, activity_id)
    pass_module(app, user_id, module["module_id"], v2)
    assert claim(app, user_id, activity_id)


def test_remove_person_command_keeps_the_record(app, issued):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["credits", "remove-person", "--organisation",
                                 "General Hospital", "--email", "nobody@example.org", "--yes"])
    assert result.exit_code != 0 and "No person with the email" in result.output
    result = runner.invoke(args=["credits", "remove-person", "--organisation",
                                 "General Hospital", "--email", "ZOE@example.org", "--yes"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.get(User, issued["user_id"]).email is None
        assert db.session.get(CreditClaim, issued["claim_id"]).learner_name == NAME


def test_the_revocation_date_is_the_organisations_day(app, issued, factory):
    """Revoked at 03:00 UTC on 30 November is still 29 November in New York: the public
    page (and the certificate page) give the organisation's day, as completion dates do."""
    from lms_plugin.accounts.models import Organisation

    org_id = issued["module"]["organisation_id"]
    officer = factory.user("officer")
    with app.app_context():
        db.session.get(Organisation, org_id).timezone = "America/New_York"
        services.revoke_and_reissue(org_id, issued["claim_id"], db.session.get(User, officer),
                                    "Participation was 1 hour", "1",
                                    datetime(2026, 11, 30, 3, 0, tzinfo=UTC),
                                    lambda code: f"http://localhost/verify/{code}")
        db.session.commit()
    anonymous = app.test_client()
    html = anonymous.get(f"/verify/{issued['code']}").get_data(as_text=True)
    assert "Revoked on 2026-11-29" in html, html
    login(anonymous, factory.email_of(officer))
    html = anonymous.get(f"/credits/certificates/{issued['code']}").get_data(as_text=True)
    assert "revoked on 29 Nov 2026" in re.sub(r"<[^>]+>", "", html), html
