"""``lms-plugin signoff …``: clinical sign-off before publish (issue 17), thin commands over
``catalog.signoff``; each command that writes commits once. The admin pages come with the
authoring work; until then a server operator records reviewers and approvals here (each
approval names the approving person by email and is audited with name, role, time and the
version's content hash).
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from lms_plugin.catalog import services, signoff
from lms_plugin.catalog.cli import commit_or_fail, person_by_email
from lms_plugin.errors import DomainError

signoff_cli = AppGroup("signoff", help="Clinical sign-off: required reviewers and their "
                                       "approvals.")
reviewers_cli = AppGroup("reviewers", help="The reviewers a module needs before publishing.")
holders_cli = AppGroup("holders", help="Who holds a reviewer role (pharmacist, …).")
signoff_cli.add_command(reviewers_cli)
signoff_cli.add_command(holders_cli)

_ORG = click.option("--organisation", help="Organisation (default: the only one there is).")
_MODULE = click.option("--module", "module_slug",
                       help="One module's own reviewers (default: every module's).")


def _org(organisation: str | None):
    from lms_plugin.accounts.services import resolve_organisation

    return resolve_organisation(organisation)


@reviewers_cli.command("set")
@_ORG
@_MODULE
@click.option("--role", "roles", multiple=True,
              help="A role name whose holders may approve (repeat: --role pharmacist "
                   "--role \"nurse educator\").")
@click.option("--person", "people", multiple=True, metavar="EMAIL=ROLE",
              help="A named person and the role they sign as (repeatable).")
def reviewers_set(organisation: str | None, module_slug: str | None, roles: tuple[str, ...],
                  people: tuple[str, ...]) -> None:
    """Replace the required reviewers (of every module, or of --module)."""
    def work():
        org = _org(organisation)
        module = services.get_module(org.id, module_slug) if module_slug else None
        named = []
        for entry in people:
            email, sep, role = entry.partition("=")
            if not sep or not role.strip() or not email.strip():
                raise click.ClickException(f"--person {entry!r}: write EMAIL=ROLE")
            named.append((person_by_email(org.id, email), role))
        return org, signoff.set_reviewers(org.id, roles=list(roles), people=named,
                                          module=module)
    org, result = commit_or_fail(work)
    scope = f"module {module_slug}" if module_slug else f"every module of {org.name}"
    labels = signoff.describe(result)
    click.echo(f"Required reviewers for {scope}: {', '.join(labels) or 'none'}.")


@reviewers_cli.command("list")
@_ORG
@_MODULE
def reviewers_list(organisation: str | None, module_slug: str | None) -> None:
    """List the required reviewers (those of every module, or all that apply to --module)."""
    org = _org(organisation)
    try:
        module = services.get_module(org.id, module_slug) if module_slug else None
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    reviewers = signoff.list_reviewers(org.id, module.id if module else None,
                                       applying=module is not None)
    if not reviewers:
        click.echo(f"{org.name} names no required reviewers: publishing is not gated. "
                   "Name them with 'lms-plugin signoff reviewers set'.")
        return
    for label, reviewer in zip(signoff.describe(reviewers), reviewers, strict=True):
        scope = "every module" if reviewer.module_id is None else "this module"
        click.echo(f"{label}\t({scope})")


@holders_cli.command("add")
@_ORG
@click.argument("role")
@click.argument("email")
def holders_add(organisation: str | None, role: str, email: str) -> None:
    """Record that the person with EMAIL holds reviewer ROLE."""
    def work():
        org = _org(organisation)
        return signoff.add_role_holder(org.id, role, person_by_email(org.id, email))
    holder = commit_or_fail(work)
    click.echo(f"{email} holds the reviewer role '{holder.role_name}'.")


@signoff_cli.command("approve")
@_ORG
@click.argument("slug")
@click.option("--email", required=True, help="The approving reviewer (a person of the "
                                             "organisation).")
@click.option("--role", help="The role signed as, when the person holds several.")
def approve(organisation: str | None, slug: str, email: str, role: str | None) -> None:
    """Record EMAIL's approval of module SLUG's newest draft, exactly as it is now."""
    def work():
        org = _org(organisation)
        version = services.latest_version(services.get_module(org.id, slug))
        if version is None:
            raise click.ClickException(f"{slug} has no version")
        approval = signoff.approve(version, person_by_email(org.id, email), role=role)
        return version, approval, signoff.missing(version)
    version, approval, waiting = commit_or_fail(work)
    click.echo(f"{approval.reviewer_name} approved {slug} version {version.number} as "
               f"{approval.role_name} (content {approval.content_hash[:12]}).")
    click.echo(f"Still waiting for: {', '.join(waiting)}." if waiting else
               f"Every required reviewer has approved: 'lms-plugin content publish {slug}'.")


@signoff_cli.command("status")
@_ORG
@click.argument("slug")
def status(organisation: str | None, slug: str) -> None:
    """What module SLUG's newest version is waiting for, and who approved it when."""
    org = _org(organisation)
    try:
        version = services.latest_version(services.get_module(org.id, slug))
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    if version is None:
        raise click.ClickException(f"{slug} has no version")
    click.echo(f"{slug} version {version.number} ({version.status}), content "
               f"{version.content_hash[:12]}")
    states = signoff.status(version)
    if not states:
        click.echo("No required reviewers are named.")
    for item in states:
        a = item.approval
        click.echo(f"  {item.label}: " + (f"approved by {a.reviewer_name} at "
                                          f"{a.approved_at:%Y-%m-%d %H:%M} UTC" if a
                                          else "waiting"))
