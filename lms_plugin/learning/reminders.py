"""Reminders (issue 14): learners are mailed when an assignment is due in 14 and in 3 days
and when it becomes overdue; each manager gets a weekly digest of their people's overdue
items.

Which assignments are due is read from the one status function
(:func:`lms_plugin.learning.assignments.status_rows`), so a reminder never disagrees with
what the learner home shows. Each reminder is decided through the ledger
(:class:`~lms_plugin.learning.models.ReminderSent`): ``INSERT … ON CONFLICT (key) DO NOTHING
RETURNING key`` in the transaction that queues its mail, so only the rows this run inserted
are mailed; a re-run, or a second worker running at the same moment, inserts nothing and
mails nothing (PostgreSQL makes the second inserter wait for the first one's commit, then
skip). Mail goes through the outbox (:func:`lms_plugin.mail.queue`).

Thresholds, for an open assignment that is not validly completed (statuses ``not_started``,
``in_progress``, ``expiring_soon``; a completion about to lapse is due again at its lapse):

* ``due_14``: due more than 3 and at most 14 days from now;
* ``due_3``: due in the future and at most 3 days from now;
* ``overdue``: the due date has passed (statuses ``overdue`` and ``expired``).

Only the threshold the assignment is in now is sent (an assignment created 2 days before its
due date gets ``due_3``, not a late ``due_14`` too). A new due date (a lapse, a retraining go-
live) is a new key, so the next cycle is reminded again. ``failed`` items (attempts used up)
are not mailed to the learner, who cannot act on them; they are in the manager's digest.

The link in every mail is the course link (:data:`COURSE_LINK_PROVIDER`, which an LMS
integration may register) or else the tool's module page.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, render_template
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lms_plugin import mail
from lms_plugin.accounts.models import Organisation, User
from lms_plugin.catalog.models import Module, ModuleVersion
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.learning import assignments
from lms_plugin.learning.assignments import StatusRow
from lms_plugin.learning.models import Assignment, ReminderSent

DUE_SOON = timedelta(days=14)
DUE_VERY_SOON = timedelta(days=3)
#: Statuses whose due date a learner can still act on before it passes.
OPEN_STATUSES = ("not_started", "in_progress", "expiring_soon")
#: Statuses past their due date (the learner's "overdue" reminder).
LATE_STATUSES = ("overdue", "expired")
#: What a manager's digest lists: past due, attempts used up included.
DIGEST_STATUSES = ("overdue", "expired", "failed")
#: Ledger rows per execution (the driver pages them further; this bounds memory).
LEDGER_BATCH = 5000

#: ``app.extensions`` key of an optional course-link provider: a callable taking
#: ``(organisation_id, pairs)`` with ``pairs`` a set of (user id, module id) and returning
#: ``{(user_id, module_id): url}`` for the pairs it knows (the LMS course the person takes
#: the module in). Pairs it leaves out link to the tool's module page.
COURSE_LINK_PROVIDER = "lms_plugin.course_links"

SUBJECTS = {
    "due_14": "Training due in 2 weeks",
    "due_3": "Training due in 3 days",
    "overdue": "Training overdue",
}


def threshold(row: StatusRow, now: datetime) -> str | None:
    """The learner reminder ``row`` is in at ``now`` (``due_14``, ``due_3``, ``overdue``),
    or None (completed and valid, failed, or due later than 14 days)."""
    if row.due_at is None:
        return None
    if row.status in LATE_STATUSES and row.due_at <= now:
        return "overdue"
    if row.status in OPEN_STATUSES and row.due_at > now:
        left = row.due_at - now
        if left <= DUE_VERY_SOON:
            return "due_3"
        if left <= DUE_SOON:
            return "due_14"
    return None


def ledger_key(kind: str, row: StatusRow) -> str:
    return f"{kind}:{row.assignment_id}:{row.due_at:%Y-%m-%d}"


def digest_key(manager_id: int, now: datetime) -> str:
    year, week, _ = now.isocalendar()
    return f"digest:{manager_id}:{year}-W{week:02d}"


def claim(organisation_id: int, entries: list[dict], now: datetime) -> set[str]:
    """Insert ledger rows (``key``, ``kind``, ``recipient_id``, ``assignment_id``); the keys
    THIS call inserted (ON CONFLICT DO NOTHING RETURNING: a key already sent, by an earlier
    run or a concurrent worker, is not returned). Flushes nothing else; no commit."""
    if not entries:
        return set()
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = ReminderSent.__table__
    # One compiled statement run with many parameter sets: SQLAlchemy's "insertmanyvalues"
    # sends them in pages and gathers RETURNING (a literal VALUES list of thousands of rows
    # costs more to compile than to run).
    statement = (insert(table).on_conflict_do_nothing(index_elements=["key"])
                 .returning(table.c.key))
    claimed: set[str] = set()
    for start in range(0, len(entries), LEDGER_BATCH):
        batch = [{**e, "organisation_id": organisation_id, "sent_at": now}
                 for e in entries[start:start + LEDGER_BATCH]]
        claimed.update(db.session.execute(statement, batch).scalars().all())
    return claimed


@dataclass
class ReminderReport:
    """What one run did: mails queued to learners and managers, and items they carried."""

    learner_mails: int = 0
    learner_items: int = 0
    digests: int = 0
    digest_items: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def _zone(organisation: Organisation) -> ZoneInfo:
    try:
        return ZoneInfo(organisation.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _titles(module_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """module id -> (slug, title of the newest published version): one statement."""
    ids = sorted(set(module_ids))
    if not ids:
        return {}
    newest = (select(ModuleVersion.module_id, func.max(ModuleVersion.number).label("number"))
              .where(ModuleVersion.module_id.in_(ids), ModuleVersion.status == "published")
              .group_by(ModuleVersion.module_id).subquery())
    rows = db.session.execute(
        select(Module.id, Module.slug, ModuleVersion.title)
        .join(newest, newest.c.module_id == Module.id)
        .join(ModuleVersion, (ModuleVersion.module_id == Module.id)
              & (ModuleVersion.number == newest.c.number)))
    titles = {row.id: (row.slug, row.title) for row in rows}
    for slug_row in db.session.execute(select(Module.id, Module.slug).where(
            Module.id.in_([i for i in ids if i not in titles]))):
        titles[slug_row.id] = (slug_row.slug, slug_row.slug)
    return titles


def _links(organisation_id: int, pairs: set[tuple[int, int]], titles: dict[int, tuple[str, str]],
           base_url: str) -> dict[tuple[int, int], str]:
    provider: Callable | None = current_app.extensions.get(COURSE_LINK_PROVIDER)
    known = dict(provider(organisation_id, pairs)) if provider and pairs else {}
    base = base_url.rstrip("/")
    return {pair: known.get(pair) or f"{base}/modules/{titles[pair[1]][0]}" for pair in pairs}


_PERSON_COLUMNS = (User.id, User.name, User.email, User.active, User.manager_id)


def _assigned_people(organisation_id: int) -> tuple[dict[int, Any], dict[int, Any]]:
    """(people with an open assignment, their managers): id -> row (id, name, email,
    active, manager_id). Columns only, and selected by subqueries rather than a list of ids
    (a run may concern tens of thousands of people): two statements."""
    assigned = select(Assignment.user_id).where(Assignment.organisation_id == organisation_id,
                                                Assignment.closed_at.is_(None))
    people = {row.id: row for row in db.session.execute(
        select(*_PERSON_COLUMNS).where(User.organisation_id == organisation_id,
                                       User.id.in_(assigned)))}
    # A manager of the same organisation only: another organisation never reads these names.
    managers = {row.id: row for row in db.session.execute(
        select(*_PERSON_COLUMNS).where(User.organisation_id == organisation_id, User.id.in_(
            select(User.manager_id).where(User.organisation_id == organisation_id,
                                          User.id.in_(assigned)))))}
    return people, managers


def _mailable(person: Any) -> bool:
    """Active, with one valid address: a malformed address (an LMS profile can carry one)
    is skipped rather than failing the whole organisation's run."""
    if person is None or not person.active or not person.email:
        return False
    try:
        mail.parse_address(person.email)
    except ValueError:
        return False
    return True


