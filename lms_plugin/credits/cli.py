"""``lms-plugin credits remove-person``: remove a person while keeping their six-year CE
record (``credits.services.anonymise_person``). A thin command: one service call, one
commit."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from lms_plugin.accounts.services import find_organisation
from lms_plugin.credits import services
from lms_plugin.errors import DomainError
from lms_plugin.extensions import db

credits_cli = AppGroup("credits", help="Continuing-education credit: records and people.")


@credits_cli.command("remove-person")
@click.option("--organisation", required=True, help="Organisation slug or name.")
@click.option("--email", required=True, help="The person's email address.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def remove_person(organisation: str, email: str, yes: bool) -> None:
    """Anonymise a person; completions, claims and certificates are kept."""
    try:
        org = find_organisation(organisation)
        user_id = services.person_by_email(org.id, email)
        if not yes:
            click.confirm(f"Remove {email} from {org.name}? Their CE records are kept.",
                          abort=True)
        services.anonymise_person(org.id, user_id, actor=None)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()
    click.echo(f"Removed person {user_id}: account anonymised, CE records kept.")
