"""The one rule for the JSON types and sizes of the id_token claims the tool reads.

A signed id_token is still input: a platform (or whoever holds its key) may send ``name`` as
an object, ``roles`` as a string, ``iat`` as a string, custom values as objects, an email of
10 000 characters or a NUL character PostgreSQL cannot store. Every claim the tool reads is
declared once in :data:`SCHEMA` with its type and size, and :func:`check` either refuses
the token (:class:`ClaimError`, naming the claim: the launch answers 400 and writes nothing)
or normalises it, the same way for every claim:

- the wrong JSON type is refused (an identifier may be a JSON number: LTI 1.3 core §5.3.1
  and §5.4.1 give ``context.id`` and ``resource_link.id`` as strings, but platforms have
  sent numbers, and a number has one obvious text); ``null`` means absent;
- an over-long identifier, URL or email is refused (cut, it would name something else);
  over-long display text (a name, a course title) is cut to its column;
- text with a NUL character is refused (no database column can hold it).

Claims the tool does not read are left alone (they are never stored). Used by
:meth:`lms_plugin.lti.tool.LaunchValidator.validate_required_claims`, after the signature
check; what it returns is what the launch then reads. Also :func:`person_fields` for the
same fields in NRPS roster entries.
"""

from __future__ import annotations

import typing as t
from collections.abc import Mapping
from dataclasses import dataclass, field

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DL_SETTINGS_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"


class ClaimError(ValueError):
    """A claim of the wrong type or size; ``reason`` names it (shown on the 400 page)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Text:
    """A string of at most ``max_len`` characters. ``cut``: display text, shortened when
    longer; otherwise refused. ``number_ok``: a JSON number is taken as its decimal text."""

    max_len: int
    required: bool = False
    cut: bool = False
    number_ok: bool = False

    def __call__(self, name: str, value: t.Any) -> t.Any:
        if (type(value) is str and len(value) <= self.max_len and "\x00" not in value
                and (value or not self.required)):
            return value  # the common case, checked cheaply (every launch runs this)
        name = _label(name)
        if self.number_ok and isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ClaimError(f"claim {name} must be a string, not {_json_type(value)}")
        if "\x00" in value:
            raise ClaimError(f"claim {name} contains a NUL character")
        if len(value) > self.max_len:
            if not self.cut:
                raise ClaimError(f"claim {name} is longer than {self.max_len} characters")
            value = value[:self.max_len]
        if self.required and not value:
            raise ClaimError(f"claim {name} must not be empty")
        return value


@dataclass(frozen=True)
class Integer:
    """A JSON integer (NumericDate claims: RFC 7519 §2, §4.1.4-4.1.6)."""

    required: bool = False

    def __call__(self, name: str, value: t.Any) -> t.Any:
        if not isinstance(value, int | float) or isinstance(value, bool):
            name = _label(name)
            raise ClaimError(f"claim {name} must be a number (NumericDate), "
                             f"not {_json_type(value)}")
        return value


@dataclass(frozen=True)
class Array:
    """A JSON array of ``item`` values (at most ``max_items``)."""

    item: Text
    required: bool = False
    max_items: int = 100

    def __call__(self, name: str, value: t.Any) -> t.Any:
        if not isinstance(value, list):
            raise ClaimError(f"claim {_label(name)} must be an array, not {_json_type(value)}")
        if len(value) > self.max_items:
            raise ClaimError(f"claim {_label(name)} has more than {self.max_items} entries")
        item = self.item
        return [item(f"{name}[{n}]", v) for n, v in enumerate(value)]


@dataclass(frozen=True)
class Obj:
    """A JSON object whose listed members are checked (others kept as sent, unread)."""

    members: Mapping[str, t.Any] = field(default_factory=dict)
    required: bool = False

    def __call__(self, name: str, value: t.Any) -> t.Any:
        if not isinstance(value, Mapping):
            raise ClaimError(f"claim {_label(name)} must be an object, not {_json_type(value)}")
        return _check_members(name + ".", value, self.members)


def _label(name: str) -> str:
    """A claim's name as people read it: LTI claims without their URI prefix."""
    return name.replace(CLAIM, "")


def _json_type(value: t.Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return "null"


def _check_members(prefix: str, body: Mapping[str, t.Any], members: Mapping[str, t.Any]
                   ) -> dict[str, t.Any]:
    out = dict(body)
    for key, rule in members.items():
        value = body.get(key)
        if value is None:
            if rule.required:
                raise ClaimError(f"missing claim {_label(prefix + key)}")
            out.pop(key, None)
            continue
        out[key] = rule(prefix + key, value)
    return out


#: Sizes follow the columns the values go to (``accounts.models.User``,
#: ``lti.models``); URLs the tool calls back are refused when longer than their column.
URL = Text(1000)
PROFILE_TEXT = Text(200, cut=True)
#: Custom parameters the tool reads (LTI 1.3 core §5.4.6: values are strings; Canvas
#: substitutes some as numbers). Other custom parameters are not read, so not checked.
CUSTOM = Obj({
    "module": Text(2000, number_ok=True),  # then matched against the slug pattern
    "job_role": Text(100, number_ok=True, cut=True),
    "department": Text(100, number_ok=True, cut=True),
    "facility": Text(100, number_ok=True, cut=True),
    "hire_date": Text(40, number_ok=True, cut=True),  # YYYY-MM-DD; anything else ignored
})

SCHEMA: dict[str, t.Any] = {
    "sub": Text(255, required=True),
    "iat": Integer(required=True),
    "exp": Integer(required=True),
    "name": PROFILE_TEXT,
    "given_name": PROFILE_TEXT,
    "family_name": PROFILE_TEXT,
    "email": Text(320),  # refused, never cut: a cut address is someone else's
    CLAIM + "message_type": Text(64, required=True),
    CLAIM + "deployment_id": Text(255, required=True),
    CLAIM + "target_link_uri": Text(2000, required=True),
    CLAIM + "roles": Array(Text(500), required=True),
    CLAIM + "context": Obj({"id": Text(255, required=True, number_ok=True),
                            "title": Text(500, cut=True, number_ok=True),
                            "label": Text(255, cut=True, number_ok=True)}),
    CLAIM + "resource_link": Obj({"id": Text(255, required=True, number_ok=True),
                                  "title": Text(500, cut=True, number_ok=True)}),
    CLAIM + "custom": CUSTOM,
    AGS_CLAIM: Obj({"lineitem": URL, "lineitems": URL, "scope": Array(Text(200))}),
    NRPS_CLAIM: Obj({"context_memberships_url": URL}),
    DL_SETTINGS_CLAIM: Obj({"deep_link_return_url": URL,
                            "accept_types": Array(Text(100)),
                            "title": Text(500, cut=True)}),
}


def check(body: Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The id_token body with every claim of :data:`SCHEMA` checked and normalised (absent
    or ``null`` optional claims removed). Raises :class:`ClaimError` naming the first bad
    claim. Pure: no database, no request."""
    return _check_members("", body, SCHEMA)


#: The same person fields in an NRPS roster member (NRPS 2.0 §2.2: name, given_name,
#: family_name, email as in the id_token).
PERSON = {"name": PROFILE_TEXT, "given_name": PROFILE_TEXT, "family_name": PROFILE_TEXT,
          "email": Text(320)}


def person_fields(member: Mapping[str, t.Any]) -> dict[str, t.Any]:
    """``member`` with its name and email fields checked by the same rule as the id_token's
    (raises :class:`ClaimError`; a roster sync skips such a member)."""
    return _check_members("member ", member, PERSON)