def _item(row: StatusRow, kind: str, titles, links, zone: ZoneInfo) -> dict:
    return {"title": titles[row.module_id][1], "link": links[(row.user_id, row.module_id)],
            "due": row.due_at.astimezone(zone).strftime("%-d %b %Y"), "kind": kind,
            "status": assignments.LABELS[row.status]}


def send_reminders(organisation_id: int, now: datetime | None = None,
                   base_url: str | None = None) -> ReminderReport:
    """Queue this organisation's due learner reminders and, once per ISO week, each
    manager's digest; what was queued. Idempotent (the ledger). One status read, one
    statement per ledger batch, one read each of people, managers and module titles:
    never a query per person. Flushes; the edge (the job) commits.

    ``base_url``: ``LMS_BASE_URL`` by default. People without a valid email address or
    inactive are skipped (nothing is recorded for them, so they are reminded once they have one).
    """
    now = now or utcnow()
    base_url = base_url or current_app.config["LMS_BASE_URL"]
    organisation = db.session.get(Organisation, organisation_id)
    zone = _zone(organisation)
    rows = assignments.status_rows(organisation_id, now=now)
    due = [(row, kind) for row in rows if (kind := threshold(row, now)) is not None]
    late = [row for row in rows if row.status in DIGEST_STATUSES and row.due_at is not None
            and row.due_at <= now]
    people, managers = _assigned_people(organisation_id)
    reachable = {uid for uid, p in people.items() if _mailable(p)}
    titles = _titles([row.module_id for row, _ in due] + [row.module_id for row in late])
    pairs = {(row.user_id, row.module_id) for row, _ in due if row.user_id in reachable}
    pairs |= {(row.user_id, row.module_id) for row in late}
    links = _links(organisation_id, pairs, titles, base_url)

    report = ReminderReport()
    # Keys already in the ledger for open assignments (one read) are not offered again: a
    # re-run then inserts nothing. The INSERT … ON CONFLICT below still decides races.
    sent = set(db.session.scalars(select(ReminderSent.key).where(
        ReminderSent.assignment_id.in_(select(Assignment.id).where(
            Assignment.organisation_id == organisation_id, Assignment.closed_at.is_(None))))))
    entries = [{"key": key, "kind": kind, "recipient_id": row.user_id,
                "assignment_id": row.assignment_id}
               for row, kind in due if row.user_id in reachable
               and (key := ledger_key(kind, row)) not in sent]
    claimed = claim(organisation_id, entries, now)
    outgoing: list[mail.Mail] = []
    per_person: dict[int, list[dict]] = defaultdict(list)
    for row, kind in due:
        if row.user_id in reachable and ledger_key(kind, row) in claimed:
            per_person[row.user_id].append(_item(row, kind, titles, links, zone))
    for user_id, items in sorted(per_person.items()):
        items.sort(key=lambda i: ("overdue", "due_3", "due_14").index(i["kind"]))
        person = people[user_id]
        worst = items[0]["kind"]
        context = {"name": person.name or person.email, "items": items,
                   "organisation": organisation.name, "subject": SUBJECTS[worst]}
        outgoing.append(mail.Mail(
            to=person.email, subject=SUBJECTS[worst] if len(items) == 1
            else f"{SUBJECTS[worst]} (and {len(items) - 1} more)",
            text=render_template("learning/mail/reminder.txt", **context),
            html=render_template("learning/mail/reminder.html", **context)))
        report.learner_mails += 1
        report.learner_items += len(items)
        for item in items:
            report.by_kind[item["kind"]] = report.by_kind.get(item["kind"], 0) + 1

    team: dict[int, list[StatusRow]] = defaultdict(list)
    for row in late:
        person = people.get(row.user_id)
        manager = managers.get(person.manager_id) if person and person.manager_id else None
        if _mailable(manager):
            team[manager.id].append(row)
    digest_claims = claim(organisation_id, [
        {"key": digest_key(mid, now), "kind": "digest", "recipient_id": mid,
         "assignment_id": None} for mid in sorted(team)], now)
    for manager_id, late_rows in sorted(team.items()):
        if digest_key(manager_id, now) not in digest_claims:
            continue
        manager = managers[manager_id]
        late_rows.sort(key=lambda r: (people[r.user_id].name, r.due_at))
        items = [{**_item(r, "overdue", titles, links, zone),
                  "person": people[r.user_id].name or people[r.user_id].email or "?"}
                 for r in late_rows]
        context = {"name": manager.name or manager.email, "items": items,
                   "organisation": organisation.name,
                   "people": len({r.user_id for r in late_rows})}
        outgoing.append(mail.Mail(
            to=manager.email,
            subject=f"Weekly training digest: {len(items)} overdue item"
                    f"{'' if len(items) == 1 else 's'} in your team",
            text=render_template("learning/mail/digest.txt", **context),
            html=render_template("learning/mail/digest.html", **context)))
        report.digests += 1
        report.digest_items += len(items)
    mail.queue_many(outgoing, organisation_id=organisation_id)  # one outbox statement
    return report
