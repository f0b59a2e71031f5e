"""Builders for CE tests: an activity on a module, a passing completion, an evaluation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from flask import Flask

from lms_plugin.accounts.models import User
from lms_plugin.credits import services
from lms_plugin.credits.spec import parse_credit_text
from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion

SPEC = """\
title: "Safe CPOE ordering: CE edition"
provider:
  name: "General Hospital CME Office"
  address: "1 Main Street\\nBoston, MA 02114"
accreditation: >-
  General Hospital is accredited by the Accreditation Council for Continuing
  Medical Education (ACCME) to provide continuing medical education for physicians.
designation: >-
  General Hospital designates this enduring material for a maximum of 1.5
  AMA PRA Category 1 Credits™. Physicians should claim only the credit
  commensurate with the extent of their participation in the activity.
objectives:
  - "Place a medication order with the correct dose"
  - "Recognise a wrong-patient order before signing"
faculty:
  - {name: "Ana Ruiz", credentials: "MD, FAMIA", disclosure: "none"}
  - name: "Ben Okafor"
    credentials: "RN-BC"
    disclosure: "Consultant for Acme EHR (relationship ended)"
release_date: 2026-01-01
last_review_date: 2026-01-01
termination_date: 2028-12-31
acpe: {uan: "JA0000000-0000-26-001-H04-P"}
credits:
  ama_pra_1: 1.5
  ancc: 1.5
  acpe: 1.5
  cphims: 1.5
  other: {max: 1, designation: "Certificate of participation"}
"""


def make_activity(app: Flask, module_id: int, organisation_id: int, text: str = SPEC,
                  ) -> int:
    with app.app_context():
        spec, problems = parse_credit_text(text)
        assert not problems, problems
        activity = services.save_activity(organisation_id, module_id, spec, actor=None)
        db.session.commit()
        return activity.id


def pass_module(app: Flask, user_id: int, module_id: int, version_id: int,
                when: datetime | None = None) -> int:
    with app.app_context():
        completion = Completion(user_id=user_id, module_id=module_id,
                                module_version_id=version_id, score=90.0, passed=True,
                                completed_at=when or datetime(2026, 11, 2, 15, tzinfo=UTC))
        db.session.add(completion)
        db.session.commit()
        return completion.id


def evaluate(app: Flask, user_id: int, activity_id: int) -> None:
    with app.app_context():
        activity = db.session.get(services.CreditActivity, activity_id)
        user = db.session.get(User, user_id)
        answers: dict[int, Any] = {}
        for q in activity.questions:
            answers[q.id] = {"likert": "4", "change_practice": "yes"}.get(q.kind, "Good.")
        services.submit_evaluation(activity, user, answers, datetime.now(UTC))
        db.session.commit()


def claim(app: Flask, user_id: int, activity_id: int, **fields: Any) -> int:
    """A committed claim through the service (defaults: a physician's 1.25 AMA PRA)."""
    values = {"credit_type": "ama_pra_1", "credits": "1.25", "profession": "physician",
              "npi": "1234567893", "birth_month": "4", "birth_day": "17", "consent": True}
    values.update(fields)
    with app.app_context():
        activity = db.session.get(services.CreditActivity, activity_id)
        user = db.session.get(User, user_id)
        made = services.claim_credit(activity, user, services.ClaimRequest(**values),
                                     datetime.now(UTC),
                                     lambda code: f"http://localhost/verify/{code}")
        db.session.commit()
        return made.id


def today() -> date:
    return datetime.now(UTC).date()


def sample_certificate(factory, module: dict[str, Any]) -> str:
    """The verification code of a certificate of a fresh learner on ``module``."""
    from lms_plugin.credits.models import Certificate, CreditClaim

    activity_id = make_activity(factory.app, module["module_id"], module["organisation_id"])
    learner = factory.user("learner")
    pass_module(factory.app, learner, module["module_id"], module["version_id"])
    evaluate(factory.app, learner, activity_id)
    claim_id = claim(factory.app, learner, activity_id)
    with factory.app.app_context():
        return db.session.query(Certificate.code).join(CreditClaim).filter(
            CreditClaim.id == claim_id).scalar()
