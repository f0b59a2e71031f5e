"""CE credit rules: activities, evaluation, claims, certificates, verification, transcripts,
retention. Services take plain arguments, ``flush()`` and never commit (the edge commits).

Sources of the rules: DESIGN.md "Continuing-education credit" and issue 15. Credits are
claimed in 0.25 steps up to the designated maximum (the AMA PRA booklet: "physicians should
claim only the credit commensurate with the extent of their participation"; ACCME/ANCC/ACPE
accept quarter-hour increments); a certificate shows the credits *claimed*.
"""

from __future__ import annotations

import calendar
import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from lms_plugin.accounts.models import LocalCredential, Organisation, RoleGrant, User, UserSession
from lms_plugin.accounts.services import record_audit
from lms_plugin.catalog.models import Module, ModuleVersion
from lms_plugin.credits.models import (
    ALLOWED_TYPES,
    CREDIT_TYPES,
    PROFESSIONS,
    CeProfile,
    Certificate,
    CreditActivity,
    CreditClaim,
    CreditOffer,
    EvaluationQuestion,
    EvaluationResponse,
)
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion

STEP = Decimal("0.25")
#: Review at least every three years (issue 15: "authors warned when review is due").
REVIEW_EVERY_DAYS = 3 * 365
#: Certification cycles with a published target: HIMSS requires 45 CE hours in the 3-year
#: CAHIMS/CPHIMS renewal cycle (HIMSS "CPHIMS Renewal Requirements").
CYCLES: dict[str, tuple[Decimal, int]] = {"cphims": (Decimal(45), 3)}

DEFAULT_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("likert", "The activity met its stated learning objectives."),
    ("likert", "The content was relevant to my practice."),
    ("likert", "The content was free of commercial bias."),
    ("change_practice", "Will you change your practice as a result of this activity?"),
    ("text", "What will you do differently, or what could be improved?"),
)
LIKERT = {1: "Strongly disagree", 2: "Disagree", 3: "Neutral", 4: "Agree",
          5: "Strongly agree"}
CHANGE_ANSWERS = {"yes": "Yes", "no": "No, it confirmed my current practice",
                  "unsure": "Not sure yet"}


