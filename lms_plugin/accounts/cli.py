"""``lms-plugin users …``: thin commands over accounts services."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from lms_plugin.accounts import services
from lms_plugin.errors import DomainError
from lms_plugin.extensions import db

users_cli = AppGroup("users", help="Manage people and local accounts.")
org_cli = AppGroup("org", help="Organisation settings.")


@users_cli.command("create-admin")
@click.option("--email", required=True, help="Sign-in email of the new admin.")
@click.option("--organisation", default="Default Health System", show_default=True)
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


@users_cli.command("ensure-admin")
@click.option("--email", default="admin@example.org", show_default=True)
@click.option("--organisation", default="Default Health System", show_default=True)
def ensure_admin(email: str, organisation: str) -> None:
    """Create a local admin only when none exists (used by ``make run``)."""
    if services.any_admin_exists():
        click.echo("An admin account exists already.")
        return
    try:
        result = services.create_admin(email, organisation)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()
    base = current_app.config["LMS_BASE_URL"]
    click.echo(f"Created admin {result.user.email}; sign in at {base}/auth/login")
    click.echo(f"One-time password (change it at first sign-in): {result.password}")


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
