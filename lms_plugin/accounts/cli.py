"""``lms-plugin users …``: thin commands over accounts services."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from lms_plugin.accounts import services
from lms_plugin.errors import DomainError
from lms_plugin.extensions import db

users_cli = AppGroup("users", help="Manage people and local accounts.")
org_cli = AppGroup("org", help="Organisations: create, list, settings.")


@users_cli.command("create-admin")
@click.option("--email", required=True, help="Sign-in email of the new admin.")
@click.option("--organisation",
              help="Organisation of the account (default: the only one there is).")
@click.option("--password-prompt", is_flag=True,
              help="Read the password from a prompt instead of printing a one-time password.")
def create_admin(email: str, organisation: str, password_prompt: bool) -> None:
    """Create a local admin account and print its one-time password."""
    password = None
    if password_prompt:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        result = services.create_admin(email, organisation, password)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()
    click.echo(f"Created admin {result.user.email} in {result.user.organisation.name}.")
    if result.password:
        click.echo(f"One-time password (change it at first sign-in): {result.password}")


def first_admin(email: str, organisation: str | None) -> services.NewAdmin | None:
    """``services.ensure_first_admin`` at a CLI edge: committed, or a one-line error (and
    nothing written). None when an admin exists already."""
    try:
        result = services.ensure_first_admin(email, organisation)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    if result is not None:
        db.session.commit()
    return result


@users_cli.command("ensure-admin")
@click.option("--email", default="admin@example.org", show_default=True)
@click.option("--organisation",
              help="Organisation of the admin (default: the only one there is; on a fresh "
                   f"install the first-run setup creates {services.FIRST_ORGANISATION!r}).")
def ensure_admin(email: str, organisation: str | None) -> None:
    """Create a local admin only when none exists (used by ``make run``). On a fresh install
    this also creates the first organisation."""
    result = first_admin(email, organisation)
    if result is None:
        click.echo("An admin account exists already.")
        return
    base = current_app.config["LMS_BASE_URL"]
    click.echo(f"Created admin {result.user.email} in {result.user.organisation.name}; "
               f"sign in at {base}/auth/login")
    click.echo(f"One-time password (change it at first sign-in): {result.password}")


@org_cli.command("create")
@click.argument("name")
@click.option("--timezone", help="IANA time zone, e.g. Europe/Dublin "
              "(default: LMS_DEFAULT_TIMEZONE).")
def org_create(name: str, timezone: str | None) -> None:
    """Create an organisation (a hospital or health system). Commands and registrations
    never create one by themselves."""
    try:
        org = services.create_organisation(name, timezone)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()
    click.echo(f"Created organisation {org.name} (slug {org.slug}, time zone {org.timezone}).")


@org_cli.command("list")
def org_list() -> None:
    """List organisations: slug, name, time zone."""
    orgs = services.list_organisations()
    if not orgs:
        click.echo(f"No organisations yet; {services.NO_ORGANISATION_HINT}.")
    for org in orgs:
        label = "\t(the demo LMS's organisation)" if org.is_demo else ""
        click.echo(f"{org.slug}\t{org.name}\t{org.timezone}{label}")


@org_cli.command("set-grade-policy")
@click.argument("organisation")
@click.argument("policy", metavar="highest|most-recent")
def set_grade_policy(organisation: str, policy: str) -> None:
    """Which graded attempt the LMS gradebook shows: the highest of the current validity
    period (default) or the most recent one."""
    try:
        org = services.set_grade_policy(organisation, policy)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()
    click.echo(f"Grade policy of {org.name}: {org.grade_policy}.")


@org_cli.command("set-expiring-window")
@click.argument("organisation")
@click.argument("days", type=click.IntRange(0, 365))
def set_expiring_window(organisation: str, days: int) -> None:
    """Days before a completion lapses that its assignment shows "expiring soon" (30)."""
    try:
        org = services.set_expiring_window(organisation, days)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()
    click.echo(f"Expiring-soon window of {org.name}: {org.expiring_soon_days} days.")


@users_cli.command("sign-out")
@click.option("--email", required=True, help="Email of the person to sign out everywhere.")
def sign_out(email: str) -> None:
    """End every session of a person now (a lost badge, a shared workstation left open)."""
    try:
        user, ended = services.sign_out_everywhere(email)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()
    click.echo(f"Signed out {user.email or user.name}: {ended} session(s) ended.")


@users_cli.command("reset-password")
@click.option("--email", required=True, help="Sign-in email of the local account.")
@click.option("--link", is_flag=True,
              help="Print a one-hour reset link instead of setting a one-time password.")
def reset_password(email: str, link: bool) -> None:
    """Reset a local account's password (the first admin locked out): print a new one-time
    password, changed at the next sign-in as with ensure-admin; every session of the person
    ends. With --link, print a single-use reset link instead (nothing is mailed)."""
    from lms_plugin.accounts import password_reset

    try:
        if link:
            user, url = password_reset.issue_reset_link(email, current_app.config["LMS_BASE_URL"])
        else:
            user, password = password_reset.issue_one_time_password(email)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()
    if link:
        click.echo(f"Reset link for {user.credential.email} (works once, for an hour): {url}")
    else:
        click.echo(f"Password of {user.credential.email} reset; every session ended.")
        click.echo(f"One-time password (change it at first sign-in): {password}")
