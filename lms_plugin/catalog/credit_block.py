"""The ``credit:`` block of a module's ``module.yaml``: a continuing-education activity as
data, checked with ``file:line`` problems like the rest of the content format.

It lives in ``catalog`` (layer 3) because ``content_format`` validates the whole module
folder before anything is written, and ``catalog`` cannot import ``credits`` (layer 6).
Only the *data* is checked here; ``credits`` stores it (it receives
``events.module_imported`` at import, and its author page edits the same YAML).

Example::

    credit:
      title: "Safe CPOE ordering"
      versions: [1, 2]            # optional; empty or absent = every version
      provider:
        name: "General Hospital CME Office"
        address: "1 Main St, Boston, MA 02114"
      accreditation: "General Hospital is accredited by the ACCME to provide ..."
      designation: "General Hospital designates this enduring material for a maximum of ..."
      objectives: ["Place a medication order with the correct dose"]
      faculty:
        - {name: "Ana Ruiz", credentials: "MD", disclosure: "none"}
      release_date: 2026-01-01
      last_review_date: 2026-01-01
      termination_date: 2028-12-31
      acpe: {uan: "JA0000000-0000-26-001-H04-P"}     # only with an acpe credit
      credits:
        ama_pra_1: 1.5
        ancc: 1.5
        other: {max: 1, designation: "Certificate of participation"}

ACPE UAN format (ACPE "Universal Activity Number" guidance): provider number, "-0000-"
(joint providership code), two-digit year, "-" three-digit sequence, "-" topic designator
(a letter and two digits), "-" P (pharmacists) or T (technicians). Enduring material is
reviewed at least every 3 years (ACCME and ANCC rules for enduring materials), so the
termination date may be at most 3 years after the last review.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from lms_plugin.catalog.content_format import Problem

#: Credit types (code -> the name printed on certificates and transcripts).
CREDIT_TYPES: dict[str, str] = {
    "ama_pra_1": "AMA PRA Category 1 Credit™",
    "ancc": "ANCC nursing contact hours",
    "acpe": "ACPE contact hours",
    "cphims": "CAHIMS/CPHIMS CE hours",
    "other": "Other",
}
KEYS = ("title", "versions", "provider", "accreditation", "designation", "objectives",
        "faculty", "format", "release_date", "last_review_date", "termination_date", "acpe",
        "credits")
UAN_RE = re.compile(r"^[A-Z0-9]{2,12}-[0-9]{4}-[0-9]{2}-[0-9]{3}-[A-Z][0-9]{2}-([PT])$")
MAX_CREDITS = Decimal(100)


def validate_credit(data: Any, rel: str, problems: list[Problem], line: int = 1,
                    ) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Check a parsed ``credit:`` mapping (a YMap from ``parse_yaml``; plain dicts work
    too, without lines). Every problem is collected, not only the first."""
    start = len(problems)

    def add(where: int | None, message: str) -> None:
        problems.append(Problem(rel, where, message))

    if not isinstance(data, dict):
        add(line, "credit must be a mapping of key: value lines")
        return None, problems
    lines = getattr(data, "value_lines", {})
    key_lines = getattr(data, "key_lines", {})
    own = getattr(data, "line", line)

    def at(key: str) -> int:
        return lines.get(key, own)

    for key in data:
        if key not in KEYS:
            add(key_lines.get(key, own), f"unknown key '{key}' in credit (known: "
                                         f"{', '.join(KEYS)})")

    def text(key: str, required: bool = True, limit: int = 4000, source: Any = None,
             name: str | None = None) -> str:
        mapping = data if source is None else source
        value = mapping.get(key)
        where = (getattr(mapping, "value_lines", {}).get(key, getattr(mapping, "line", own)))
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                add(where, f"'{name or key}' is required")
            return ""
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            add(where, f"'{name or key}' must be text")
            return ""
        value = str(value).strip()
        if len(value) > limit:
            add(where, f"'{name or key}' is {len(value)} characters; at most {limit}")
            return ""
        return value

    def day(key: str) -> date | None:
        value = data.get(key)
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        add(at(key), f"'{key}' must be a date written YYYY-MM-DD" if value is not None
            else f"'{key}' is required")
        return None

    spec: dict[str, Any] = {"title": text("title", limit=300)}
    provider = data.get("provider")
    if not isinstance(provider, dict):
        add(at("provider"), "'provider' must be a mapping with name and address")
        provider = {}
    spec["provider_name"] = text("name", source=provider, limit=200, name="provider.name")
    spec["provider_address"] = text("address", required=False, source=provider,
                                    name="provider.address")
    spec["accreditation_statement"] = text("accreditation")
    spec["designation_statement"] = text("designation")
    fmt = text("format", required=False, limit=50) or "enduring material"
    if fmt != "enduring material":
        add(at("format"), "'format' must be 'enduring material' (the only format this tool "
                          "delivers)")
    spec["format"] = fmt
    versions = data.get("versions") or []
    if not isinstance(versions, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 100000
            for v in versions):
        add(at("versions"), "'versions' must be a list of version numbers, e.g. [1, 2]")
        versions = []
    spec["versions"] = sorted(set(versions))
    objectives = data.get("objectives")
    if not isinstance(objectives, list) or not objectives or not all(
            isinstance(o, str) and o.strip() for o in objectives):
        add(at("objectives"), "'objectives' must be a list of at least one objective")
        objectives = []
    spec["objectives"] = [o.strip() for o in objectives]
    faculty_out = []
    faculty = data.get("faculty")
    if not isinstance(faculty, list) or not faculty:
        add(at("faculty"), "'faculty' must list at least one person (name, credentials, "
                           "disclosure; disclosure 'none' when there is nothing to disclose)")
        faculty = []
    item_lines = getattr(faculty, "item_lines", [])
    for index, person in enumerate(faculty):
        where = item_lines[index] if index < len(item_lines) else at("faculty")
        if not isinstance(person, dict):
            add(where, "each faculty entry must be a mapping of name, credentials, disclosure")
            continue
        name = text("name", source=person, limit=200, name="faculty name")
        credentials = text("credentials", source=person, limit=100, required=False)
        disclosure = text("disclosure", source=person, limit=2000,
                          name=f"disclosure of {name or 'faculty'}")
        faculty_out.append({"name": name, "credentials": credentials,
                            "disclosure": disclosure})
    spec["faculty"] = faculty_out
    for key in ("release_date", "last_review_date", "termination_date"):
        spec[key] = day(key)
    if spec["release_date"] and spec["termination_date"] and \
            spec["termination_date"] < spec["release_date"]:
        add(at("termination_date"), "'termination_date' is before 'release_date'")
    if spec["last_review_date"] and spec["termination_date"] and \
            spec["termination_date"] > spec["last_review_date"] + timedelta(days=3 * 365):
        add(at("termination_date"), "'termination_date' is more than 3 years after "
                                    "'last_review_date': enduring material is reviewed at "
                                    "least every 3 years")
    credits_out: dict[str, dict[str, Any]] = {}
    credits = data.get("credits")
    if not isinstance(credits, dict) or not credits:
        add(at("credits"), "'credits' must map at least one credit type to its maximum "
                           f"({', '.join(CREDIT_TYPES)})")
        credits = {}
    for credit_type, value in credits.items():
        where = getattr(credits, "value_lines", {}).get(credit_type, at("credits"))
        if credit_type not in CREDIT_TYPES:
            add(where, f"unknown credit type '{credit_type}' (known: "
                       f"{', '.join(CREDIT_TYPES)})")
            continue
        designation = ""
        if isinstance(value, dict):
            designation = str(value.get("designation") or "").strip()
            value = value.get("max")
        if credit_type == "other" and not designation:
            add(where, "credit type 'other' needs {max: N, designation: \"...\"}")
        try:
            maximum = Decimal(str(value)) if not isinstance(value, bool) else None
        except InvalidOperation:
            maximum = None
        if maximum is None or not maximum.is_finite() or not 0 < maximum <= MAX_CREDITS \
                or maximum % Decimal("0.25"):
            add(where, f"the maximum for '{credit_type}' must be a number of credits above 0 "
                       f"and at most {MAX_CREDITS}, in steps of 0.25, not {value!r}")
            continue
        credits_out[credit_type] = {"max": maximum, "designation": designation[:200]}
    spec["credits"] = credits_out
    spec["acpe_uan"] = spec["acpe_audience"] = None
    acpe = data.get("acpe")
    if "acpe" in credits:
        uan = text("uan", source=acpe, limit=30, name="acpe.uan") if isinstance(acpe, dict) \
            else ""
        if not isinstance(acpe, dict):
            add(at("acpe"), "an 'acpe' credit needs acpe: {uan: \"...\"}")
        match = UAN_RE.match(uan) if uan else None
        if uan and not match:
            add(getattr(acpe, "value_lines", {}).get("uan", at("acpe")),
                f"'{uan}' is not a UAN (e.g. JA0000000-0000-26-001-H04-P)")
        if match:
            spec["acpe_uan"] = uan
            spec["acpe_audience"] = "pharmacist" if match.group(1) == "P" else "technician"
    elif acpe is not None:
        add(at("acpe"), "'acpe' is given but 'credits' has no acpe credit")
    if len(problems) > start:
        return None, problems
    return spec, problems
