"""``lms-plugin reports framework-import|framework-export|framework-list``: thin commands over
``reports.frameworks``; a command that writes commits once, at the end."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup

from lms_plugin.accounts.services import resolve_organisation
from lms_plugin.clitypes import PathArg
from lms_plugin.errors import DomainError
from lms_plugin.extensions import db
from lms_plugin.reports import frameworks

reports_cli = AppGroup("reports", help="Competency frameworks (Moodle CSV) and report exports.")

#: The shipped starter framework (fits the shipped modules in content/modules).
STARTER = Path(__file__).resolve().parent.parent / "content" / "frameworks"
_ORG_OPTION = click.option("--organisation", help="Organisation to use (default: the only "
                           "one there is; never created here).")


@reports_cli.command("framework-import")
@click.argument("csv_file", required=False, type=PathArg(dir_okay=False, exists=True))
@click.option("--evidence", "evidence_file", type=PathArg(dir_okay=False, exists=True),
              help="Evidence CSV: Competency ID number, Module (slug).")
@click.option("--starter", is_flag=True, help="Import the shipped starter framework "
              "(clinical information systems safety) with its evidence.")
@_ORG_OPTION
def framework_import(csv_file: str | None, evidence_file: str | None, starter: bool,
                     organisation: str | None) -> None:
    """Import a competency framework from Moodle's CSV layout (tool_lpimportcsv)."""
    if starter == bool(csv_file):
        raise click.UsageError("Give either CSV_FILE or --starter.")
    if starter:
        csv_file = str(STARTER / "cis-starter.csv")
        evidence_file = str(STARTER / "cis-starter-evidence.csv")
    try:
        org = resolve_organisation(organisation)
        result = frameworks.import_framework(
            org.id, Path(csv_file).read_bytes(),
            Path(evidence_file).read_bytes() if evidence_file else None, actor=None,
            filename=Path(csv_file).name)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()
    click.echo(f"Imported {result.framework.shortname} ({result.framework.idnumber}) into "
               f"{org.name}: {result.competencies} competencies, {result.evidence} evidence "
               "links.")


@reports_cli.command("framework-export")
@click.argument("idnumber")
@click.option("--evidence", "evidence_file", type=click.Path(dir_okay=False, writable=True),
              help="Also write the evidence CSV to this file.")
@_ORG_OPTION
def framework_export(idnumber: str, evidence_file: str | None, organisation: str | None) -> None:
    """Print framework IDNUMBER as Moodle CSV (tool_lpimportcsv layout) on stdout."""
    try:
        framework = _framework(resolve_organisation(organisation), idnumber)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(frameworks.export_framework_csv(framework), nl=False)
    if evidence_file:
        Path(evidence_file).write_text(frameworks.export_evidence_csv(framework))


@reports_cli.command("framework-delete")
@click.argument("idnumber")
@_ORG_OPTION
def framework_delete(idnumber: str, organisation: str | None) -> None:
    """Delete framework IDNUMBER with its competencies and evidence (completions stay)."""
    try:
        org = resolve_organisation(organisation)
        framework = _framework(org, idnumber)
        frameworks.delete_framework(framework, actor=None)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()
    click.echo(f"Deleted {idnumber} from {org.name}.")


def _framework(org, idnumber: str):
    from sqlalchemy import select

    from lms_plugin.errors import NotFound
    from lms_plugin.reports.models import CompetencyFramework

    framework = db.session.scalar(select(CompetencyFramework).where(
        CompetencyFramework.organisation_id == org.id, CompetencyFramework.idnumber == idnumber))
    if framework is None:
        raise NotFound(f"{org.name} has no framework {idnumber!r}.")
    return framework


@reports_cli.command("holdings-rebuild")
def holdings_rebuild() -> None:
    """Recompute every framework's precomputed holdings now (the job does it every 10 min)."""
    from sqlalchemy import select

    from lms_plugin.db import utcnow
    from lms_plugin.reports import holdings
    from lms_plugin.reports.models import CompetencyFramework

    for framework_id in db.session.scalars(select(CompetencyFramework.id)):
        rows = holdings.rebuild(framework_id, utcnow())
        click.echo(f"framework #{framework_id}: {rows} holdings")
    db.session.commit()


@reports_cli.command("framework-list")
@_ORG_OPTION
def framework_list(organisation: str | None) -> None:
    """List the organisation's competency frameworks."""
    try:
        org = resolve_organisation(organisation)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    for framework, count in frameworks.list_frameworks(org.id):
        click.echo(f"{framework.idnumber}\t{framework.shortname}\t{count} competencies")
