"""Registry exports for CE officers: the credits awarded in a date range as the batch files
ACCME PARS, NABP CPE Monitor and CE Broker take (field mapping and sources:
docs/credits.md).

Rules (issue 15): only claims in force of learners who consented to reporting; a learner
whose identifier is missing or malformed is listed for correction and left out of the
file, never exported wrongly. One query per export (claims joined with their activity and
the learner's CE profile), streamed row by row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select

from lms_plugin.credits.models import CeProfile, CreditActivity, CreditClaim
from lms_plugin.credits.pdf import credits_text
from lms_plugin.credits.services import US_STATES, npi_valid
from lms_plugin.errors import NotFound, ValidationFailed
from lms_plugin.extensions import db


@dataclass(frozen=True)
class Registry:
    code: str
    name: str
    credit_type: str
    header: tuple[str, ...]


REGISTRIES: dict[str, Registry] = {
    "pars": Registry("pars", "ACCME PARS (learner completions, AMA PRA Category 1)",
                     "ama_pra_1",
                     ("Activity ID", "First Name", "Last Name", "NPI", "License State",
                      "License Number", "DOB Month", "DOB Day", "Completion Date",
                      "CME Credits")),
    "cpe_monitor": Registry("cpe_monitor", "NABP CPE Monitor (ACPE)", "acpe",
                            ("ePID", "DOB", "UAN", "Participation Date", "Contact Hours",
                             "Participant Type", "First Name", "Last Name")),
    "ce_broker": Registry("ce_broker", "CE Broker roster (ANCC contact hours)", "ancc",
                          ("License Number", "License State", "First Name", "Last Name",
                           "Date Completed", "Hours")),
}


@dataclass(frozen=True)
class Correction:
    """A consenting learner left out of the file, and why (shown to the officer)."""

    claim_id: int
    learner: str
    activity: str
    problem: str


def registry(code: str) -> Registry:
    try:
        return REGISTRIES[code]
    except KeyError:
        raise NotFound("There is no such registry export.") from None


def check_range(start: str, end: str) -> tuple[date, date]:
    """Parse the officer's range (YYYY-MM-DD, inclusive); ValidationFailed on the field."""
    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise ValidationFailed("Enter the first day as YYYY-MM-DD.", field="start") from None
    try:
        last = date.fromisoformat(end)
    except ValueError:
        raise ValidationFailed("Enter the last day as YYYY-MM-DD.", field="end") from None
    if last < first:
        raise ValidationFailed("The last day is before the first day.", field="end")
    return first, last


def split_name(name: str) -> tuple[str, str]:
    """"Zoë Ñúñez" -> ("Zoë", "Ñúñez"): the last word is the last name (the tool stores one
    name; registries match on ID and birth date first)."""
    words = name.split()
    if len(words) < 2:
        return name.strip(), ""
    return " ".join(words[:-1]), words[-1]


def _us_date(value: date) -> str:
    return f"{value:%m/%d/%Y}"


def _rows(organisation_id: int, reg: Registry, first: date, last: date,
          ) -> Iterator[tuple[CreditClaim, CreditActivity, CeProfile]]:
    query = (select(CreditClaim, CreditActivity, CeProfile)
             .join(CreditActivity, CreditActivity.id == CreditClaim.activity_id)
             .join(CeProfile, CeProfile.user_id == CreditClaim.user_id)
             .where(CreditClaim.organisation_id == organisation_id,
                    CreditClaim.credit_type == reg.credit_type,
                    CreditClaim.status == "active",
                    CreditClaim.completed_on >= first, CreditClaim.completed_on <= last,
                    CeProfile.consent_to_report.is_(True))
             .order_by(CreditClaim.completed_on, CreditClaim.id)
             .execution_options(yield_per=500))
    yield from db.session.execute(query)


def _record(reg: Registry, claim: CreditClaim, activity: CreditActivity,
            profile: CeProfile) -> tuple[list[str] | None, str | None]:
    """The file row, or None and the reason it needs correcting."""
    first_name, last_name = split_name(claim.learner_name)
    if not last_name:
        return None, "a first and a last name are needed"
    birth = (f"{profile.birth_month:02d}", f"{profile.birth_day:02d}") \
        if profile.birth_month and profile.birth_day else None
    amount = credits_text(claim.credits)
    if reg.code == "pars":
        npi = profile.npi or ""
        licence = (profile.licence_state or "", profile.licence_number or "")
        if npi and not npi_valid(npi):
            return None, "the NPI fails its check digit"
        if not npi and not all(licence):
            return None, "no NPI and no licence state and number"
        if licence[0] and licence[0] not in US_STATES:
            return None, "the licence state is not a US state code"
        if birth is None:
            return None, "birth month and day are missing"
        return [str(activity.id), first_name, last_name, npi, *licence, *birth,
                _us_date(claim.completed_on), amount], None
    if reg.code == "cpe_monitor":
        epid = profile.nabp_eprofile_id or ""
        if not (epid.isdigit() and 1 <= len(epid) <= 7):
            return None, "the NABP e-Profile ID is missing or not a number of up to 7 digits"
        if birth is None:
            return None, "birth month and day are missing"
        if not activity.acpe_uan:
            return None, "the activity has no ACPE UAN"
        kind = "T" if claim.profession == "pharmacy_technician" else "P"
        return [epid, birth[0] + birth[1], activity.acpe_uan, _us_date(claim.completed_on),
                amount, kind, first_name, last_name], None
    state, number = profile.licence_state or "", profile.licence_number or ""
    if not number:
        return None, "the licence number is missing"
    if state not in US_STATES:
        return None, "the licence state is missing or not a US state code"
    return [number, state, first_name, last_name, _us_date(claim.completed_on), amount], None


def _safe(value: str) -> str:
    """Neutralise spreadsheet formulas (OWASP "CSV Injection")."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def stream_csv(organisation_id: int, code: str, first: date, last: date) -> Iterator[str]:
    """The registry file as CSV text chunks: the header, then one line per valid record."""
    reg = registry(code)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(reg.header)
    yield flush()
    for claim, activity, profile in _rows(organisation_id, reg, first, last):
        row, _ = _record(reg, claim, activity, profile)
        if row is not None:
            writer.writerow([_safe(v) for v in row])
            yield flush()


def record_export(organisation_id: int, code: str, first: date, last: date,
                  actor: Any) -> None:
    """Audit an export of registry identifiers (who, which registry, which range) before
    it streams. :class:`NotFound` for an unknown registry."""
    from lms_plugin.accounts.services import record_audit

    reg = registry(code)
    record_audit("credits.registry_export", actor=actor, organisation_id=organisation_id,
                 target=("registry", reg.code),
                 details={"start": first.isoformat(), "end": last.isoformat()})


def summary(organisation_id: int, first: date, last: date) -> dict[str, Any]:
    """Per registry (one query each): how many records the file holds and the corrections
    needed."""
    result = {}
    for code, reg in REGISTRIES.items():
        exported, fixes = 0, []
        for claim, activity, profile in _rows(organisation_id, reg, first, last):
            _, problem = _record(reg, claim, activity, profile)
            if problem:
                fixes.append(Correction(claim.id, claim.learner_name, activity.title, problem))
            else:
                exported += 1
        result[code] = {"registry": reg, "exported": exported, "fixes": fixes}
    return result
