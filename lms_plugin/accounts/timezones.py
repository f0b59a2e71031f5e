"""Times shown to people: stored in UTC, shown in the organisation's time zone.

One rule for every page (the ``localtime`` Jinja filter, registered by ``create_app``) and
for the audit page's date filters (a date typed by an officer is a day in their
organisation's zone, converted to a UTC range). Zone names are IANA names (``zoneinfo``,
PEP 615), validated by :func:`lms_plugin.accounts.services.check_timezone`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import Markup, escape


def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """The ``ZoneInfo`` of ``name`` (an IANA name), or of ``fallback`` when it is empty or
    unknown (a stored zone is validated on the way in; this keeps a page from failing)."""
    for candidate in (name, fallback, "UTC"):
        try:
            if candidate:
                return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def to_zone(when: datetime, tz: ZoneInfo) -> datetime:
    """``when`` (aware; a naive value is taken as UTC, as the database stores it) in ``tz``."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(tz)


def format_local(when: datetime | None, tz: ZoneInfo, *, seconds: bool = False) -> str:
    """``30 Nov 2026, 09:15 EST``: the local time with the zone's abbreviation (``%Z``; for
    a zone without one, zoneinfo gives the offset such as ``+0530``). Month names are
    English abbreviations (``%b`` in the C locale the server runs in)."""
    if when is None:
        return ""
    local = to_zone(when, tz)
    clock = local.strftime("%H:%M:%S" if seconds else "%H:%M")
    return f"{local.day} {local.strftime('%b %Y')}, {clock} {local.strftime('%Z')}"


def time_element(when: datetime | None, tz: ZoneInfo, *, seconds: bool = False,
                 empty: str = "—") -> Markup:
    """``<time datetime="2026-11-30T14:15:00Z" title="America/New_York">30 Nov 2026, 09:15
    EST</time>``: machine-readable UTC in the attribute, the organisation's zone shown (its
    IANA name in the tooltip)."""
    if when is None:
        return escape(empty)
    utc = to_zone(when, ZoneInfo("UTC"))
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        utc.strftime("%Y-%m-%dT%H:%M:%SZ"), tz.key, format_local(when, tz, seconds=seconds))


def day_range(start: date | None, end: date | None,
              tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """The UTC instants bounding the local days ``start``..``end`` (both inclusive) in
    ``tz``: ``[start 00:00 local, end+1 00:00 local)``. Either may be None (open)."""
    low = datetime.combine(start, time.min, tz).astimezone(UTC) if start else None
    high = (datetime.combine(end + timedelta(days=1), time.min, tz).astimezone(UTC)
            if end else None)
    return low, high