def local_today(timezone: str, now: datetime) -> date:
    """The calendar date of ``now`` (UTC) in the organisation's time zone."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return now.astimezone(zone).date()


# ------------------------------------------------------------------ activities


def create_default_questions(activity: CreditActivity) -> None:
    """Give a new activity the standard evaluation (objectives, relevance, bias, change of
    practice, free text): the outcome questions ACCME/ANCC providers ask of every activity."""
    for position, (kind, prompt) in enumerate(DEFAULT_QUESTIONS, start=1):
        activity.questions.append(EvaluationQuestion(position=position, kind=kind,
                                                     prompt=prompt,
                                                     required=kind != "text"))


def activity_for_module(organisation_id: int, module_id: int) -> CreditActivity | None:
    return db.session.scalar(select(CreditActivity).where(
        CreditActivity.organisation_id == organisation_id,
        CreditActivity.module_id == module_id))


def get_activity(organisation_id: int, activity_id: int) -> CreditActivity:
    """The activity of this organisation, else :class:`NotFound` (another org's id: 404)."""
    activity = db.session.get(CreditActivity, activity_id)
    if activity is None or activity.organisation_id != organisation_id:
        raise NotFound("There is no such CE activity.")
    return activity


def activity_for_slug(organisation_id: int, slug: str) -> tuple[CreditActivity, Module]:
    row = db.session.execute(
        select(CreditActivity, Module).join(Module, Module.id == CreditActivity.module_id)
        .where(Module.organisation_id == organisation_id, Module.slug == slug,
               CreditActivity.organisation_id == organisation_id)).first()
    if row is None:
        raise NotFound("This module offers no CE credit.")
    return row[0], row[1]


ACTIVITY_FIELDS = ("title", "versions", "provider_name", "provider_address",
                   "accreditation_statement", "designation_statement", "objectives",
                   "faculty", "format", "acpe_uan", "acpe_audience", "release_date",
                   "last_review_date", "termination_date")


def save_activity(organisation_id: int, module_id: int, spec: dict[str, Any],
                  actor: User | None) -> CreditActivity:
    """Create or update the module's activity from a validated ``spec``.

    ``spec``: the shape :func:`lms_plugin.credits.spec.validate_credit` returns (activity
    fields plus ``credits``: ``{type: {"max": Decimal, "designation": str}}``). Audited
    with the before/after of every changed field.
    """
    module = db.session.get(Module, module_id)
    if module is None or module.organisation_id != organisation_id:
        raise NotFound("There is no such module.")
    activity = activity_for_module(organisation_id, module_id)
    before: dict[str, Any] = {}
    created = activity is None
    if activity is None:
        activity = CreditActivity(organisation_id=organisation_id, module_id=module_id)
        create_default_questions(activity)
        db.session.add(activity)
    else:
        before = {name: _jsonable(getattr(activity, name)) for name in ACTIVITY_FIELDS}
        before["credits"] = {o.credit_type: _jsonable(o.max_credits) for o in activity.offers}
    for name in ACTIVITY_FIELDS:
        setattr(activity, name, spec[name])
    wanted = spec["credits"]
    for offer in list(activity.offers):
        if offer.credit_type not in wanted:
            activity.offers.remove(offer)
    existing = {o.credit_type: o for o in activity.offers}
    for credit_type, values in wanted.items():
        offer = existing.get(credit_type)
        if offer is None:
            activity.offers.append(CreditOffer(credit_type=credit_type,
                                               max_credits=values["max"],
                                               designation=values.get("designation", "")))
        else:
            offer.max_credits = values["max"]
            offer.designation = values.get("designation", "")
    db.session.flush()
    after = {name: _jsonable(getattr(activity, name)) for name in ACTIVITY_FIELDS}
    after["credits"] = {t: _jsonable(v["max"]) for t, v in wanted.items()}
    changed = {k: {"before": before.get(k), "after": v} for k, v in after.items()
               if created or before.get(k) != v}
    if changed:
        record_audit("credits.activity_created" if created else "credits.activity_updated",
                     actor=actor, organisation_id=organisation_id,
                     target=("credit_activity", activity.id), details=changed)
    return activity


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value.normalize())
    if isinstance(value, date):
        return value.isoformat()
    return value


def activity_from_import(sender: Any, event: Any) -> None:
    """Receiver of ``events.module_imported``: store the ``credit:`` block of an imported
    module as its CE activity (flushes, never commits; audited as the importer)."""
    actor = db.session.get(User, event.actor_id) if event.actor_id else None
    save_activity(event.organisation_id, event.module_id, event.credit, actor)


def review_due(activity: CreditActivity, today: date) -> date | None:
    """The date the activity's review falls due (at most every 3 years) when that is within
    90 days or past, else None: the author page warns with it."""
    due = activity.last_review_date + timedelta(days=REVIEW_EVERY_DAYS)
    return due if due - today <= timedelta(days=90) else None


# ------------------------------------------------------------------ learner state


@dataclass
class ClaimState:
    """What a learner may do on an activity now (the disclosure/claim pages read it)."""

    activity: CreditActivity
    completion: Completion | None
    evaluated: bool
    open_: bool
    claims: list[CreditClaim] = field(default_factory=list)
    profile: CeProfile | None = None

    @property
    def can_claim(self) -> bool:
        return self.completion is not None and self.evaluated and self.open_


def _passing_completion(activity: CreditActivity, user_id: int) -> Completion | None:
    """The learner's latest passed completion on a covered version (any time: credit is
    for the activity, not for a still-valid competency)."""
    query = (select(Completion).join(ModuleVersion,
                                     ModuleVersion.id == Completion.module_version_id)
             .where(Completion.user_id == user_id, Completion.module_id == activity.module_id,
                    Completion.passed.is_(True)))
    if activity.versions:
        query = query.where(ModuleVersion.number.in_(activity.versions))
    return db.session.scalar(query.order_by(Completion.completed_at.desc()).limit(1))


