"""``lms-plugin assignments …`` and ``lms-plugin attempts …``: thin commands over
``learning.assignments`` (issue 14). Each command commits once, or writes nothing and
prints one line naming the problem."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TypeVar

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from lms_plugin.accounts import roster
from lms_plugin.accounts.models import User
from lms_plugin.accounts.services import resolve_organisation
from lms_plugin.clitypes import PathArg
from lms_plugin.db import utcnow
from lms_plugin.errors import DomainError, NotFound
from lms_plugin.extensions import db
from lms_plugin.learning import assignments
from lms_plugin.learning.models import Assignment

assignments_cli = AppGroup("assignments",
                           help="Assignment rules: who must complete which module, by when.")
attempts_cli = AppGroup("attempts", help="Extra quiz attempts for a person (audited).")
rule_cli = AppGroup("rule", help="Add, list and remove assignment rules.")
assignments_cli.add_command(rule_cli)

_ORG_OPTION = click.option("--organisation",
                           help="Organisation (default: the only one there is).")
T = TypeVar("T")


def at_edge(work: Callable[[], T]) -> T:
    """Run ``work`` and commit, or roll back and turn a domain error into one CLI line."""
    try:
        result = work()
    except DomainError as exc:
        db.session.rollback()
        where = f" ({exc.field})" if exc.field else ""
        raise click.ClickException(f"{exc.message}{where}") from None
    db.session.commit()
    return result


def _values(text: str | None) -> list[str]:
    return [v.strip() for v in (text or "").split(",") if v.strip()]


@rule_cli.command("add")
@click.argument("module_slug")
@click.option("--due-days", type=click.IntRange(0, 3650),
              help="Due this many days after the rule starts to apply to the person.")
@click.option("--due-on", type=click.DateTime(["%Y-%m-%d"]),
              help="A fixed due date (YYYY-MM-DD, 00:00 UTC).")
@click.option("--every-months", "recurrence", type=click.IntRange(1, 120),
              help="Recurs this many months after the person's last completion.")
@click.option("--facilities", help="Comma-separated facilities (default: any).")
@click.option("--departments", help="Comma-separated departments (default: any).")
@click.option("--job-roles", help="Comma-separated job roles, spelled as the modules' "
              "audience (default: any).")
@click.option("--no-retraining-reopen", is_flag=True,
              help="A retraining-required version does NOT reopen this assignment.")
@click.option("--name", default="", help="A label for the rule.")
@_ORG_OPTION
def rule_add(module_slug: str, due_days: int | None, due_on, recurrence: int | None,
             facilities: str | None, departments: str | None, job_roles: str | None,
             no_retraining_reopen: bool, name: str, organisation: str | None) -> None:
    """Assign MODULE_SLUG to an audience (no audience option = everyone) and evaluate it."""
    def work():
        org = resolve_organisation(organisation)
        spec = assignments.RuleSpec(
            module_slug=module_slug, due_days=due_days,
            due_on=due_on.date() if due_on else None, recurrence_months=recurrence,
            facilities=_values(facilities), departments=_values(departments),
            job_roles=_values(job_roles), reopen_on_retraining=not no_retraining_reopen,
            name=name)
        rule = assignments.add_rule(org.id, spec, actor=None, now=utcnow())
        opened = db.session.scalar(select(func.count()).where(
            Assignment.rule_id == rule.id,
            Assignment.closed_at.is_(None)))
        return rule.id, opened
    rule_id, opened = at_edge(work)
    click.echo(f"Added rule {rule_id} for {module_slug}: {opened} person(s) assigned.")


@rule_cli.command("list")
@_ORG_OPTION
def rule_list(organisation: str | None) -> None:
    """List current rules: id, module, due, recurrence, audience, open assignments."""
    rules = at_edge(lambda: assignments.list_rules(resolve_organisation(organisation).id))
    if not rules:
        click.echo("No assignment rules.")
    for rule in rules:
        due = (f"due {rule['due_days']} days" if rule["due_days"] is not None
               else f"due on {rule['due_on']}")
        every = (f"every {rule['recurrence_months']} months" if rule["recurrence_months"]
                 else "once")
        audience = "; ".join(f"{key}: {', '.join(rule[key])}"
                             for key in ("facilities", "departments", "job_roles")
                             if rule[key]) or "everyone"
        click.echo(f"{rule['id']}\t{rule['module']}\t{due}\t{every}\t{audience}\t"
                   f"{rule['open_assignments']} open")


@rule_cli.command("remove")
@click.argument("rule_id", type=click.IntRange(1, 2**31 - 1))
@_ORG_OPTION
def rule_remove(rule_id: int, organisation: str | None) -> None:
    """Remove a rule: its open assignments are closed, history is kept."""
    at_edge(lambda: assignments.remove_rule(resolve_organisation(organisation).id, rule_id,
                                            actor=None, now=utcnow()))
    click.echo(f"Removed rule {rule_id}; its open assignments are closed.")


@assignments_cli.command("evaluate")
@_ORG_OPTION
def evaluate(organisation: str | None) -> None:
    """Open and close assignments to match the rules now (set-based; safe to repeat)."""
    result = at_edge(lambda: assignments.evaluate(resolve_organisation(organisation).id,
                                                  utcnow()))
    click.echo(f"Opened {len(result.opened)}, closed {len(result.closed)} assignment(s).")


@assignments_cli.command("status")
@click.option("--email", help="Only this person.")
@_ORG_OPTION
def status(email: str | None, organisation: str | None) -> None:
    """Count open assignments by status (or list one person's)."""
    def work():
        org = resolve_organisation(organisation)
        user_id = _person(org.id, email).id if email else None
        return assignments.status_rows(org.id, user_id=user_id, now=utcnow())
    rows = at_edge(work)
    if email:
        for row in rows:
            due = row.due_at.date().isoformat() if row.due_at else "-"
            click.echo(f"module {row.module_id}\t{row.status}\tdue {due}")
        return
    counts = Counter(row.status for row in rows)
    for name in assignments.STATUSES:
        click.echo(f"{name}\t{counts.get(name, 0)}")


def _person(organisation_id: int, email: str) -> User:
    person = db.session.scalar(select(User).where(
        User.organisation_id == organisation_id,
        func.lower(User.email) == email.strip().lower()))
    if person is None:
        raise NotFound(f"No person with email {email} in this organisation", field="email")
    return person


@attempts_cli.command("grant")
@click.option("--email", required=True, help="The person's email.")
@click.option("--module", "module_slug", required=True, help="The module's slug.")
@click.option("--extra", type=click.IntRange(1, 20), default=1, show_default=True,
              help="How many more attempts.")
@click.option("--reason", default="", help="Why (kept in the audit log).")
@_ORG_OPTION
def grant(email: str, module_slug: str, extra: int, reason: str,
          organisation: str | None) -> None:
    """Give a person more quiz attempts on a module in their current period (audited)."""
    def work():
        org = resolve_organisation(organisation)
        person = _person(org.id, email)
        assignments.grant_attempts(org.id, person.id, module_slug, extra, reason=reason,
                                   actor=None, now=utcnow())
    at_edge(work)
    click.echo(f"Granted {extra} extra attempt(s) on {module_slug} to {email}.")



staff_cli = AppGroup("staff", help="Staff profiles: import the HR roster (CSV or Excel).")


def import_roster_file(organisation_id: int, filename: str, data: bytes, *, leavers: bool,
                       actor: User | None) -> roster.RosterResult:
    """The roster import edge shared by the CLI and the upload page: validate and write the
    people (``accounts.roster``), then re-evaluate the organisation's assignment rules;
    flushes only. Job roles are checked against the content's audience spellings."""
    now = utcnow()
    result = roster.import_roster(organisation_id, filename, data,
                                  known_job_roles=assignments.known_job_roles(organisation_id),
                                  leavers=leavers, actor=actor, now=now)
    if result.ok:
        assignments.evaluate(organisation_id, now)
    return result


@staff_cli.command("import")
@click.argument("path", type=PathArg(exists=True, dir_okay=False))
@click.option("--leavers", is_flag=True,
              help="The file is the FULL roster: every active person not in it (admins "
                   "excepted) is marked as a leaver (inactive, never deleted).")
@_ORG_OPTION
def staff_import(path: str, leavers: bool, organisation: str | None) -> None:
    """Import a staff roster (.csv or .xlsx): people matched by employee id or email; all
    or nothing (every bad row is listed with its row number and field)."""
    with open(path, "rb") as handle:
        data = handle.read()

    def work():
        org = resolve_organisation(organisation)
        result = import_roster_file(org.id, path, data, leavers=leavers, actor=None)
        if not result.ok:
            raise RosterRefused(result)
        return result
    try:
        result = at_edge(work)
    except RosterRefused as refused:
        db.session.rollback()
        for problem in refused.result.problems:
            click.echo(f"{path}: {problem.line()}", err=True)
        raise click.ClickException(
            f"{len(refused.result.problems)} bad row(s); nothing was imported") from None
    click.echo(f"Imported {path}: {result.line()}.")


class RosterRefused(Exception):
    """Bad rows: the edge rolls back (nothing written) and lists them."""

    def __init__(self, result: roster.RosterResult) -> None:
        super().__init__(f"{len(result.problems)} bad rows")
        self.result = result