def claim_state(activity: CreditActivity, user: User, now: datetime) -> ClaimState:
    today = local_today(user.organisation.timezone, now)
    evaluated = db.session.scalar(select(EvaluationResponse.id).where(
        EvaluationResponse.activity_id == activity.id,
        EvaluationResponse.user_id == user.id)) is not None
    claims = list(db.session.scalars(
        select(CreditClaim).where(CreditClaim.activity_id == activity.id,
                                  CreditClaim.user_id == user.id)
        .options(selectinload(CreditClaim.certificate))
        .order_by(CreditClaim.claimed_at, CreditClaim.id)))
    return ClaimState(activity=activity, completion=_passing_completion(activity, user.id),
                      evaluated=evaluated,
                      open_=activity.release_date <= today <= activity.termination_date,
                      claims=claims,
                      profile=db.session.scalar(select(CeProfile).where(
                          CeProfile.user_id == user.id)))


# ------------------------------------------------------------------ evaluation


def submit_evaluation(activity: CreditActivity, user: User, answers: dict[int, Any],
                      now: datetime) -> EvaluationResponse:
    """Store the learner's evaluation. ``answers``: question id -> 1..5 (likert), "yes" /
    "no" / "unsure" (change_practice) or text (at most 2000 characters).

    Raises :class:`ValidationFailed` naming the first missing or invalid item (field
    ``q<id>``) and :class:`Conflict` when this person already evaluated the activity.
    """
    if db.session.scalar(select(EvaluationResponse.id).where(
            EvaluationResponse.activity_id == activity.id,
            EvaluationResponse.user_id == user.id)) is not None:
        raise Conflict("You have already submitted the evaluation of this activity.")
    stored: dict[str, Any] = {}
    for question in activity.questions:
        value = answers.get(question.id)
        name = f"q{question.id}"
        if value in (None, ""):
            if question.required:
                raise ValidationFailed("Please answer this question.", field=name)
            continue
        if question.kind == "likert":
            try:
                number = int(value)
            except (TypeError, ValueError):
                number = 0
            if number not in LIKERT:
                raise ValidationFailed("Choose a rating from 1 to 5.", field=name)
            stored[str(question.id)] = number
        elif question.kind == "change_practice":
            if value not in CHANGE_ANSWERS:
                raise ValidationFailed("Choose yes, no or not sure.", field=name)
            stored[str(question.id)] = value
        else:
            text = str(value).strip()
            if len(text) > 2000:
                raise ValidationFailed(f"At most 2000 characters ({len(text)} given).",
                                       field=name)
            stored[str(question.id)] = text
    response = EvaluationResponse(activity_id=activity.id, user_id=user.id, answers=stored,
                                  submitted_at=now)
    db.session.add(response)
    db.session.flush()
    return response


def evaluation_summary(activity: CreditActivity) -> list[dict[str, Any]]:
    """Anonymous outcome summary per question: Likert/choice counts and the free-text
    answers, with no names or ids (faculty and authors see only this)."""
    responses = list(db.session.scalars(select(EvaluationResponse.answers).where(
        EvaluationResponse.activity_id == activity.id)))
    summary = []
    for question in activity.questions:
        values = [r[str(question.id)] for r in responses if str(question.id) in r]
        if question.kind == "text":
            summary.append({"question": question, "texts": sorted(values), "count": len(values)})
        else:
            labels = LIKERT if question.kind == "likert" else CHANGE_ANSWERS
            summary.append({"question": question, "count": len(values),
                            "counts": [(label, sum(1 for v in values if v == key))
                                       for key, label in labels.items()]})
    return summary


# ------------------------------------------------------------------ claims


@dataclass(frozen=True)
class ClaimRequest:
    """What the learner submits on the claim form (plain strings as typed)."""

    credit_type: str
    credits: str
    profession: str
    npi: str = ""
    licence_state: str = ""
    licence_number: str = ""
    nabp_eprofile_id: str = ""
    birth_month: str = ""
    birth_day: str = ""
    consent: bool = False


def parse_credits(text: str, maximum: Decimal) -> Decimal:
    """``text`` as a Decimal on the 0.25 grid in (0, maximum]; else ValidationFailed
    (field ``credits``) saying which rule it breaks."""
    try:
        amount = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        raise ValidationFailed("Enter the credits as a number, e.g. 1.25.",
                               field="credits") from None
    if not amount.is_finite() or amount <= 0:
        raise ValidationFailed("Claim more than 0 credits.", field="credits")
    if amount > maximum:
        raise ValidationFailed(f"At most {maximum.normalize()} may be claimed for this "
                               "credit type.", field="credits")
    if amount % STEP != 0:
        raise ValidationFailed("Credits are claimed in steps of 0.25 (e.g. 1, 1.25, 1.5).",
                               field="credits")
    return amount.quantize(Decimal("0.01"))


def npi_valid(npi: str) -> bool:
    """A 10-digit NPI whose last digit is the Luhn check digit over "80840" + the first 9
    digits (CMS, "Requirements for NPI check digit", NPPES)."""
    if len(npi) != 10 or not npi.isdigit():
        return False
    digits = [int(c) for c in "80840" + npi[:9]]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10 == int(npi[9])


US_STATES = frozenset({
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN",
    "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH",
    "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "PR", "RI", "SC", "SD", "TN", "TX",
    "UT", "VT", "VA", "VI", "WA", "WV", "WI", "WY", "GU",
})


def _identifiers(req: ClaimRequest, credit_type: str) -> dict[str, Any]:
    """The registry identifiers this credit type needs, checked (ValidationFailed on the
    field). PARS (AMA PRA): NPI, or licence state + number, and birth month/day; CPE
    Monitor (ACPE): NABP e-Profile ID and birth month/day; CE Broker (ANCC hours to state
    boards): licence state + number. Only asked with consent; without consent none kept."""
    out: dict[str, Any] = {}
    if not req.consent:
        return out
    npi = req.npi.strip()
    state = req.licence_state.strip().upper()
    number = req.licence_number.strip()
    eprofile = req.nabp_eprofile_id.strip()
    if npi and not npi_valid(npi):
        raise ValidationFailed("An NPI is 10 digits with a valid check digit.", field="npi")
    if state and state not in US_STATES:
        raise ValidationFailed("Use the two-letter state code, e.g. MA.", field="licence_state")
    if len(number) > 40:
        raise ValidationFailed("A licence number has at most 40 characters.",
                               field="licence_number")
    if eprofile and not (eprofile.isdigit() and 1 <= len(eprofile) <= 7):
        raise ValidationFailed("The NABP e-Profile ID is a number of up to 7 digits.",
                               field="nabp_eprofile_id")
    month = day = None
    if req.birth_month or req.birth_day:
        try:
            month, day = int(req.birth_month), int(req.birth_day)
            if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(2000, month)[1]:
                raise ValueError
        except ValueError:
            raise ValidationFailed("Enter a real birth month and day.",
                                   field="birth_day") from None
    if credit_type == "ama_pra_1":
        if not npi and not (state and number):
            raise ValidationFailed("ACCME's PARS needs your NPI, or your licence state and "
                                   "number, to report AMA PRA credit.", field="npi")
        if month is None:
            raise ValidationFailed("PARS needs your birth month and day.", field="birth_month")
    if credit_type == "acpe":
        if not eprofile:
            raise ValidationFailed("CPE Monitor needs your NABP e-Profile ID.",
                                   field="nabp_eprofile_id")
        if month is None:
            raise ValidationFailed("CPE Monitor needs your birth month and day.",
                                   field="birth_month")
    if credit_type == "ancc" and not (state and number):
        raise ValidationFailed("CE Broker needs your licence state and number.",
                               field="licence_number")
    out.update(npi=npi or None, licence_state=state or None, licence_number=number or None,
               nabp_eprofile_id=eprofile or None, birth_month=month, birth_day=day)
    return out


def claim_credit(activity: CreditActivity, user: User, req: ClaimRequest, now: datetime,
                 verify_url: Callable[[str], str]) -> CreditClaim:
    """Record a claim and issue its certificate.

    Refusals, in this order (each tested via HTTP in tests/credits/test_claims.py):
    :class:`Conflict` (409) when the post-test is not passed, the evaluation not submitted,
    today (organisation time) is outside release..termination, or a claim of this type is
    already in force; :class:`ValidationFailed` (422, on the field) for an unknown
    profession, a type the activity does not offer or the profession may not claim, credits
    off the 0.25 grid or above the maximum, or an identifier the registry needs.

    ``verify_url``: code -> absolute URL of the public verification page (for the QR).
    """
    state = claim_state(activity, user, now)
    if state.completion is None:
        raise Conflict("Credit can be claimed only after you pass the post-test.")
    if not state.evaluated:
        raise Conflict("Please submit the activity's evaluation before claiming credit.")
    today = local_today(user.organisation.timezone, now)
    if today < activity.release_date:
        raise Conflict(f"This activity opens for credit on {activity.release_date:%-d %B %Y}.")
    if today > activity.termination_date:
        raise Conflict("This activity's credit ended on "
                       f"{activity.termination_date:%-d %B %Y}; no new claims are accepted.")
    if req.profession not in PROFESSIONS:
        raise ValidationFailed("Choose your profession.", field="profession")
    offers = {o.credit_type: o for o in activity.offers}
    offer = offers.get(req.credit_type)
    if offer is None:
        raise ValidationFailed("This activity does not offer that credit type.",
                               field="credit_type")
    if req.credit_type not in ALLOWED_TYPES[req.profession]:
        raise ValidationFailed(f"{CREDIT_TYPES[req.credit_type]} cannot be claimed by a "
                               f"{PROFESSIONS[req.profession].lower()}.", field="credit_type")
    if (req.credit_type == "acpe" and activity.acpe_audience == "technician"
            and req.profession != "pharmacy_technician"):
        raise ValidationFailed("This ACPE activity (UAN ending T) is for pharmacy "
                               "technicians.", field="credit_type")
    if (req.credit_type == "acpe" and activity.acpe_audience == "pharmacist"
            and req.profession != "pharmacist"):
        raise ValidationFailed("This ACPE activity (UAN ending P) is for pharmacists.",
                               field="credit_type")
    amount = parse_credits(req.credits, offer.max_credits)
    if any(c.credit_type == req.credit_type and c.current for c in state.claims):
        raise Conflict("You have already claimed this credit type for this activity; ask "
                       "the CE office to correct a claim.")
    identifiers = _identifiers(req, req.credit_type)
    _save_profile(user.id, req.profession, identifiers, req.consent, now)
    claim = CreditClaim(organisation_id=activity.organisation_id, activity_id=activity.id,
                        user_id=user.id, completion_id=state.completion.id,
                        credit_type=req.credit_type, credits=amount,
                        learner_name=user.name or user.email or f"Learner {user.id}",
                        profession=req.profession,
                        completed_on=local_today(user.organisation.timezone,
                                                 state.completion.completed_at),
                        claimed_at=now)
    db.session.add(claim)
    db.session.flush()
    issue_certificate(claim, verify_url)
    record_audit("credits.claimed", actor=user, organisation_id=activity.organisation_id,
                 target=("credit_claim", claim.id),
                 details={"credit_type": claim.credit_type, "credits": str(claim.credits),
                          "activity_id": activity.id})
    return claim


def _save_profile(user_id: int, profession: str, identifiers: dict[str, Any], consent: bool,
                  now: datetime) -> CeProfile:
    """Keep the profession always; identifiers only with consent (and only those given)."""
    profile = db.session.scalar(select(CeProfile).where(CeProfile.user_id == user_id))
    if profile is None:
        profile = CeProfile(user_id=user_id, profession=profession)
        db.session.add(profile)
    profile.profession = profession
    if consent:
        for key, value in identifiers.items():
            if value is not None:
                setattr(profile, key, value)
        if not profile.consent_to_report:
            profile.consent_at = now
        profile.consent_to_report = True
    db.session.flush()
    return profile


def revoke_and_reissue(organisation_id: int, claim_id: int, actor: User, reason: str,
                       credits: str | None, now: datetime,
                       verify_url: Callable[[str], str]) -> CreditClaim | None:
    """Correct a claim: revoke it (its certificate then verifies as revoked) and, when
    ``credits`` is given, issue a new claim and certificate for that amount.

    Raises :class:`NotFound` for another organisation's claim, :class:`Conflict` for a
    claim already revoked, :class:`ValidationFailed` without a reason or with bad credits.
    Audited with before/after.
    """
    claim = db.session.get(CreditClaim, claim_id)
    if claim is None or claim.organisation_id != organisation_id:
        raise NotFound("There is no such claim.")
    if claim.status != "active":
        raise Conflict("This claim was already revoked.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Say why the claim is corrected.", field="reason")
    amount = None
    if credits not in (None, ""):
        offer = next((o for o in claim.activity.offers if o.credit_type == claim.credit_type),
                     None)
        if offer is None:
            raise ValidationFailed("The activity no longer offers this credit type.",
                                   field="credits")
        amount = parse_credits(credits, offer.max_credits)
    claim.status, claim.current, claim.revoked_at = "revoked", None, now
    claim.revoked_reason = reason
    db.session.flush()
    new = None
    if amount is not None:
        new = CreditClaim(organisation_id=claim.organisation_id, activity_id=claim.activity_id,
                          user_id=claim.user_id, completion_id=claim.completion_id,
                          credit_type=claim.credit_type, credits=amount,
                          learner_name=claim.learner_name, profession=claim.profession,
                          completed_on=claim.completed_on, claimed_at=now,
                          replaces_id=claim.id)
        db.session.add(new)
        db.session.flush()
        issue_certificate(new, verify_url)
    record_audit("credits.claim_corrected", actor=actor, organisation_id=organisation_id,
                 target=("credit_claim", claim.id),
                 details={"credits": {"before": str(claim.credits),
                                      "after": str(amount) if amount is not None else None},
                          "status": {"before": "active", "after": "revoked"},
                          "reason": reason, "reissued_claim": new.id if new else None})
    return new


# ------------------------------------------------------------------ certificates


def new_code() -> str:
    """A verification code: 12 characters of Crockford-style base32 (60 bits), grouped
    XXXX-XXXX-XXXX for reading aloud; unguessable, so verification needs no sign-in."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    raw = "".join(secrets.choice(alphabet) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def issue_certificate(claim: CreditClaim, verify_url: Callable[[str], str]) -> Certificate:
    """Render and store the claim's certificate (bytes + SHA-256); never re-rendered."""
    from lms_plugin.credits.pdf import certificate_pdf

    code = new_code()
    pdf = certificate_pdf(claim, claim.activity, code, verify_url(code))
    certificate = Certificate(claim_id=claim.id, code=code, pdf=pdf,
                              sha256=hashlib.sha256(pdf).hexdigest(), issued_at=claim.claimed_at)
    db.session.add(certificate)
    db.session.flush()
    return certificate


def learner_certificate(user: User, code: str) -> Certificate:
    """A certificate by code for its owner, or for an officer/admin of its organisation
    (the CE office answers auditors); for anyone else it is a 404."""
    certificate = db.session.scalar(select(Certificate).where(Certificate.code == code))
    if certificate is None:
        raise NotFound("There is no such certificate.")
    claim = certificate.claim
    staff = (claim.organisation_id == user.organisation_id
             and bool(user.role_names & {"officer", "admin"}))
    if claim.user_id != user.id and not staff:
        raise NotFound("There is no such certificate.")
    return certificate


@dataclass(frozen=True)
class Verification:
    """What the public page shows (and nothing more)."""

    name: str
    activity: str
    completed_on: date
    credits: Decimal
    credit_type: str
    valid: bool
    revoked_on: date | None


def verify(code: str) -> Verification:
    """Public check of a code; :class:`NotFound` for any unknown or malformed code. The
    revocation date is the organisation's calendar day, as the completion date is."""
    code = (code or "").strip().upper()
    if len(code) > 32:
        raise NotFound("Not found")
    certificate = db.session.scalar(select(Certificate).where(Certificate.code == code))
    if certificate is None:
        raise NotFound("Not found")
    claim = certificate.claim
    return Verification(name=claim.learner_name, activity=claim.activity.title,
                        completed_on=claim.completed_on, credits=claim.credits,
                        credit_type=credit_label(claim.credit_type, claim.activity),
                        valid=claim.status == "active",
                        revoked_on=(local_today(db.session.get(Organisation, claim.organisation_id)
                                                .timezone, claim.revoked_at)
                                    if claim.revoked_at else None))


def credit_label(credit_type: str, activity: CreditActivity | None = None) -> str:
    """The printed name of a credit type ("other" shows the activity's designation)."""
    if credit_type == "other" and activity is not None:
        offer = next((o for o in activity.offers if o.credit_type == "other"), None)
        if offer is not None and offer.designation:
            return offer.designation
    return CREDIT_TYPES[credit_type]


# ------------------------------------------------------------------ transcript


@dataclass(frozen=True)
class CycleTotal:
    credit_type: str
    label: str
    start: date
    end: date
    total: Decimal
    target: Decimal | None

    @property
    def percent(self) -> int | None:
        if not self.target:
            return None
        return min(100, int(self.total * 100 / self.target))


def cycle_window(end: date, years: int) -> tuple[date, date]:
    """The ``years``-year cycle ending on ``end`` inclusive: from the day after the same
    date ``years`` earlier (29 February falls back to 28 February)."""
    try:
        start = end.replace(year=end.year - years)
    except ValueError:
        start = end.replace(year=end.year - years, day=28)
    return start + timedelta(days=1), end


def transcript(user_id: int, cycle_end: date) -> tuple[list[CreditClaim], list[CycleTotal]]:
    """The learner's credits in force (newest first) and, per credit type, the total in the
    cycle ending on ``cycle_end`` (3 years for every type; the target where one is
    published: CPHIMS 45 hours). A claim counts in the cycle of its completion date."""
    claims = list(db.session.scalars(
        select(CreditClaim).where(CreditClaim.user_id == user_id,
                                  CreditClaim.status == "active")
        .options(selectinload(CreditClaim.certificate))
        .order_by(CreditClaim.completed_on.desc(), CreditClaim.id.desc())))
    totals = []
    for credit_type in CREDIT_TYPES:
        target, years = CYCLES.get(credit_type, (None, 3))
        start, end = cycle_window(cycle_end, years)
        mine = [c for c in claims if c.credit_type == credit_type]
        if not mine and target is None:
            continue
        total = sum((c.credits for c in mine if start <= c.completed_on <= end), Decimal(0))
        totals.append(CycleTotal(credit_type, CREDIT_TYPES[credit_type], start, end, total,
                                 target))
    return claims, totals


# ------------------------------------------------------------------ retention


def person_by_email(organisation_id: int, email: str) -> int:
    """The id of the organisation's person with this email; :class:`NotFound` otherwise."""
    user_id = db.session.scalar(select(User.id).where(
        User.organisation_id == organisation_id,
        User.email == (email or "").strip().lower()))
    if user_id is None:
        raise NotFound(f"No person with the email {email!r} in this organisation.")
    return user_id


def anonymise_person(organisation_id: int, user_id: int, actor: User | None) -> None:
    """Remove a person while keeping the six-year credit record.

    Kept: the user row (deactivated, name replaced by "Removed person <id>"), completions,
    claims (their ``learner_name`` snapshot is what the record must show), certificates.
    Removed: email, job role, department, facility, local credential, role grants,
    sessions, the CE profile's registry identifiers and birth date (consent withdrawn),
    and the link between the person and their evaluation answers. Audited.
    Raises :class:`NotFound` for a person of another organisation.
    """
    user = db.session.get(User, user_id)
    if user is None or user.organisation_id != organisation_id:
        raise NotFound("There is no such person.")
    db.session.execute(update(EvaluationResponse).where(EvaluationResponse.user_id == user_id)
                       .values(user_id=None))
    db.session.execute(update(CeProfile).where(CeProfile.user_id == user_id).values(
        npi=None, licence_state=None, licence_number=None, nabp_eprofile_id=None,
        birth_month=None, birth_day=None, consent_to_report=False, consent_at=None))
    for model in (LocalCredential, RoleGrant, UserSession):
        for row in db.session.scalars(select(model).where(model.user_id == user_id)):
            db.session.delete(row)
    user.grants = []
    user.credential = None
    user.name = f"Removed person {user.id}"
    user.email = None
    user.job_role = user.department = user.facility = None
    user.active = False
    db.session.flush()
    record_audit("credits.person_anonymised", actor=actor, organisation_id=organisation_id,
                 target=("user", user_id), details={"kept": "completions, credit claims, "
                                                            "certificates"})


def offered_types(activity: CreditActivity) -> Iterable[tuple[str, str, Decimal]]:
    for offer in activity.offers:
        yield offer.credit_type, credit_label(offer.credit_type, activity), offer.max_credits
